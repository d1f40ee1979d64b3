"""Implicit PRM (Yuan et al. 2024, "Free Process Rewards without Process Labels").

Two copies of the base policy: πθ (trained) and πref (frozen). For a response y = a_1..a_H after the
prompt x, every response token t gets the log-ratio

    l_t = log πθ(y_t | x, y_<t) - log πref(y_t | x, y_<t)    (policy.logprobs.token_log_ratios)

and the response reward is r(y) = β Σ_t l_t. Trained only on outcome labels (ce: σ(r) ≈ P(correct);
dpo: r(y+) > r(y-)), the partial sums are process rewards for free:

    q_h = β Σ_{t in steps 1..h} l_t    (q_0 = 0),    step reward q_h - q_{h-1},    Σ_h = q_H = r(y)

Tokens are assigned to steps by `encode_states`: token t belongs to step h iff
boundaries[h-1] < t <= boundaries[h]. Prompt tokens (t <= boundaries[0]) never count, nor do tokens
after boundaries[H] (e.g. an EOS a tokenizer appends), so q_H is exactly r(y).
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from pavflow.policy.device import resolve_device
from pavflow.policy.logprobs import pad_right, token_log_ratios
from pavflow.policy.model import check_model_dir
from pavflow.seeds import derive_seed
from pavflow.train import TrainHooks
from pavflow.verifiers.fit import FitSettings, fit
from pavflow.verifiers.value import _pad_id, encode_states, score_sequences

META = "implicit.json"
LOSSES = ("ce", "dpo")
_DROPOUTS = ("attention_dropout", "hidden_dropout", "classifier_dropout", "dropout", "resid_pdrop",
             "embd_pdrop", "attn_pdrop", "activation_dropout", "hidden_dropout_prob",
             "attention_probs_dropout_prob")


# -----------------------------------------------------------------------------
# models: πθ and πref from a policy, save, load

def _causal_lm(path, what: str):
    """float32 causal LM from a save_pretrained directory, every dropout off."""
    path = check_model_dir(path)
    try:
        cfg = AutoConfig.from_pretrained(path)
        for name in _DROPOUTS:
            if isinstance(getattr(cfg, name, None), float):
                setattr(cfg, name, 0.0)
        model = AutoModelForCausalLM.from_pretrained(path, config=cfg, dtype=torch.float32)
    except Exception as e:
        raise RuntimeError(f"{path}: could not load {what} ({type(e).__name__}: {e})") from e
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _frozen(ref):
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def implicit_models_from_policy(policy_dir: str | os.PathLike, seed: int):
    """(model, ref): two float32 copies of the policy, dropout off; model in train mode, ref frozen.
    Nothing is random in a copy; `seed` seeds torch anyway, for any weight the checkpoint lacks."""
    torch.manual_seed(seed)
    model = _causal_lm(policy_dir, "the implicit PRM's policy copy")
    ref = _causal_lm(policy_dir, "the implicit PRM's reference policy")
    return model.train(), _frozen(ref)


def save_implicit(model, tok, path: str | os.PathLike, *, beta: float, loss: str) -> None:
    """πθ and tokenizer via save_pretrained, plus implicit.json {"beta", "loss"}. πref is not saved:
    it is the base policy, given again at load time."""
    model.save_pretrained(path)
    tok.save_pretrained(path)
    with open(os.path.join(path, META), "w") as f:
        json.dump({"beta": float(beta), "loss": loss}, f)


def load_implicit(path: str | os.PathLike, ref_path: str | os.PathLike, device: str = "cpu"):
    """(model, ref, tok, meta) from a directory written by `save_implicit` and the base policy."""
    path = check_model_dir(path)
    if not (path / META).is_file():
        raise ValueError(f"{path} is not a saved implicit PRM: it has no {META} (write it with "
                         f"save_implicit)")
    meta = json.loads((path / META).read_text())
    if not isinstance(meta.get("beta"), (int, float)):
        raise ValueError(f"{path / META}: expected a numeric 'beta', found {meta}")
    model = _causal_lm(path, "the implicit PRM")
    ref = _frozen(_causal_lm(ref_path, "the implicit PRM's reference policy"))
    if model.config.vocab_size != ref.config.vocab_size:
        raise ValueError(f"implicit PRM {path} (vocab {model.config.vocab_size}) and reference "
                         f"{ref_path} (vocab {ref.config.vocab_size}) do not share a vocabulary: "
                         f"is {ref_path} the policy the PRM was trained from?")
    tok = AutoTokenizer.from_pretrained(path)
    device = resolve_device(device)
    return model.to(device).eval(), ref.to(device), tok, meta


# -----------------------------------------------------------------------------
# the formulas

def _span_mask(spans, L: int, device) -> torch.Tensor:
    """(B, L) float, 1 at token indices lo < t <= hi of each row's (lo, hi)."""
    t = torch.arange(L, device=device)[None]  # (1, L)
    lo = torch.tensor([s[0] for s in spans], device=device)[:, None]  # (B, 1)
    hi = torch.tensor([s[1] for s in spans], device=device)[:, None]  # (B, 1)
    return ((t > lo) & (t <= hi)).float()


