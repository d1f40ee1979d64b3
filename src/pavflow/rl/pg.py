"""Online RL of the policy: on-policy policy gradient with a leave-one-out baseline (RLOO).

For each update, G responses are sampled for each of P train problems. Every token of step h of a
response gets the advantage

    outcome arm:  A_tok = r - mean(r of the other G-1 samples)              (estimates Q^pi - V^pi)
    pav arm:      A_tok = r - mean(r of the others) + alpha * a_mu[h-1]     (effective reward)

where a_mu[h-1] = v_mu[h] - v_mu[h-1] is the progress of step h under the prover, as predicted by a
PAV (`step_score_fn`). With `kl_coef` > 0 every token's advantage also pays
-kl_coef * (log pi(tok) - log pi_ref(tok)), pi_ref being the initial policy. The loss is
-sum(A_tok * log pi(tok)) / (generated tokens of the batch).

Guardrails: a non-finite loss, or response length / step count drifting away (by `guard_ratio`) while
sampled test accuracy falls (by `guard_acc_drop`), stops the run with `DegenerateRun`, before the
degenerate state is checkpointed.
"""
from __future__ import annotations

import copy
import math
import random
from typing import Callable

import numpy as np
import torch

from pavflow.checkpoint import rng_state, set_rng_state
from pavflow.config import RLConfig
from pavflow.policy.logprobs import per_generation, sequence_logprobs, token_log_ratios
from pavflow.progress import progress
from pavflow.policy.sampler import Sampler
from pavflow.search.beam import ScoreFn
from pavflow.seeds import derive_seed
from pavflow.tasks.base import Problem, Task


# -----------------------------------------------------------------------------
# advantages

