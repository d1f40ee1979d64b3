"""The training loop every verifier shares: AdamW (no decay on biases and norms), linear warmup then
cosine or linear decay to min_lr_frac * lr, minibatches drawn from seeded epoch permutations, log
rows, and checkpoints that resume exactly as if training had not stopped."""
from __future__ import annotations

import math
from typing import Callable

import torch

from pavflow.progress import progress


def fit(model, data: list, loss_fn: Callable[[list], tuple[torch.Tensor, int]], *, steps: int, batch_size: int,
        lr: float, seed: int, weight_decay: float = 0.0, warmup: int = 0, schedule: str = "cosine",
        min_lr_frac: float = 0.1, grad_clip: float = 1.0, log_every: int = 50, on_log=None,
        checkpoint_every: int = 0, on_checkpoint=None, resume: dict | None = None,
        desc: str = "verifier steps", who: str = "fit") -> list[dict]:
    """Minimise `loss_fn(batch) -> (loss, tokens)` over minibatches of `data` items for `steps` steps.
    Returns the log rows {"step", "loss", "tokens_seen"} (loss = mean over the steps since the previous
    row). Every `checkpoint_every` steps (0: never) the training state goes to `on_checkpoint`; given
    back as `resume`, training continues from it exactly. The model is left in eval mode."""
    if schedule not in ("cosine", "linear"):
        raise ValueError(f"{who}: schedule must be cosine or linear, got {schedule!r}")
    if steps < 1 or batch_size < 1 or log_every < 1:
        raise ValueError(f"{who}: need steps, batch_size, log_every >= 1, got {steps}, {batch_size}, {log_every}")
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))

    def lr_at(t):  # t = 0..steps-1
        if t < warmup:
            return lr * (t + 1) / warmup
        frac = (t - warmup) / max(steps - warmup - 1, 1)
        shape = 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else 1 - frac
        return lr * (min_lr_frac + (1 - min_lr_frac) * shape)

    gen = torch.Generator().manual_seed(seed)
    order, cursor, rows, tokens_seen, loss_sum, loss_n, start = [], 0, [], 0, 0.0, 0, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        gen.set_state(resume["gen"])
        order, cursor, rows = list(resume["order"]), resume["cursor"], list(resume["rows"])
        tokens_seen, loss_sum, loss_n, start = resume["tokens_seen"], resume["loss_sum"], resume["loss_n"], resume["step"]
    model.train()
    for t in progress(range(start, steps), desc=desc):
        batch = []
        while len(batch) < min(batch_size, len(data)):
            if cursor == len(order):
                order, cursor = torch.randperm(len(data), generator=gen).tolist(), 0
            batch.append(data[order[cursor]])
            cursor += 1
        loss, tokens = loss_fn(batch)
        for g in opt.param_groups:
            g["lr"] = lr_at(t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        tokens_seen += tokens
        loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
        if (t + 1) % log_every == 0 or t == steps - 1:
            rows.append({"step": t + 1, "loss": loss_sum / loss_n, "tokens_seen": tokens_seen})
            loss_sum, loss_n = 0.0, 0
            if on_log is not None:
                on_log(rows[-1])
        if on_checkpoint is not None and checkpoint_every > 0 and (t + 1) % checkpoint_every == 0 and t + 1 < steps:
            on_checkpoint({"step": t + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                           "gen": gen.get_state(), "order": order, "cursor": cursor, "rows": rows,
                           "tokens_seen": tokens_seen, "loss_sum": loss_sum, "loss_n": loss_n})
    model.eval()
    return rows
