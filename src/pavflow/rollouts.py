"""Seed responses and Monte-Carlo pools: the only place rollouts are sampled for labels.

A seed is a sampled response a_1..a_H to a problem. From every state s_h (h = 0..H-1) of every
seed, a rollout policy rho samples n_mc continuations; c of them end correct, so V^rho(s_h) ~ c/n.
The finished state s_H is graded, not sampled (n = 1, c = correct). Nothing here knows about K.
"""
from __future__ import annotations

import polars as pl

from pavflow.data import CONTINUATIONS, MC, SAMPLES, Rows, conform
from pavflow.policy.sampler import Sampler
from pavflow.tasks.base import Problem, Task


def sample_responses(sampler: Sampler, task: Task, problems: list[Problem], *, n: int, seed: int,
                     temperature: float, max_new_tokens: int, policy: str) -> pl.DataFrame:
    """SAMPLES rows: n sampled responses per problem (sample_id 0..n-1), streamed: memory holds the
    table's columns, not the completions."""
    prompts = [task.prompt(p.question) for p in problems]
    rows = Rows({**SAMPLES, "_order": pl.Int64})
    for part in sampler.stream(prompts, n, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens,
                               desc=f"{policy} responses"):
        p = problems[part.prompt]
        for sid, c in enumerate(part.completions, part.start):
            rows.append({"problem_id": p.problem_id, "split": p.split, "policy": policy, "sample_id": sid,
                         "response": c.text, "n_steps": len(task.split_steps(c.text)),
                         "correct": task.grade(c.text, p.answer), "prompt_tokens": part.prompt_tokens,
                         "gen_tokens": c.gen_tokens, "_order": part.prompt * n + sid})
    return conform(rows.frame().sort("_order"), SAMPLES, "samples")


def correct_pairs(samples: pl.DataFrame, prompts: dict[str, str]) -> list[tuple[str, str]]:
    """(prompt, response) of every distinct correct response in a SAMPLES table, in table order: the
    training set of rejection fine-tuning."""
    kept = samples.filter(pl.col("correct") == 1).unique(["problem_id", "response"], maintain_order=True)
    return [(prompts[pid], resp) for pid, resp in kept.select("problem_id", "response").iter_rows()]


def mc_pool(sampler: Sampler, task: Task, problems: dict[str, Problem], seeds: pl.DataFrame, *,
            n_mc: int, seed: int, temperature: float, max_new_tokens: int,
            rollout_policy: str, continuations: Rows | None = None) -> pl.DataFrame:
    """MC rows for every state of every seed in `seeds` (a SAMPLES table). Streamed: a state's
    continuations are graded and summed as they are drawn, so memory does not grow with n_mc.
    With `continuations` (Rows of CONTINUATIONS), every continuation is also kept there as a
    complete graded response (the same draws: the MC rows do not change)."""
    seed_rows = seeds.select("problem_id", "split", "sample_id", "response", "correct").rows()
    states, prefixes = [], []  # (seed row, h) to sample from, and the prefix text of s_h
    rows = Rows(MC)
    for s, (pid, split, sid, response, correct) in enumerate(seed_rows):
        steps = task.split_steps(response)
        for h in range(max(1, len(steps))):
            states.append((s, h))
            prefixes.append(task.prefix(problems[pid].question, steps, h))
        if steps:  # the finished state s_H is graded, not sampled
            rows.append({"problem_id": pid, "split": split, "sample_id": sid, "rollout_policy": rollout_policy,
                         "h": len(steps), "n": 1, "c": correct, "gen_tokens": 0})
    open_states: dict[int, list[int]] = {}  # state -> [continuations seen, correct, gen tokens]
    for part in sampler.stream(prefixes, n_mc, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens,
                               desc=f"{rollout_policy} MC rollouts"):
        s, h = states[part.prompt]
        pid, split, sid, response, _ = seed_rows[s]
        done = "".join(task.split_steps(response)[:h])
        acc = open_states.setdefault(part.prompt, [0, 0, 0])
        grades = [task.grade(done + c.text, problems[pid].answer) for c in part.completions]
        acc[0] += len(part.completions)
        acc[1] += sum(grades)
        acc[2] += sum(c.gen_tokens for c in part.completions)
        if continuations is not None:
            for r, (c, g) in enumerate(zip(part.completions, grades), part.start):
                continuations.append({"problem_id": pid, "split": split, "sample_id": sid, "h": h, "rollout": r,
                                      "response": done + c.text, "correct": g})
        if acc[0] == n_mc:
            del open_states[part.prompt]
            rows.append({"problem_id": pid, "split": split, "sample_id": sid, "rollout_policy": rollout_policy,
                         "h": h, "n": n_mc, "c": acc[1], "gen_tokens": acc[2]})
    return conform(rows.frame(), MC, "mc").sort("problem_id", "sample_id", "h")


def continuation_table(continuations: Rows) -> pl.DataFrame:
    """CONTINUATIONS in a stable order, whatever order the sampler streamed them in."""
    return conform(continuations.frame(), CONTINUATIONS, "continuations").sort("problem_id", "sample_id", "h", "rollout")