def ce_loss(r: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-[y log σ(r) + (1 - y) log(1 - σ(r))], mean over the batch. r, y: (B,)."""
    y = y.to(r.dtype)
    return -(y * F.logsigmoid(r) + (1 - y) * F.logsigmoid(-r)).mean()


def dpo_loss(r_pos: torch.Tensor, r_neg: torch.Tensor) -> torch.Tensor:
    """-log σ(r(y+) - r(y-)), mean over pairs. r_pos, r_neg: (P,)."""
    return -F.logsigmoid(r_pos - r_neg).mean()


# -----------------------------------------------------------------------------
# scoring

_MAX_LOGITS = 1 << 27  # logits per scoring batch (B * L * V), ~0.5 GB in float32


def implicit_rewards(model, ref, tok, prompts: list[str], steps: list[list[str]], beta: float,
                     batch_size: int = 64) -> tuple[list[np.ndarray], list[int]]:
    """q_h for h = 0..H of each (prompt, steps) as float64 (H+1,) arrays (q_0 = 0), and the length of
    each token sequence."""
    # both models' full-vocabulary logits are materialised: cap B * L * V (a 49k vocabulary at batch 512
    # would need tens of GB)
    def rows(L):
        return max(1, min(batch_size, _MAX_LOGITS // (L * model.config.vocab_size)))

    def cum(ids, mask):  # (B, L) running sum of the log ratios
        return token_log_ratios(model, ref, ids, mask).double().cumsum(-1).cpu().numpy()

    def q(row, b):  # (H+1,): Σ of l_t over b[0] < t <= b[h]
        return beta * (row[b] - row[b[0]])
    return score_sequences(model, tok, prompts, steps, rows, cum, q, "implicit_rewards")


class ImplicitVerifier:
    """A trained implicit PRM ready for search. `.q` gives the process values q_h (logit scale);
    `.score` gives σ(q_h), the state-value view used by search and metrics (under the ce loss σ(r) is
    P(correct)). Both πθ and πref read every sequence, so the token count of an item is 2 * its
    length in tokens."""

    def __init__(self, model, ref, tok, beta: float, batch_size: int = 64):
        self.model, self.ref, self.tok, self.beta, self.batch_size = model, ref, tok, beta, batch_size

    @classmethod
    def load(cls, path: str | os.PathLike, ref_path: str | os.PathLike, device: str = "cpu",
             batch_size: int = 64) -> "ImplicitVerifier":
        model, ref, tok, meta = load_implicit(path, ref_path, device)
        return cls(model, ref, tok, float(meta["beta"]), batch_size)

    def q(self, prompts: list[str], steps: list[list[str]]) -> tuple[list[np.ndarray], list[int]]:
        q, n = implicit_rewards(self.model, self.ref, self.tok, prompts, steps, self.beta,
                                self.batch_size)
        return q, [2 * k for k in n]

    def score(self, prompts: list[str], steps: list[list[str]]) -> tuple[list[np.ndarray], list[int]]:
        q, tokens = self.q(prompts, steps)
        return [1.0 / (1.0 + np.exp(-x)) for x in q], tokens


# -----------------------------------------------------------------------------
# training

@dataclass
class ResponseExample:
    prompt: str
    steps: list[str]
    correct: int  # 0/1 outcome of the response
    group: str    # problem id: dpo pairs are formed within a group


def dpo_pairs(examples: list[ResponseExample], seed: int,
              max_pairs_per_problem: int | None) -> list[tuple[int, int]]:
    """(pos, neg) index pairs: within each problem (group), every correct x incorrect response; if a
    problem has more than `max_pairs_per_problem` (None: no cap) a uniform subset of that size is
    kept, drawn by a generator seeded from (seed, group) so a problem's pairs do not depend on the
    other problems. Groups come in order of first appearance, pairs in (pos, neg) index order."""
    if max_pairs_per_problem is not None and max_pairs_per_problem < 1:
        raise ValueError(f"dpo_pairs: max_pairs_per_problem must be >= 1 or None, got "
                         f"{max_pairs_per_problem}")
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.group, []).append(i)
    out = []
    for g, idx in groups.items():
        pairs = [(p, n) for p in idx if examples[p].correct for n in idx if not examples[n].correct]
        if max_pairs_per_problem is not None and len(pairs) > max_pairs_per_problem:
            keep = random.Random(derive_seed(seed, g)).sample(range(len(pairs)), max_pairs_per_problem)
            pairs = [pairs[k] for k in sorted(keep)]
        out.extend(pairs)
    return out


def train_implicit(model, ref, tok, examples: list[ResponseExample], *, loss: str, beta: float,
                   settings: FitSettings, max_pairs_per_problem: int | None = 4,
                   hooks: TrainHooks = TrainHooks()) -> list[dict]:
    """Fit πθ on outcome labels with r(y) = β Σ l_t: loss="ce" is BCE of σ(r) against `correct`
    (a batch is `settings.batch_size` responses); loss="dpo" is -log σ(r(y+) - r(y-)) over `dpo_pairs`
    (a batch is that many pairs). Responses with no token in their steps are dropped. Optimiser,
    schedule, seeded epoch-permutation minibatches and log rows {"step", "tokens_seen", "loss"} are
    `fit`'s, as for `train_value`; tokens_seen counts the tokens of the sequences πθ trained on (πref
    reads them too). Logging, checkpoints and resume: `hooks` (train.TrainHooks)."""
    if loss not in LOSSES:
        raise ValueError(f"train_implicit: loss must be one of {LOSSES}, got {loss!r}")
    device = next(model.parameters()).device
    if next(ref.parameters()).device != device:
        raise ValueError(f"train_implicit: model is on {device} but ref on {next(ref.parameters()).device}")
    _frozen(ref)
    usable, seqs = [], []  # examples with at least one response token; (ids, (b_0, b_H), y)
    for i, ex in enumerate(examples):
        if ex.correct not in (0, 1):
            raise ValueError(f"train_implicit: example {i} has correct={ex.correct!r}, expected 0 or 1")
        ids, b = encode_states(tok, ex.prompt, ex.steps)
        if b[-1] > b[0]:
            usable.append(ex)
            seqs.append((ids, (b[0], b[-1]), float(ex.correct)))
    if not seqs:
        raise ValueError("train_implicit: no example has a response token (all step lists are empty)")
    if loss == "ce":
        data = [(s,) for s in seqs]
    else:
        data = [(seqs[p], seqs[n]) for p, n in dpo_pairs(usable, settings.seed, max_pairs_per_problem)]
        if not data:
            raise ValueError(f"train_implicit: loss=dpo needs a problem (group) with both a correct and "
                             f"an incorrect response; none of the {len(usable)} responses' "
                             f"{len({e.group for e in usable})} problems has both. Use loss=ce, which "
                             f"trains on single responses")

    pad = _pad_id(tok)

    def loss_fn(batch):
        flat = [s for item in batch for s in item]  # ce: B responses; dpo: pos_0, neg_0, pos_1, ...
        ids, mask = pad_right([s[0] for s in flat], pad, device)  # (N, L)
        l = token_log_ratios(model, ref, ids, mask)  # (N, L)
        r = beta * (l * _span_mask([s[1] for s in flat], ids.shape[1], device)).sum(-1)  # (N,)
        if loss == "ce":
            return ce_loss(r, torch.tensor([s[2] for s in flat], device=device)), int(mask.sum())
        return dpo_loss(r[0::2], r[1::2]), int(mask.sum())  # (P,), (P,)

    return fit(model, data, loss_fn, settings, hooks, desc="implicit PRM steps")
