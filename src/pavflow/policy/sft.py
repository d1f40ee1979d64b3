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
from pavflow.train import TrainHooks, train_loop


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


class PairBatches:
    """`batch_size` fresh (prompt, solution) pairs per batch, drawn by sample_pair(rng) from a seeded
    random.Random: a batch source of `train_loop`."""

    def __init__(self, sample_pair: Callable[[random.Random], tuple[str, str]], batch_size: int, seed: int):
        self.sample_pair, self.batch_size, self.rng = sample_pair, batch_size, random.Random(seed)

    def __call__(self) -> list[tuple[str, str]]:
        return [self.sample_pair(self.rng) for _ in range(self.batch_size)]

    def state_dict(self) -> dict:
        return rng_state(self.rng)

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(self.rng, state)


def warmup_cosine(t: int, warmup: int, max_steps: int) -> float:
    """LR multiplier of step t = 0..max_steps-1: linear warmup over `warmup` steps times a cosine decay
    to 0 over max_steps."""
    return min(1.0, (t + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(t, max_steps) / max_steps))


def train_sft(model, tok, sample_pair: Callable[[random.Random], tuple[str, str]], *,
              max_steps: int, batch_size: int, lr: float, warmup: int, seed: int,
              eval_every: int, evaluate: Callable[[], float] | None = None,
              target_acc: float | None = None, hooks: TrainHooks = TrainHooks()) -> list[dict]:
    """AdamW (betas 0.9, 0.99; weight decay 0.01 on every weight) at lr * warmup_cosine, gradients
    clipped to norm 1; returns the log rows {"step", "tokens_seen", "loss", "val_acc"}, one per
    evaluation (every eval_every steps and at the last), loss being that step's batch loss.

    `evaluate()` returns the sampled accuracy used as stopping rule (>= target_acc stops training).
    Logging, checkpoints and resume: `hooks` (train.TrainHooks).
    """
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)

    def loss_fn(pairs):
        ids, attn, loss_mask = sft_batch(tok, pairs, device)
        return lm_loss(model, ids, attn, loss_mask), int(attn.sum())

    return train_loop(model, opt, lambda t: lr * warmup_cosine(t, warmup, max_steps),
                      PairBatches(sample_pair, batch_size, seed), loss_fn, steps=max_steps, grad_clip=1.0,
                      log_every=eval_every, loss_window=1,
                      evaluate=lambda: {"val_acc": evaluate() if evaluate is not None else float("nan")},
                      stop=lambda row: target_acc is not None and row["val_acc"] >= target_acc,
                      hooks=hooks, desc="sft steps")
