"""Checkpoints of long training loops (SFT, verifier training, RL), so a killed job resumes where it
was instead of from zero.

A training loop builds its own state dict (weights, optimiser, RNG states, log so far) and hands it
to an `on_checkpoint` callback; the stage saves it with `save_checkpoint` and, when rerun, passes
what `load_checkpoint` returns back as `resume=`. Every random stream a loop draws from is in its
state, so a resumed run continues exactly as the uninterrupted run would have.

A checkpoint carries the fingerprint of the job that wrote it (its resolved config and code hash):
a checkpoint left by a different config is stale and is ignored, never resumed.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import torch

from pavflow.data import atomic_file

log = logging.getLogger("pavflow.checkpoint")


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read; the message names the file."""


def save_checkpoint(state: dict, path: str | os.PathLike, fingerprint: str) -> Path:
    """Write `state` to `path` atomically (temp file in the same directory, then rename)."""
    with atomic_file(path) as tmp:
        torch.save({"fingerprint": fingerprint, "state": state}, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, fingerprint: str) -> dict | None:
    """The state saved at `path` by the job with this fingerprint; None if there is no checkpoint or
    it was written by another config (then it is deleted). A corrupt file raises CheckpointError."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        found, state = saved["fingerprint"], saved["state"]
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); delete it to "
                              "restart this job from zero") from e
    if found != fingerprint:
        log.warning("%s: checkpoint of another config or code version (fingerprint %s, this job %s); "
                    "ignored and removed, the job starts from zero", path, found[:12], fingerprint[:12])
        path.unlink()
        return None
    return state


def rng_state(rng: random.Random | torch.Generator) -> dict:
    """The random streams a training loop draws from: its own generator (a `random.Random` or a
    `torch.Generator`) and torch's global RNGs."""
    state = {"python": rng.getstate()} if isinstance(rng, random.Random) else {"generator": rng.get_state()}
    state["torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(rng: random.Random | torch.Generator, state: dict) -> None:
    if isinstance(rng, random.Random):
        rng.setstate(_as_tuple(state["python"]))
    else:
        rng.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):  # random.Random.setstate needs tuples; a round trip may hand back lists
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
