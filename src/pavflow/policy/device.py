"""Device and dtype names of the config, as torch objects (no transformers import: every stage logs its
device, and stages without a model should not pay for loading the model code)."""
from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str) -> torch.dtype:
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"dtype: unknown {dtype!r}; expected float32, bfloat16 or float16") from None
