"""What the beam-search sweeps share (the alpha curve, the val choice, the val-chosen test run, the
oracle): run beam search over budgets for one scorer and return SEARCH rows. Kept apart from
stages/search_beam.py so the headline and per-prover beam jobs do not rerun when this changes."""
from __future__ import annotations

import polars as pl

from pavflow.data import SEARCH, conform, write_table
from pavflow.labels import parse_prover
from pavflow.search.beam import StepScoreFn, beam_search, effective_reward, last_value
from pavflow.stages.common import derive_seed, load_verifier, record


def subset(problems: list, n: int) -> list:
    """The first n problems in table order (all when n = 0)."""
    return problems if n == 0 else problems[:n]


def beam_config(alpha: float, prover: str) -> dict:
    """SEARCH key columns of beam search with Q^pi + alpha * A^mu: alpha = 0 is the pqv alone
    (no prover), whatever prover was asked for."""
    if alpha == 0:
        return {"method": "beam", "verifier": "pqv", "prover": "", "k": 0, "alpha": 0.0}
    return {"method": "beam", "verifier": "pqv+pav", "prover": prover, "k": parse_prover(prover)[1],
            "alpha": float(alpha)}


def pav_scorers(cfg, layout, prover: str, alpha: float, cache: dict) -> tuple[StepScoreFn, StepScoreFn]:
    """(step score, final score) of beam search on the effective reward; verifiers loaded once."""
    if "pqv" not in cache:
        cache["pqv"] = load_verifier(cfg, layout, "pqv")
    pav = None
    if alpha != 0:
        if prover not in cache:
            cache[prover] = load_verifier(cfg, layout, f"pav_{prover}")
        pav = cache[prover].score
    return effective_reward(cache["pqv"].score, pav, alpha), last_value(cache["pqv"].score)


def run_beam(cfg, sampler, task, problems: list, *, budgets: list[int], step_score: StepScoreFn,
             final_score: StepScoreFn, split: str, config: dict) -> pl.DataFrame:
    """SEARCH rows of beam search at every budget in `budgets`; seeds as in stages/search_beam.py, so
    the same configuration on the same problems gives the same rows as there."""
    s, tables = cfg.search, []
    for n in budgets:
        out = beam_search(sampler, task, [p.question for p in problems], budget=n, expansions=s.expansions,
                          step_score_fn=step_score, final_score_fn=final_score,
                          seed=derive_seed(cfg.seed, "beam", n), max_steps=s.max_steps,
                          max_step_tokens=s.max_step_tokens, temperature=s.temperature)
        tables.append(pl.DataFrame({
            "problem_id": [p.problem_id for p in problems], "split": split, **config, "budget": n,
            "correct": [task.grade(o["response"], p.answer) for o, p in zip(out, problems)],
            **{c: [o[c] for o in out] for c in ("gen_tokens", "prompt_tokens", "verifier_tokens")}}))
    return conform(pl.concat(tables), SEARCH, "search")


def write_search(cfg, layout, tracker, res: pl.DataFrame, name: str, table: str = "search/per_budget") -> pl.DataFrame:
    """Write search table `name` (search/<name>.parquet), record it in W&B as search-<name>, log its
    accuracy per configuration and budget as W&B table `table`; returns that accuracy table."""
    write_table(res, layout.search(name), SEARCH)
    record(tracker, cfg, f"search-{name.replace('_', '-', 1)}", "table", layout.search(name))
    acc = per_config(res)
    tracker.table(table, acc)
    return acc


def per_config(res: pl.DataFrame) -> pl.DataFrame:
    """Accuracy and mean tokens per configuration and budget (the W&B per-budget table)."""
    return (res.group_by("verifier", "prover", "k", "alpha", "budget")
            .agg(acc=pl.col("correct").cast(pl.Float64).mean(), gen_tokens=pl.col("gen_tokens").mean(),
                 verifier_tokens=pl.col("verifier_tokens").mean(), n_problems=pl.len())
            .sort("verifier", "prover", "alpha", "budget"))
