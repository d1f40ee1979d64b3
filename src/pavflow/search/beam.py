"""Step-level beam search guided by a process verifier (Snell et al. 2024; Setlur et al. 2024).

Budget N with `expansions` E: beam width B = max(1, N // E), and each active beam is expanded into
M = N // B one-step candidates, so a round samples at most B * M <= N steps. The first round expands
the bare prompt, which stands for B identical beams, into B * M candidates. Every candidate gets a
step score; the top B candidates of each question are kept (ties to the lower candidate index);
kept candidates that emitted EOS leave for the finished pool, the others are the next round's beams.
After `max_steps` rounds the remaining beams join the pool unfinished. The answer is the pool's
candidate with the highest final score.

A round is one `Sampler.sample` call for all beams of all questions (each beam prefix is encoded
once and fanned out to its M candidates) and one step-score call for all candidates.

Verifier interfaces (texts of state s_h are `prompt + steps[:h]`, `prompt = task.prompt(question)`):
    ScoreFn(prompts, steps) -> (values, tokens): per item the values at h = 0..H (shape (H+1,))
        and the verifier tokens that item cost.
    StepScoreFn(prompts, steps) -> (scores, tokens): per item one float and its token cost.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from pavflow.seeds import derive_seed
from pavflow.verifiers.metrics import advantages

ScoreFn = Callable[[list[str], list[list[str]]], tuple[list[np.ndarray], list[int]]]
StepScoreFn = Callable[[list[str], list[list[str]]], tuple[list[float], list[int]]]


def _values(fn: ScoreFn, prompts: list[str], steps: list[list[str]]):
    values, tokens = fn(prompts, steps)
    if len(values) != len(steps) or len(tokens) != len(steps):
        raise ValueError(f"score_fn returned {len(values)} values and {len(tokens)} token counts "
                         f"for {len(steps)} items")
    for v, s in zip(values, steps):
        if len(v) != len(s) + 1:
            raise ValueError(f"score_fn returned {len(v)} values for a response of {len(s)} steps; "
                             f"expected one per state h = 0..{len(s)}")
    return values, tokens


def effective_reward(pqv_fn: ScoreFn, pav_fn: ScoreFn | None, alpha: float) -> StepScoreFn:
    """Step score of the newest step a_H of each item: Q^pi(s_{H-1}, a_H) + alpha * A^mu(s_{H-1}, a_H)
    = q_pi(s_H) + alpha * (v_mu(s_H) - v_mu(s_{H-1})). pav_fn is not called when alpha == 0.
    An item with no steps (H = 0) has no progress: its score is q_pi(s_0)."""
    if alpha != 0 and pav_fn is None:
        raise ValueError(f"effective_reward: alpha={alpha} needs a pav score function")

    def step_score(prompts: list[str], steps: list[list[str]]) -> tuple[list[float], list[int]]:
        q_pi, q_tokens = _values(pqv_fn, prompts, steps)
        v_mu, v_tokens = _values(pav_fn, prompts, steps) if alpha != 0 else (None, [0] * len(steps))
        scores = []
        for i, s in enumerate(steps):
            h = len(s)
            # A^mu(s_{h-1}, a_h) = v_mu(s_h) - v_mu(s_{h-1})
            a_mu = float(advantages(v_mu[i])[-1]) if alpha != 0 and h > 0 else 0.0
            scores.append(float(q_pi[i][h]) + alpha * a_mu)
        return scores, [a + b for a, b in zip(q_tokens, v_tokens)]

    return step_score


def last_value(score_fn: ScoreFn) -> StepScoreFn:
    """Score of an item = the verifier's value at its last state s_H (e.g. a final_score_fn)."""
    def step_score(prompts: list[str], steps: list[list[str]]) -> tuple[list[float], list[int]]:
        values, tokens = _values(score_fn, prompts, steps)
        return [float(v[-1]) for v in values], list(tokens)
    return step_score


