"""Supervised fine-tuning of a policy on reference solutions: loss on solution tokens only, fresh
examples every batch, stop at the first evaluation whose sampled accuracy reaches a target (so a
policy is picked by measured accuracy, not by training time)."""
from __future__ import annotations

import math
import random
from typing import Callable

import torch
import torch.nn.functional as F

from pavflow.checkpoint import rng_state, set_rng_state
from pavflow.progress import progress


def sft_batch(tok, pairs: list[tuple[str, str]], device) -> tuple[torch.Tensor, ...]:
    """Right-padded (ids, attention mask, loss mask) for (prompt, solution) pairs; EOS appended."""
    seqs, n_prompt = [], []
    for prompt, solution in pairs:
        p = tok(prompt).input_ids
        s = tok(solution, add_special_tokens=False).input_ids + [tok.eos_token_id]
        seqs.append(p + s)
        n_prompt.append(len(p))
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), T), dtype=torch.long)
    loss_mask = torch.zeros((len(seqs), T), dtype=torch.bool)
    for i, (s, n) in enumerate(zip(seqs, n_prompt)):
        ids[i, :len(s)] = torch.tensor(s)
        attn[i, :len(s)] = 1
        loss_mask[i, n:len(s)] = True
    return ids.to(device), attn.to(device), loss_mask.to(device)


def lm_loss(model, ids, attn, loss_mask) -> torch.Tensor:
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]  # (B, T-1, V)
    target, mask = ids[:, 1:], loss_mask[:, 1:]
    return F.cross_entropy(logits[mask].float(), target[mask])


def train_sft(model, tok, sample_pair: Callable[[random.Random], tuple[str, str]], *,
              max_steps: int, batch_size: int, lr: float, warmup: int, seed: int,
              eval_every: int, evaluate: Callable[[], float] | None = None,
              target_acc: float | None = None,
              on_log: Callable[[dict], None] | None = None,
              checkpoint_every: int = 0, on_checkpoint: Callable[[dict], None] | None = None,
              resume: dict | None = None) -> list[dict]:
    """AdamW with linear warmup and cosine decay over max_steps; returns the log rows.

    `evaluate()` returns the sampled accuracy used as stopping rule (>= target_acc stops training).
    Every `checkpoint_every` steps (0: never) the full training state goes to `on_checkpoint`; given
    back as `resume`, training continues from it exactly as if it had not stopped.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) *
                                              0.5 * (1 + math.cos(math.pi * min(s, max_steps) / max_steps)))
    log, tokens_seen, start = [], 0, 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        sched.load_state_dict(resume["sched"])
        set_rng_state(rng, resume["rng"])
        log, tokens_seen, start = list(resume["log"]), resume["tokens_seen"], resume["step"] + 1
    for step in progress(range(start, max_steps + 1), desc="sft steps"):
        model.train()
        ids, attn, loss_mask = sft_batch(tok, [sample_pair(rng) for _ in range(batch_size)], device)
        loss = lm_loss(model, ids, attn, loss_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens_seen += int(attn.sum())
        if step % eval_every == 0 or step == max_steps:
            model.eval()
            acc = evaluate() if evaluate is not None else float("nan")
            row = {"step": step, "tokens_seen": tokens_seen, "loss": loss.item(), "val_acc": acc}
            log.append(row)
            if on_log:
                on_log(row)
            if target_acc is not None and acc >= target_acc:
                break
        if on_checkpoint is not None and checkpoint_every > 0 and step % checkpoint_every == 0 and step < max_steps:
            on_checkpoint({"step": step, "model": model.state_dict(), "opt": opt.state_dict(),
                           "sched": sched.state_dict(), "rng": rng_state(rng), "log": log,
                           "tokens_seen": tokens_seen})
    model.eval()
    return log
