"""Device and dtype names of the config, as torch objects (no transformers import: every stage logs its
device, and stages without a model should not pay for loading the model code)."""
from __future__ import annotations

import contextlib

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


def autocast(device, dtype: str):
    """bf16 compute on float32 weights, for training (and the sampling inside it): the trained weights
    stay float32, since AdamW's updates at lr ~1e-5 vanish in bf16 weights (their spacing near 0.05 is
    ~2e-4). torch.autocast to bfloat16 on `device` when dtype is bfloat16; a no-op for float32, and for
    float16, which would need a gradient scaler (float16 training computes in float32)."""
    if dtype != "bfloat16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
