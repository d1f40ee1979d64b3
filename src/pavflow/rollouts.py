"""Seed responses and Monte-Carlo pools: the only place rollouts are sampled for labels.

A seed is a sampled response a_1..a_H to a problem. From every state s_h (h = 0..H-1) of every
seed, a rollout policy rho samples n_mc continuations; c of them end correct, so V^rho(s_h) ~ c/n.
The finished state s_H is graded, not sampled (n = 1, c = correct). Nothing here knows about K.
"""
from __future__ import annotations

import polars as pl

from pavflow.data import MC, SAMPLES, conform
from pavflow.policy.sampler import Sampler
from pavflow.tasks.base import Problem, Task


def sample_responses(sampler: Sampler, task: Task, problems: list[Problem], *, n: int, seed: int,
                     temperature: float, max_new_tokens: int, policy: str) -> pl.DataFrame:
    """SAMPLES rows: n sampled responses per problem (sample_id 0..n-1)."""
    prompts = [task.prompt(p.question) for p in problems]
    out = sampler.sample(prompts, n, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens,
                         desc=f"{policy} responses")
    rows = []
    for p, comps, ids in zip(problems, out.completions, sampler.encode(prompts)):
        for sid, c in enumerate(comps):
            rows.append({"problem_id": p.problem_id, "split": p.split, "policy": policy, "sample_id": sid,
                         "response": c.text, "n_steps": len(task.split_steps(c.text)),
                         "correct": task.grade(c.text, p.answer), "prompt_tokens": len(ids),
                         "gen_tokens": c.gen_tokens})
    return conform(pl.DataFrame(rows, schema_overrides=SAMPLES), SAMPLES, "samples")


def correct_pairs(samples: pl.DataFrame, prompts: dict[str, str]) -> list[tuple[str, str]]:
    """(prompt, response) of every distinct correct response in a SAMPLES table, in table order: the
    training set of rejection fine-tuning."""
    kept = samples.filter(pl.col("correct") == 1).unique(["problem_id", "response"], maintain_order=True)
    return [(prompts[pid], resp) for pid, resp in kept.select("problem_id", "response").iter_rows()]


def mc_pool(sampler: Sampler, task: Task, problems: dict[str, Problem], seeds: pl.DataFrame, *,
            n_mc: int, seed: int, temperature: float, max_new_tokens: int,
            rollout_policy: str) -> pl.DataFrame:
    """MC rows for every state of every seed in `seeds` (a SAMPLES table)."""
    states, prefixes = [], []  # (seed row, h) to sample from, and the prefix text of s_h
    terminal = []
    for r in seeds.iter_rows(named=True):
        p = problems[r["problem_id"]]
        steps = task.split_steps(r["response"])
        for h in range(max(1, len(steps))):
            states.append((r, h, steps))
            prefixes.append(task.prefix(p.question, steps, h))
        if steps:
            terminal.append(r | {"h": len(steps)})
    out = sampler.sample(prefixes, n_mc, seed=seed, temperature=temperature,
                         max_new_tokens=max_new_tokens, desc=f"{rollout_policy} MC rollouts")
    rows = []
    for (r, h, steps), comps in zip(states, out.completions):
        answer, done = problems[r["problem_id"]].answer, "".join(steps[:h])
        rows.append({"problem_id": r["problem_id"], "split": r["split"], "sample_id": r["sample_id"],
                     "rollout_policy": rollout_policy, "h": h, "n": n_mc,
                     "c": sum(task.grade(done + c.text, answer) for c in comps),
                     "gen_tokens": sum(c.gen_tokens for c in comps)})
    rows += [{"problem_id": r["problem_id"], "split": r["split"], "sample_id": r["sample_id"],
              "rollout_policy": rollout_policy, "h": r["h"], "n": 1, "c": r["correct"], "gen_tokens": 0}
             for r in terminal]
    df = pl.DataFrame(rows, schema_overrides=MC)
    return conform(df, MC, "mc").sort("problem_id", "sample_id", "h")
