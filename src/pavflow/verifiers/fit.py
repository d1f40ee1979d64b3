"""How every verifier is fitted (`train.train_loop` with these pieces): AdamW with no decay on biases
and norms, linear warmup then cosine or linear decay to min_lr_frac * lr, and minibatches drawn from
seeded epoch permutations."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from pavflow.checkpoint import rng_state, set_rng_state
from pavflow.train import TrainHooks, train_loop

SCHEDULES = ("cosine", "linear")


@dataclass(frozen=True)
class FitSettings:
    """`steps` AdamW steps on minibatches of `batch_size` items; lr warmed up over `warmup` steps, then
    `schedule` decay to min_lr_frac * lr; weight_decay on >= 2-D weights only; gradients clipped to
    norm grad_clip (0: no clipping); a log row every `log_every` steps; `seed` orders the data."""
    steps: int
    batch_size: int
    lr: float
    seed: int
    warmup: int = 0
    schedule: str = "cosine"
    min_lr_frac: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 50

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"FitSettings: schedule must be cosine or linear, got {self.schedule!r}")
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError(f"FitSettings: need steps, batch_size, log_every >= 1, got {self.steps}, "
                             f"{self.batch_size}, {self.log_every}")


class EpochBatches:
    """min(batch_size, len(data)) items per batch, in the order of seeded epoch permutations (a
    torch.Generator): a batch source of `train_loop`."""

    def __init__(self, data: list, batch_size: int, seed: int):
        self.data, self.batch_size = data, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.cursor = [], 0

    def __call__(self) -> list:
        batch = []
        while len(batch) < min(self.batch_size, len(self.data)):
            if self.cursor == len(self.order):
                self.order, self.cursor = torch.randperm(len(self.data), generator=self.gen).tolist(), 0
            batch.append(self.data[self.order[self.cursor]])
            self.cursor += 1
        return batch

    def state_dict(self) -> dict:
        return {"rng": rng_state(self.gen), "order": self.order, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(self.gen, state["rng"])
        self.order, self.cursor = list(state["order"]), state["cursor"]


def warmup_decay(t: int, s: FitSettings) -> float:
    """Learning rate of step t = 0..steps-1."""
    if t < s.warmup:
        return s.lr * (t + 1) / s.warmup
    frac = (t - s.warmup) / max(s.steps - s.warmup - 1, 1)
    shape = 0.5 * (1 + math.cos(math.pi * frac)) if s.schedule == "cosine" else 1 - frac
    return s.lr * (s.min_lr_frac + (1 - s.min_lr_frac) * shape)


def fit(model, data: list, loss_fn: Callable[[list], tuple[torch.Tensor, int]], settings: FitSettings,
        hooks: TrainHooks = TrainHooks(), desc: str = "verifier steps") -> list[dict]:
    """Minimise `loss_fn(batch) -> (loss, tokens)` over minibatches of `data` items. Returns the log
    rows {"step", "tokens_seen", "loss"} (loss = mean over the steps since the previous row). The model
    is left in eval mode."""
    s = settings
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.95))
    return train_loop(model, opt, lambda t: warmup_decay(t, s), EpochBatches(data, s.batch_size, s.seed), loss_fn,
                      steps=s.steps, grad_clip=s.grad_clip, log_every=s.log_every, hooks=hooks, desc=desc)