def loo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """rewards (P, G) -> (P, G): each reward minus the mean of the other G-1 samples of its problem."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"loo_advantages: need rewards of shape (P, G) with G >= 2, got {tuple(rewards.shape)}")
    G = rewards.shape[1]
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (G - 1)  # (P, G)
    return rewards - others


def step_of_token(tokens: list[int], step_mask, n_steps: int | None = None) -> list[int]:
    """1-based step index of each generated token. A step ends at (and includes) its separator token
    (`step_mask[token]` True); tokens after the last separator form the last step. If `n_steps` (the
    number of steps the task's splitter found in the decoded text) is given, indices are capped at it,
    so e.g. an EOS right after a final separator belongs to the last step instead of a phantom one."""
    out, h = [], 1
    for t in tokens:
        out.append(h)
        h += bool(step_mask[t])
    if n_steps is not None:
        out = [min(s, max(n_steps, 1)) for s in out]
    return out


def token_advantages(outcome_adv: float, step_of_token: list[int], step_rewards: list[float] | None,
                     alpha: float) -> list[float]:
    """Advantage of each generated token: outcome_adv (+ alpha * step_rewards[h-1] for a token of step h)."""
    if step_rewards is None:
        return [float(outcome_adv)] * len(step_of_token)
    H = len(step_rewards)
    for h in step_of_token:
        if not 1 <= h <= H:
            raise ValueError(f"token_advantages: token of step {h}, but only {H} step rewards")
    return [float(outcome_adv) + alpha * float(step_rewards[h - 1]) for h in step_of_token]


def kl_penalized(advantages: list[float], log_ratios: list[float], kl_coef: float) -> list[float]:
    """Token advantages minus kl_coef * (sum of log pi/pi_ref over this and the later tokens of the
    response): the KL penalty as a per-token reward, credited to the tokens that lead to it
    (reward-to-go), so that its policy gradient is that of kl_coef * KL(pi || pi_ref)."""
    if len(advantages) != len(log_ratios):
        raise ValueError(f"kl_penalized: {len(advantages)} advantages but {len(log_ratios)} log-ratios")
    to_go = np.cumsum(np.asarray(log_ratios, dtype=np.float64)[::-1])[::-1]
    return [float(a - kl_coef * r) for a, r in zip(advantages, to_go)]


# -----------------------------------------------------------------------------
# loss

def pg_loss(logprobs: list[torch.Tensor], advantages: list[list[float]]) -> torch.Tensor:
    """-sum over all generated tokens of adv * log pi, divided by the number of generated tokens."""
    n_tok = sum(len(a) for a in advantages)
    return _pg_sum(logprobs, advantages) / max(n_tok, 1)


def _pg_sum(logprobs: list[torch.Tensor], advantages: list[list[float]]) -> torch.Tensor:
    total = None
    for lp, adv in zip(logprobs, advantages, strict=True):
        if lp.shape != (len(adv),):
            raise ValueError(f"pg_loss: {tuple(lp.shape)} log-probs but {len(adv)} advantages")
        term = -(torch.tensor(adv, dtype=lp.dtype, device=lp.device) * lp).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


def policy_step(model, opt, prompt_ids: list[list[int]], gen_ids: list[list[int]],
                advantages: list[list[float]], pad_id: int, grad_clip: float, micro_batch: int) -> float:
    """One optimiser step on pg_loss over the whole batch, accumulated over micro-batches of sequences
    (the sum of the micro-batch losses equals pg_loss of the batch). Returns the loss."""
    model.train()
    opt.zero_grad(set_to_none=True)
    n_tok = max(sum(len(a) for a in advantages), 1)
    loss_total = 0.0
    for i in range(0, len(gen_ids), micro_batch):
        sl = slice(i, i + micro_batch)
        lps = sequence_logprobs(model, prompt_ids[sl], gen_ids[sl], pad_id)
        loss = _pg_sum(lps, advantages[sl]) / n_tok
        loss.backward()
        loss_total += loss.item()
    if not math.isfinite(loss_total):
        opt.zero_grad(set_to_none=True)
        raise FloatingPointError(f"non-finite policy-gradient loss {loss_total}")
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss_total


# -----------------------------------------------------------------------------
# training loop

class DegenerateRun(RuntimeError):
    """RL stopped by a guardrail at `update`; `rows` are the evaluations so far."""

    def __init__(self, reason: str, update: int, rows: list[dict]):
        super().__init__(f"RL stopped at update {update}: {reason}")
        self.reason, self.update, self.rows = reason, update, rows


@torch.no_grad()
def reference_logprobs(ref, prompt_ids: list[list[int]], gen_ids: list[list[int]], pad_id: int,
                       micro_batch: int) -> list[torch.Tensor]:
    """log pi_ref(tok) of every generated token, in micro-batches of sequences: a list of (len(gen),)."""
    out = []
    for i in range(0, len(gen_ids), micro_batch):
        out += sequence_logprobs(ref, prompt_ids[i:i + micro_batch], gen_ids[i:i + micro_batch], pad_id)
    return out


@torch.no_grad()
def response_log_ratios(model, ref, prompt_ids: list[list[int]], gen_ids: list[list[int]], pad_id: int,
                        micro_batch: int) -> list[torch.Tensor]:
    """log pi(tok) - log pi_ref(tok) of every generated token: a list of (len(gen),) tensors.
    Summed over a response it is a one-sample estimate of KL(pi || pi_ref) for its prompt."""
    dev, out = next(model.parameters()).device, []
    for i in range(0, len(gen_ids), micro_batch):
        sl = slice(i, i + micro_batch)
        out += per_generation(lambda ids, mask: token_log_ratios(model, ref, ids, mask), prompt_ids[sl],
                              gen_ids[sl], pad_id, dev)
    return out


def evaluate(sampler: Sampler, task: Task, problems: list[Problem], cfg: RLConfig, seed: int,
             ref=None, at_ref: bool = False) -> tuple[dict, list[bool]]:
    """Test metrics of the current policy, and which problems it solved (greedy or any sample).

    test_acc_greedy; with eval_samples > 0: test_acc_sampled (T=1, mean over samples) and
    pass_at_n (a problem counts if any of its eval_samples samples is correct); response_tokens and
    n_steps (means over the sampled responses, or the greedy ones without samples); kl_ref (mean over
    those responses of the k3 estimate of KL(pi || pi_ref), nats, never negative; nan without `ref`;
    0 when `at_ref` says the policy is still its reference). log pi comes from the sampler's own
    logits and only pi_ref needs a forward pass. The same sampler seeds at every evaluation point:
    common random numbers along the curve."""
    sampler.model.eval()
    prompts = [task.prompt(p.question) for p in problems]
    kl = ref is not None and not at_ref
    greedy = sampler.sample(prompts, 1, seed=derive_seed(seed, "eval-greedy", 0), temperature=0.0,
                            max_new_tokens=cfg.max_new_tokens, logprobs=kl and cfg.eval_samples == 0)
    solved = [bool(task.grade(cs[0].text, p.answer)) for cs, p in zip(greedy.completions, problems)]
    m = {"test_acc_greedy": float(np.mean(solved)), "test_acc_sampled": math.nan, "pass_at_n": math.nan}
    outs = greedy
    if cfg.eval_samples > 0:
        outs = sampler.sample(prompts, cfg.eval_samples, seed=derive_seed(seed, "eval-sampled", 0),
                              temperature=1.0, max_new_tokens=cfg.max_new_tokens, logprobs=kl)
        correct = np.array([[task.grade(c.text, p.answer) for c in cs]
                            for cs, p in zip(outs.completions, problems)], dtype=np.float64)  # (P, S)
        m["test_acc_sampled"] = float(correct.mean())
        m["pass_at_n"] = float((correct.max(axis=1) > 0).mean())
        solved = [g or bool(c.max()) for g, c in zip(solved, correct)]
    comps = [c for cs in outs.completions for c in cs]
    m["response_tokens"] = float(np.mean([c.gen_tokens for c in comps]))
    m["n_steps"] = float(np.mean([len(task.split_steps(c.text)) for c in comps]))
    m["kl_ref"] = 0.0 if ref is not None and at_ref else math.nan
    if kl:
        prompt_ids = sampler.encode(prompts)
        n = len(comps) // len(prompts)
        lp_ref = reference_logprobs(ref, [prompt_ids[i // n] for i in range(len(comps))], [c.tokens for c in comps],
                                    sampler.pad_id, cfg.micro_batch)
        m["kl_ref"] = float(np.mean([kl_k3(torch.tensor(c.logprobs) - r.float()) for c, r in zip(comps, lp_ref)]))
    return m, solved


def kl_k3(log_ratios: torch.Tensor) -> float:
    """KL(pi || pi_ref) of one sampled response from its tokens' log pi - log pi_ref (l_t): the sum of
    Schulman's k3 estimator exp(-l_t) - 1 + l_t, which is unbiased like the plain sum of l_t but never
    negative (each term is >= 0), so a curve of it cannot dip below zero by noise."""
    lr = log_ratios.double()
    return float((torch.expm1(-lr) + lr).sum())


def degeneration(start: dict, now: dict, cfg: RLConfig) -> str | None:
    """Why the evaluation `now` looks degenerate against the one at update 0, or None: response length
    or step count off by more than guard_ratio while accuracy fell by guard_acc_drop or more."""
    acc = "test_acc_sampled" if cfg.eval_samples > 0 else "test_acc_greedy"
    if not now[acc] <= start[acc] - cfg.guard_acc_drop:
        return None
    for key, what in (("response_tokens", "mean response length"), ("n_steps", "mean step count")):
        a, b = start[key], now[key]
        if a > 0 and not a / cfg.guard_ratio <= b <= a * cfg.guard_ratio:
            return (f"{what} went from {a:.1f} to {b:.1f} while {acc} fell from {start[acc]:.3f} "
                    f"to {now[acc]:.3f}")
    return None


def train_rl(model, tok, task: Task, train_problems: list[Problem], test_problems: list[Problem],
             cfg: RLConfig, *, seed: int, alpha: float = 0.0, step_score_fn: ScoreFn | None = None,
             on_eval: Callable[[dict], None] | None = None,
             on_checkpoint: Callable[[dict], None] | None = None, resume: dict | None = None) -> list[dict]:
    """Policy gradient with LOO baseline; outcome arm, or pav arm (dense progress, weight `alpha`) if
    `step_score_fn` (values at s_0..s_H of each response, whose differences are the progress). `cfg` is
    the config's rl section (pavflow.config.RLConfig); `seed` the run's.
    `model` holds the initial policy, which is also the KL reference. Returns one row per evaluation
    (update 0, every eval_every updates, and the last update): update, samples_seen, train_reward,
    the `evaluate` metrics, newly_solved (fraction of the test problems unsolved at update 0 that are
    solved now) and the cumulative gen_tokens and verifier_tokens spent by training. Every
    `cfg.checkpoint_every` updates (0: never) the training state goes to `on_checkpoint`; given back as
    `resume`, training continues from it exactly. Raises DegenerateRun when a guardrail trips."""
    if cfg.problems_per_update > len(train_problems):
        raise ValueError(f"train_rl: problems_per_update={cfg.problems_per_update} > "
                         f"{len(train_problems)} train problems")
    if not test_problems:
        raise ValueError("train_rl: no test problems to evaluate on")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    sampler = Sampler(model, tok, step_sep=task.step_sep)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    P, G = cfg.problems_per_update, cfg.samples_per_problem
    is_sep = sampler.step_mask.tolist()
    rows: list[dict] = []
    unsolved0: list[int] = []
    gen_tokens = verifier_tokens = 0

    def log_eval(update: int, train_reward: float):
        nonlocal unsolved0
        m, solved = evaluate(sampler, task, test_problems, cfg, seed, ref, at_ref=update == 0)
        if update == 0:
            unsolved0 = [i for i, s in enumerate(solved) if not s]
        newly = float(np.mean([solved[i] for i in unsolved0])) if unsolved0 else math.nan
        row = {"update": update, "samples_seen": update * P * G, "train_reward": train_reward, **m,
               "newly_solved": newly, "gen_tokens": gen_tokens, "verifier_tokens": verifier_tokens}
        rows.append(row)
        if on_eval is not None:
            on_eval(row)
        reason = degeneration(rows[0], row, cfg)
        if reason is not None:
            raise DegenerateRun(reason, update, rows)

    start = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        set_rng_state(rng, resume["rng"])
        rows, gen_tokens, verifier_tokens = list(resume["rows"]), resume["gen_tokens"], resume["verifier_tokens"]
        unsolved0, start = list(resume["unsolved0"]), resume["update"] + 1
        if "progress" in resume:  # a stateful progress source (an oracle prover's cached rollouts)
            step_score_fn.load_state_dict(resume["progress"])
    else:
        log_eval(0, math.nan)
    for update in progress(range(start, cfg.updates + 1), desc="rl updates"):
        # sample G responses for each of P problems with the current policy
        problems = rng.sample(train_problems, P)
        prompts = [task.prompt(p.question) for p in problems]
        model.eval()
        samples = sampler.sample(prompts, G, seed=derive_seed(seed, "train", update),
                                 temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
        comps = [c for cs in samples.completions for c in cs]  # P*G, problem-major
        gen_tokens += samples.gen_tokens
        rewards = torch.tensor([[task.grade(c.text, p.answer) for c in cs]
                                for cs, p in zip(samples.completions, problems)], dtype=torch.float32)  # (P, G)
        outcome_adv = loo_advantages(rewards).flatten().tolist()  # (P*G,)

        # dense progress a_mu from the PAV: a_mu[h-1] = v_mu[h] - v_mu[h-1], h = 1..H
        steps = [task.split_steps(c.text) for c in comps]
        a_mu: list[list[float] | None] = [None] * len(comps)
        if step_score_fn is not None:
            v_mu, cost = step_score_fn([pr for pr in prompts for _ in range(G)], steps)
            verifier_tokens += int(sum(cost))
            for i, (v, st) in enumerate(zip(v_mu, steps, strict=True)):
                v = np.asarray(v, dtype=np.float64)
                if v.shape != (len(st) + 1,):
                    raise ValueError(f"train_rl: step_score_fn returned {v.shape[0]} values for a "
                                     f"response of {len(st)} steps; expected H + 1 = {len(st) + 1}")
                a_mu[i] = np.diff(v).tolist() if st else None

        advantages = [token_advantages(outcome_adv[i], step_of_token(c.tokens, is_sep, len(steps[i])),
                                       a_mu[i], alpha) for i, c in enumerate(comps)]
        prompt_ids = sampler.encode(prompts)
        seq_prompts = [prompt_ids[i // G] for i in range(len(comps))]
        if cfg.kl_coef > 0:
            ratios = response_log_ratios(model, ref, seq_prompts, [c.tokens for c in comps], sampler.pad_id,
                                      cfg.micro_batch)
            advantages = [kl_penalized(adv, ratio.tolist(), cfg.kl_coef) for adv, ratio in zip(advantages, ratios)]
        try:
            policy_step(model, opt, seq_prompts, [c.tokens for c in comps], advantages, sampler.pad_id,
                        cfg.grad_clip, cfg.micro_batch)
        except FloatingPointError as e:
            raise DegenerateRun(str(e), update, rows) from e

        if update % cfg.eval_every == 0 or update == cfg.updates:
            log_eval(update, rewards.mean().item())
        if on_checkpoint is not None and cfg.checkpoint_every > 0 and update % cfg.checkpoint_every == 0 \
                and update < cfg.updates:
            on_checkpoint({"update": update, "model": model.state_dict(), "opt": opt.state_dict(),
                           "rng": rng_state(rng), "rows": rows, "unsolved0": unsolved0,
                           "gen_tokens": gen_tokens, "verifier_tokens": verifier_tokens,
                           **({"progress": step_score_fn.state_dict()} if hasattr(step_score_fn, "state_dict") else {})})
    model.eval()
    return rows


__all__ = ["DegenerateRun", "degeneration", "evaluate",
           "kl_penalized", "loo_advantages", "pg_loss", "policy_step", "response_log_ratios",
           "sequence_logprobs", "step_of_token", "token_advantages", "train_rl"]
