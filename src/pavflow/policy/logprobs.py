"""Per-token log-probs of a causal LM on right-padded token sequences, and the log-ratio of two models
(a trained policy π and a reference πref) on the same tokens:

    l_t = log π(ids[t] | ids[<t]) - log πref(ids[t] | ids[<t])

The implicit PRM sums l_t over a response's steps; RL's KL penalty sums it over a generation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_right(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of token sequences, right padded with pad_id: (B, L), (B, L)."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids.to(device), mask.to(device)  # (B, L), (B, L)


def token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t] | ids[:, <t]) at index t: (B, L); 0 at t = 0 (nothing to condition on).
    Padding positions hold the log-prob of the pad token: mask them."""
    B, L = ids.shape
    pos = torch.arange(L, device=ids.device).expand(B, L)  # right padding: real tokens sit at 0..n-1
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, :-1]  # (B, L-1, V)
    lp = logits.float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, L-1)
    return F.pad(lp, (1, 0))  # (B, L)


def token_log_ratios(model, ref, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """l_t = log π(ids[t] | <t) - log πref(ids[t] | <t): (B, L); 0 at t = 0 and at padding.
    Gradients flow through `model` only."""
    lp = token_logprobs(model, ids, mask)  # (B, L)
    with torch.no_grad():
        lp_ref = token_logprobs(ref, ids, mask)  # (B, L)
    return (lp - lp_ref) * mask


def per_generation(per_token, prompt_ids: list[list[int]], gen_ids: list[list[int]], pad_id: int,
                   device) -> list[torch.Tensor]:
    """per_token(ids, mask) -> (B, L) on prompt + generation of each sequence (one batch, right
    padded), cut to each sequence's generated tokens: a list of (len(gen),) tensors."""
    if len(prompt_ids) != len(gen_ids):
        raise ValueError(f"per_generation: {len(prompt_ids)} prompts but {len(gen_ids)} generations")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("per_generation: empty prompt (nothing to condition the first token on)")
    ids, mask = pad_right([p + g for p, g in zip(prompt_ids, gen_ids)], pad_id, device)  # (B, L)
    values = per_token(ids, mask)  # (B, L)
    return [values[b, len(p):len(p) + len(g)] for b, (p, g) in enumerate(zip(prompt_ids, gen_ids))]


def sequence_logprobs(model, prompt_ids: list[list[int]], gen_ids: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    """log π(token) of each generated token of each sequence (with grad): a list of (len(gen),)
    tensors, from one forward pass over prompt + generation."""
    dev = next(model.parameters()).device
    return per_generation(lambda ids, mask: token_logprobs(model, ids, mask), prompt_ids, gen_ids, pad_id, dev)
