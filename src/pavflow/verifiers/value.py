"""Value verifiers (orm, pqv, pav): one mechanism, different targets.

A value model is the policy's transformer with a fresh scalar head on every token
(`*ForTokenClassification`, num_labels=1). Its logit at the last token of state s_h is read as
logit v(s_h), so one forward pass over prompt + a_1..a_H scores every state h = 0..H:

    ids:        Q : 1 + 2 \\n 1 + 2 = 3 \\n A : 3
    boundaries:           ^h=0         ^h=1     ^h=2

Training is BCE-with-logits at the boundaries that carry a target (soft targets allowed):
orm has one target (outcome, at h = H), pqv has Q^pi at every h, pav has V^mu at every h; the
progress A^mu of a step is then the difference of consecutive values (metrics.advantages).
"""
from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

from pavflow.policy.device import resolve_device
from pavflow.policy.logprobs import pad_right
from pavflow.policy.model import check_model_dir
from pavflow.train import TrainHooks
from pavflow.verifiers.fit import FitSettings, fit


# -----------------------------------------------------------------------------
# model: build from a policy, save, load

def value_model_from_policy(policy_dir: str | os.PathLike, seed: int):
    """Policy backbone + new scalar head (initialised from `seed`), no dropout, float32, train mode."""
    path = check_model_dir(policy_dir)
    try:
        cfg = AutoConfig.from_pretrained(path, num_labels=1)
        cfg.classifier_dropout, cfg.hidden_dropout, cfg.attention_dropout = 0.0, 0.0, 0.0
        torch.manual_seed(seed)  # the only random part is the new head
        model = AutoModelForTokenClassification.from_pretrained(path, config=cfg, dtype=torch.float32)
    except Exception as e:
        raise RuntimeError(f"{path}: could not build a value model from this policy "
                           f"({type(e).__name__}: {e})") from e
    return model.train()


def value_model_scratch(policy_dir: str | os.PathLike, seed: int, *, hidden_size: int, n_layers: int,
                        n_heads: int, intermediate_size: int):
    """A value model of its own size, randomly initialised (from `seed`): the policy's architecture and
    vocabulary with these dimensions, a scalar head, no dropout, float32, train mode."""
    path = check_model_dir(policy_dir)
    cfg = AutoConfig.from_pretrained(path, num_labels=1)
    cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size = hidden_size, n_layers, intermediate_size
    cfg.num_attention_heads = cfg.num_key_value_heads = n_heads
    if hasattr(cfg, "head_dim"):
        cfg.head_dim = hidden_size // n_heads
    cfg.classifier_dropout, cfg.hidden_dropout, cfg.attention_dropout = 0.0, 0.0, 0.0
    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_config(cfg, dtype=torch.float32).train()


def save_value_model(model, tok, path: str | os.PathLike) -> None:
    model.save_pretrained(path)
    tok.save_pretrained(path)


def load_value_model(path: str | os.PathLike, device: str = "cpu"):
    """(model, tokenizer) from a directory written by `save_value_model`, in eval mode on `device`."""
    path = check_model_dir(path)
    cfg = AutoConfig.from_pretrained(path)
    archs = getattr(cfg, "architectures", None) or []
    if not any(a.endswith("ForTokenClassification") for a in archs) or cfg.num_labels != 1:
        raise ValueError(f"{path} is not a saved value model: expected a *ForTokenClassification "
                         f"with num_labels=1, found architectures={archs}, num_labels={cfg.num_labels}")
    tok = AutoTokenizer.from_pretrained(path)
    try:
        model = AutoModelForTokenClassification.from_pretrained(path, dtype=torch.float32)
    except Exception as e:
        raise RuntimeError(f"{path}: could not load the value model ({type(e).__name__}: {e})") from e
    return model.to(resolve_device(device)).eval(), tok


# -----------------------------------------------------------------------------
# states -> tokens

def encode_states(tok, prompt: str, steps: list[str]) -> tuple[list[int], list[int]]:
    """Token ids of prompt + all steps, and for h = 0..H the index of the last token of s_h.

    The text is tokenised once. If a state's end falls inside a token (BPE merging across a step
    boundary), its boundary is the last token that ends at or before it (token 0 if none does).
    """
    ends, pos = [len(prompt)], len(prompt)
    for a in steps:
        pos += len(a)
        ends.append(pos)
    text = prompt + "".join(steps)
    if tok.is_fast:
        enc = tok(text, return_offsets_mapping=True)
        ids = enc.input_ids
        tok_ends = [e for _, e in enc.offset_mapping]
        # special tokens (BOS) have offsets (0, 0); keep ends non-decreasing for the bisection
        for i in range(1, len(tok_ends)):
            tok_ends[i] = max(tok_ends[i], tok_ends[i - 1])
        boundaries = [max(bisect_right(tok_ends, e) - 1, 0) for e in ends]
    else:  # slow tokenizer: the boundary is the last token s_h's own tokenisation shares with the text
        ids = tok(text).input_ids
        boundaries = []
        for e in ends:
            p = tok(text[:e]).input_ids
            n = next((i for i, (x, y) in enumerate(zip(p, ids)) if x != y), min(len(p), len(ids)))
            boundaries.append(max(n - 1, 0))
    if not ids:
        raise ValueError(f"encode_states: empty token sequence for prompt {prompt!r}")
    return ids, boundaries


