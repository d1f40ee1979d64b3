"""bf16 training keeps float32 weights (policy.device.autocast): SFT at a real fine-tuning learning
rate moves them, where the same steps on bf16 weights lose most updates to rounding."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pavflow.policy.device import autocast, resolve_device, resolve_dtype
from pavflow.policy.model import tiny_llama
from pavflow.policy.sft import train_sft

PAIRS = [("Q:1+2\n", "1+2=3\nA:3"), ("Q:72*5-3\n", "72*5=60\n60-3=57\nA:57")]


def sft(model, tok, **kw):
    return train_sft(model, tok, lambda rng: PAIRS[rng.randrange(2)], max_steps=3, batch_size=4, lr=1e-5,
                     warmup=0, seed=0, eval_every=3, **kw)


def moved(before: dict, model) -> float:
    """Fraction of weight entries that changed."""
    n = sum(p.numel() for p in model.parameters())
    return sum((p.detach().float() != before[k].float()).sum().item() for k, p in model.named_parameters()) / n


def test_autocast_bf16_trains_float32_weights_that_move(tok):
    m = tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with autocast("cpu", "bfloat16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
        rows = sft(m, tok)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert rows[-1]["loss"] == rows[-1]["loss"] and moved(before, m) > 0.9
    pure = tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0).to(torch.bfloat16)
    before = {k: v.clone() for k, v in pure.state_dict().items()}
    sft(pure, tok)
    assert moved(before, pure) < 0.5  # why the weights stay float32


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_autocast_is_off_unless_bf16(dtype):
    with autocast("cpu", dtype):
        assert not torch.is_autocast_enabled("cpu")


def test_device_and_dtype_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="unknown 'fp8'"):
        resolve_dtype("fp8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_check_refuses_loudly_without_a_gpu(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    bin_dir = tmp_path / "bin"  # PATH without nvidia-smi: bash and coreutils only
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={"PATH": str(bin_dir)}, timeout=60)
    assert out.returncode == 1 and "no nvidia-smi" in out.stderr and "NVIDIA GPU" in out.stderr
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'Fake GPU, 16384 MiB, 1'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 1 and "sees no CUDA device" in out.stderr
