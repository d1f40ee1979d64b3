"""What the beam-search stages share (the headline and per-prover beams, the alpha curve, the val grid,
the val-chosen run, the oracle, beam search on one verifier): run beam search over budgets for one
scorer, and write and log the SEARCH rows."""
from __future__ import annotations

import polars as pl

from pavflow.data import SEARCH, conform, write_table
from pavflow.names import Prover
from pavflow.progress import progress
from pavflow.search.beam import StepScoreFn, beam_search, effective_reward, last_value
from pavflow.seeds import derive_seed
from pavflow.stages.common import log_search, search_axes
from pavflow.stages.scoring import load_verifier


def subset(problems: list, n: int) -> list:
    """The first n problems in table order (all when n = 0)."""
    return problems if n == 0 else problems[:n]


def beam_config(alpha: float, prover: str) -> dict:
    """SEARCH key columns of beam search with Q^pi + alpha * A^mu: alpha = 0 is the pqv alone
    (no prover), whatever prover was asked for."""
    if alpha == 0:
        return {"method": "beam", "verifier": "pqv", "prover": "", "k": 0, "alpha": 0.0}
    return {"method": "beam", "verifier": "pqv+pav", "prover": prover, "k": Prover.parse(prover).k,
            "alpha": float(alpha)}


class Scorers:
    """(step score, final score) of beam search on the effective reward, for any prover and alpha;
    each verifier is loaded once. `pav` maps a prover to its pav's {name: model dir}."""

    def __init__(self, cfg, policy, pqv, pav: dict[str, dict]):
        self.cfg, self.policy, self.pav_paths, self.loaded = cfg, policy, pav, {}
        self.pqv = load_verifier(cfg, "pqv", pqv, policy)

    def __call__(self, prover: str, alpha: float) -> tuple[StepScoreFn, StepScoreFn]:
        pav = None
        if alpha != 0:
            if prover not in self.loaded:
                (name, path), = self.pav_paths[prover].items()
                self.loaded[prover] = load_verifier(self.cfg, name, path, self.policy)
            pav = self.loaded[prover].score
        return effective_reward(self.pqv.score, pav, alpha), last_value(self.pqv.score)


def run_beam(cfg, sampler, task, problems: list, *, budgets: list[int], step_score: StepScoreFn,
             final_score: StepScoreFn, split: str, config: dict) -> pl.DataFrame:
    """SEARCH rows of beam search at every budget in `budgets`. The seed depends on the budget only, so
    the same configuration on the same problems gives the same rows in every stage."""
    tables = []
    for n in progress(budgets, desc=f"beam search {config['verifier']} {config['prover']} alpha={config['alpha']:g} budgets"):
        out = beam_search(sampler, task, [p.question for p in problems], budget=n, search=cfg.search,
                          step_score_fn=step_score, final_score_fn=final_score, seed=derive_seed(cfg.seed, "beam", n))
        tables.append(pl.DataFrame({
            "problem_id": [p.problem_id for p in problems], "split": split, **config, "budget": n,
            "correct": [task.grade(o["response"], p.answer) for o, p in zip(out, problems)],
            **{c: [o[c] for o in out] for c in ("gen_tokens", "prompt_tokens", "verifier_tokens")}}))
    return conform(pl.concat(tables), SEARCH, "search")


def write_search(res: pl.DataFrame, path, tracker, table: str = "search/per_budget",
                 curve: str | None = None) -> pl.DataFrame:
    """Write a SEARCH table, log its accuracy per configuration and budget as W&B table `table` (and,
    with `curve`, as metric search/acc/<curve> against budget and tokens); returns that accuracy table."""
    write_table(res, path, SEARCH)
    acc = per_config(res)
    tracker.table(table, acc)
    if curve is not None:
        search_axes(tracker)
        for r in acc.iter_rows(named=True):
            log_search(tracker, r["budget"], float(r["gen_tokens"]), {curve: float(r["acc"])})
    return acc


def per_config(res: pl.DataFrame) -> pl.DataFrame:
    """Accuracy and mean tokens per configuration and budget (the W&B per-budget table)."""
    return (res.group_by("verifier", "prover", "k", "alpha", "budget")
            .agg(acc=pl.col("correct").cast(pl.Float64).mean(), gen_tokens=pl.col("gen_tokens").mean(),
                 verifier_tokens=pl.col("verifier_tokens").mean(), n_problems=pl.len())
            .sort("verifier", "prover", "alpha", "budget"))