def _pad_id(tok) -> int:
    for i in (tok.pad_token_id, tok.eos_token_id):
        if i is not None:
            return i
    return 0


# -----------------------------------------------------------------------------
# training

@dataclass
class StateExample:
    prompt: str
    steps: list[str]
    targets: list[float | None]  # target for s_h, h = 0..H (len H+1); None = no target at s_h


def train_value(model, tok, examples: list[StateExample], settings: FitSettings,
                hooks: TrainHooks = TrainHooks()) -> list[dict]:
    """Fit the head (and backbone) by BCE at target-carrying boundaries, as `fit` does with
    `settings` (the same seed gives identical weights). Returns the log rows {"step", "tokens_seen",
    "loss"} (loss = mean over the steps since the previous row). Logging, checkpoints and resume:
    `hooks` (train.TrainHooks)."""
    device = next(model.parameters()).device
    data = []  # (ids, target positions, target values) per example with at least one target
    for i, ex in enumerate(examples):
        if len(ex.targets) != len(ex.steps) + 1:
            raise ValueError(f"train_value: example {i} has {len(ex.steps)} steps but "
                             f"{len(ex.targets)} targets (need steps + 1)")
        ids, bounds = encode_states(tok, ex.prompt, ex.steps)
        pos = [b for b, t in zip(bounds, ex.targets) if t is not None]
        tgt = [float(t) for t in ex.targets if t is not None]
        if any(not 0.0 <= t <= 1.0 for t in tgt):
            raise ValueError(f"train_value: example {i} has a target outside [0, 1]: {ex.targets}")
        if pos:
            data.append((ids, pos, tgt))
    if not data:
        raise ValueError("train_value: no example carries a target")
    pad = _pad_id(tok)

    def loss_fn(batch):
        ids, mask = pad_right([b[0] for b in batch], pad, device)  # (B, L)
        row = torch.tensor([i for i, b in enumerate(batch) for _ in b[1]], device=device)  # (T,)
        col = torch.tensor([p for b in batch for p in b[1]], device=device)  # (T,)
        target = torch.tensor([y for b in batch for y in b[2]], device=device)  # (T,)
        logits = model(input_ids=ids, attention_mask=mask).logits[..., 0]  # (B, L)
        return F.binary_cross_entropy_with_logits(logits[row, col].float(), target), int(mask.sum())

    return fit(model, data, loss_fn, settings, hooks, desc="verifier steps")


# -----------------------------------------------------------------------------
# scoring

@torch.no_grad()
def score_sequences(model, tok, prompts: list[str], steps: list[list[str]], rows, per_token, per_state,
                    who: str) -> tuple[list[np.ndarray], list[int]]:
    """The scoring loop of every verifier: encode each (prompt, steps) once, length-sort the sequences
    into batches of rows(L) sequences (L = the batch's longest) to limit padding, run
    per_token(ids, mask) -> (B, L) float64 numpy, and keep per_state(row, b) for each sequence (b: its
    state boundaries, encode_states). Returns the results in input order and each sequence's length."""
    if len(prompts) != len(steps):
        raise ValueError(f"{who}: {len(prompts)} prompts but {len(steps)} step lists")
    device = next(model.parameters()).device
    enc = [encode_states(tok, p, a) for p, a in zip(prompts, steps)]
    out: list[np.ndarray | None] = [None] * len(enc)
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i][0]), i))
    was_training, pad = model.training, _pad_id(tok)
    model.eval()
    start = 0
    while start < len(order):
        idx = order[start:start + rows(len(enc[order[start]][0]))]
        start += len(idx)
        ids, mask = pad_right([enc[i][0] for i in idx], pad, device)  # (B, L)
        per_row = per_token(ids, mask)  # (B, L)
        for r, i in enumerate(idx):
            out[i] = per_state(per_row[r], enc[i][1])
    model.train(was_training)
    return out, [len(e[0]) for e in enc]


def score_states(model, tok, prompts: list[str], steps: list[list[str]],
                 batch_size: int = 256) -> tuple[list[np.ndarray], list[int]]:
    """v(s_h) for h = 0..H of each (prompt, steps), and the tokens each sequence cost the verifier."""
    def v(ids, mask):  # (B, L)
        return torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits[..., 0].float()).cpu().numpy() \
            .astype(np.float64)
    return score_sequences(model, tok, prompts, steps, lambda L: batch_size, v, lambda row, b: row[b],
                           "score_states")


class ValueVerifier:
    """A trained value model ready for search: `.score(prompts, steps) -> (values, tokens)`."""

    def __init__(self, model, tok, batch_size: int = 256):
        self.model, self.tok, self.batch_size = model, tok, batch_size

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", batch_size: int = 256) -> "ValueVerifier":
        model, tok = load_value_model(path, device)
        return cls(model, tok, batch_size)

    def score(self, prompts: list[str], steps: list[list[str]]) -> tuple[list[np.ndarray], list[int]]:
        return score_states(self.model, self.tok, prompts, steps, self.batch_size)
