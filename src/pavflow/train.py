"""The training loop of every trained model (the SFT and RFT policies, value verifiers, implicit
PRMs): a minibatch, its loss, one optimiser step at the scheduled learning rate with gradient
clipping, log rows, periodic evaluation with an early stop, a progress bar, and checkpoints that
resume exactly as if training had not stopped.

What differs between trainings comes in as arguments: the optimiser, the schedule lr_at(t), and the
batch source. A batch source is called for the next batch and has state_dict() / load_state_dict(),
which hold its position and every random stream the run draws from (its own generator and torch's
global RNGs, `checkpoint.rng_state`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pavflow.progress import progress


@dataclass(frozen=True)
class TrainHooks:
    """Where a training loop reports: every log row goes to `on_log`; every `checkpoint_every` steps
    (0: never) the training state goes to `on_checkpoint`; given back as `resume`, training continues
    from it exactly."""
    on_log: Callable[[dict], None] | None = None
    checkpoint_every: int = 0
    on_checkpoint: Callable[[dict], None] | None = None
    resume: dict | None = None


def _mean(xs: list[float]) -> float:
    total = 0.0
    for x in xs:  # in order, uncompensated: a row's loss does not depend on the Python version
        total += x
    return total / len(xs)


def train_loop(model, opt, lr_at: Callable[[int], float], batches, loss_fn, *, steps: int, grad_clip: float,
               log_every: int, loss_window: int | None = None, evaluate: Callable[[], dict] | None = None,
               stop: Callable[[dict], bool] | None = None, hooks: TrainHooks = TrainHooks(),
               desc: str) -> list[dict]:
    """Minimise loss_fn(batches()) -> (loss, tokens) for `steps` steps t = 0..steps-1, each at
    learning rate lr_at(t), gradients clipped to norm grad_clip (0: no clipping).

    Every log_every steps and at the last one a row {"step", "tokens_seen", "loss"} is logged: loss is
    the mean of the step losses since the previous row (of the last loss_window of them, if given),
    plus the metrics of evaluate() (run in eval mode). Training stops after a row for which stop(row)
    is true. Returns the rows; the model is left in eval mode."""
    rows, tokens_seen, losses, start = [], 0, [], 0
    if hooks.resume is not None:
        r = hooks.resume
        model.load_state_dict(r["model"])
        opt.load_state_dict(r["opt"])
        batches.load_state_dict(r["batches"])
        rows, tokens_seen, losses, start = list(r["rows"]), r["tokens_seen"], list(r["losses"]), r["step"]
    for t in progress(range(start, steps), desc=desc):
        model.train()
        loss, tokens = loss_fn(batches())
        for g in opt.param_groups:
            g["lr"] = lr_at(t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        tokens_seen += tokens
        losses.append(loss.item())
        if (t + 1) % log_every == 0 or t + 1 == steps:
            row = {"step": t + 1, "tokens_seen": tokens_seen, "loss": _mean(losses[-(loss_window or len(losses)):])}
            losses = []
            if evaluate is not None:
                model.eval()
                row |= evaluate()
            rows.append(row)
            if hooks.on_log is not None:
                hooks.on_log(row)
            if stop is not None and stop(row):
                break
        if hooks.on_checkpoint is not None and hooks.checkpoint_every > 0 and (t + 1) % hooks.checkpoint_every == 0 \
                and t + 1 < steps:
            hooks.on_checkpoint({"step": t + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                                 "batches": batches.state_dict(), "rows": rows, "tokens_seen": tokens_seen,
                                 "losses": losses})
    model.eval()
    return rows