def beam_search(sampler, task, questions: list[str], *, budget: int, search, step_score_fn: StepScoreFn,
                final_score_fn: StepScoreFn, seed: int) -> list[dict]:
    """One dict per question: response (text after the prompt), score (its final score), finish
    ("eos" or "max_steps"), gen_tokens (all candidates, kept or not), prompt_tokens (encoded by the
    sampler), verifier_tokens and n_calls (items scored, step and final scoring).
    `search` (pavflow.config.SearchConfig) gives expansions, max_steps, max_step_tokens, temperature."""
    expansions, max_steps, max_step_tokens = search.expansions, search.max_steps, search.max_step_tokens
    if budget < 1 or expansions < 1 or max_steps < 1 or max_step_tokens < 1:
        raise ValueError(f"beam_search: budget, expansions, max_steps and max_step_tokens must be >= 1; "
                         f"got {budget}, {expansions}, {max_steps}, {max_step_tokens}")
    if not questions:
        return []
    width = max(1, budget // expansions)  # B
    m = budget // width  # candidates per beam
    Q = len(questions)
    prompts = [task.prompt(q) for q in questions]
    cost = {k: [0] * Q for k in ("gen_tokens", "prompt_tokens", "verifier_tokens", "n_calls")}

    def score(fn: StepScoreFn, items: list[tuple[int, str]]) -> list[float]:
        steps = [task.split_steps(text) for _, text in items]
        scores, tokens = fn([prompts[i] for i, _ in items], steps)
        if len(scores) != len(items) or len(tokens) != len(items):
            raise ValueError(f"score function returned {len(scores)} scores and {len(tokens)} token "
                             f"counts for {len(items)} items")
        if any(s != s for s in scores):
            raise ValueError("score function returned NaN scores")
        for (i, _), t in zip(items, tokens):
            cost["verifier_tokens"][i] += int(t)
            cost["n_calls"][i] += 1
        return [float(s) for s in scores]

    active = [(i, "") for i in range(Q)]  # beams: (question, response text so far)
    pool: list[tuple[int, str, str]] = []  # finished: (question, response, finish)
    for step in range(max_steps):
        if not active:
            break
        prefixes = []
        for i, text in active:
            steps = task.split_steps(text)
            prefixes.append(task.prefix(questions[i], steps, len(steps)))
        samples = sampler.sample(prefixes, width * m if step == 0 else m, seed=derive_seed(seed, "round", step),
                                 temperature=search.temperature, max_new_tokens=max_step_tokens,
                                 stop_at_step=True)
        cands, done = [], []  # candidates in (beam, copy) order
        for b, (i, text) in enumerate(active):
            cost["prompt_tokens"][i] += samples.prompt_tokens[b]
            for c in samples.completions[b]:
                cost["gen_tokens"][i] += c.gen_tokens
                cands.append((i, text + c.text))
                done.append(c.finish == "eos")
        scores = score(step_score_fn, cands)
        by_question: dict[int, list[int]] = {}
        for j, (i, _) in enumerate(cands):
            by_question.setdefault(i, []).append(j)
        active = []  # next round's beams, per question best first
        for i, js in by_question.items():
            for j in sorted(js, key=lambda j: -scores[j])[:width]:  # stable: ties keep the lower index
                if done[j]:
                    pool.append((i, cands[j][1], "eos"))
                else:
                    active.append(cands[j])
    pool += [(i, text, "max_steps") for i, text in active]

    final = score(final_score_fn, [(i, text) for i, text, _ in pool])
    best: dict[int, int] = {}
    for k, (i, _, _) in enumerate(pool):
        if i not in best or final[k] > final[best[i]]:
            best[i] = k
    out = []
    for i in range(Q):
        _, response, finish = pool[best[i]]
        out.append({"response": response, "score": final[best[i]], "finish": finish,
                    **{k: v[i] for k, v in cost.items()}})
    return out
