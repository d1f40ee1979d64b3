"""Why best-of-N with the ORM degrades, from the study's own pool: what the top-scored response at each N
is (correct, or its first error, by the task's `diagnose`), and the ORM's accuracy by score decile
across problems and within a problem.

A verifier that ranks problems by difficulty but not responses within a problem has rising accuracy
over its global score deciles and flat accuracy over its within-problem deciles; only the second
matters to best-of-N, which compares responses to the same problem.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from pavflow.search.bon import top_pick
from pavflow.stats import cluster_bootstrap_ci

CORRECT = "correct"
N_DECILES = 10
# Top-pick kinds: one row per (budget, kind); budget null: every response of the pool, the reference
# a random sample is drawn from. fraction = count / n_problems (of the pool's responses when null).
TOP_PICK_KINDS = {"budget": pl.Int32, "kind": pl.String, "count": pl.Int64, "n": pl.Int64, "fraction": pl.Float64}
# ORM accuracy by decile: scope "across" ranks every response of the pool by its score, "within" ranks
# the responses of each problem among themselves; decile 10 holds the highest scores. CI: percentile
# bootstrap over problems (the responses of one problem are not independent draws).
DECILES = {"scope": pl.String, "decile": pl.Int32, "n": pl.Int64, "acc": pl.Float64,
           "ci_low": pl.Float64, "ci_high": pl.Float64}


def scored_pool(pool: pl.DataFrame, scores: pl.DataFrame, verifier: str = "orm") -> pl.DataFrame:
    """The pool's (problem_id, sample_id, correct, kind) with `verifier`'s score, in sample order. A
    response graded correct is "correct" whatever its steps (a slip can still end in the right answer),
    so the top picks' "correct" share is best-of-N's accuracy."""
    s = scores.filter(pl.col("verifier") == verifier).select("problem_id", "sample_id", "score")
    out = (pool.select("problem_id", "sample_id", "correct",
                       kind=pl.when(pl.col("correct") == 1).then(pl.lit(CORRECT)).otherwise(pl.col("kind")))
           .join(s, on=["problem_id", "sample_id"], how="inner"))
    if out.height != pool.height:
        raise ValueError(f"scored_pool: {pool.height - out.height} of {pool.height} pool responses have no "
                         f"{verifier!r} score")
    return out.sort("problem_id", "sample_id")


def kind_order(kinds: pl.Series) -> list[str]:
    """"correct" first, then the errors from most to least common."""
    counts = kinds.value_counts(sort=True)
    return [CORRECT] + [k for k in counts[kinds.name].to_list() if k != CORRECT]


def top_pick_kinds(scored: pl.DataFrame, budgets: list[int]) -> pl.DataFrame:
    """TOP_PICK_KINDS: the kind of best-of-N's pick (search.bon.top_pick) at every budget, and of every
    response of the pool."""
    picks: dict[tuple[int, str], int] = {}
    n_problems = 0
    for _, g in scored.group_by("problem_id", maintain_order=True):
        score, kinds = g["score"].to_numpy(), g["kind"].to_list()
        n_problems += 1
        for n in budgets:
            key = (n, kinds[top_pick(score, n)])
            picks[key] = picks.get(key, 0) + 1
    order = kind_order(scored["kind"])
    rows = [(None, k, int((scored["kind"] == k).sum()), scored.height) for k in order]
    rows += [(n, k, picks.get((n, k), 0), n_problems) for n in budgets for k in order]
    df = pl.DataFrame(rows, schema={c: TOP_PICK_KINDS[c] for c in ("budget", "kind", "count", "n")}, orient="row")
    return df.with_columns(fraction=pl.col("count") / pl.col("n"))


def _decile(rank: pl.Expr, n: pl.Expr) -> pl.Expr:
    """1..N_DECILES from an average rank 1..n (ties share a decile)."""
    return ((rank - 0.5) * N_DECILES / n).floor().cast(pl.Int32).clip(0, N_DECILES - 1) + 1


def score_deciles(scored: pl.DataFrame, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """DECILES of the pool's scores, across problems and within each problem."""
    d = scored.with_columns(
        across=_decile(pl.col("score").rank("average"), pl.len()),
        within=_decile(pl.col("score").rank("average").over("problem_id"), pl.len().over("problem_id")))
    pids = d["problem_id"].unique(maintain_order=True)
    p_idx = d["problem_id"].replace_strict(pids, pl.Series(range(len(pids)))).to_numpy()
    correct = d["correct"].to_numpy().astype(np.float64)
    rows = []
    for scope in ("across", "within"):
        dec = d[scope].to_numpy() - 1
        n = np.zeros((len(pids), N_DECILES))  # (problems, deciles): responses
        c = np.zeros((len(pids), N_DECILES))  # (problems, deciles): correct responses
        np.add.at(n, (p_idx, dec), 1.0)
        np.add.at(c, (p_idx, dec), correct)
        for j in range(N_DECILES):
            if n[:, j].sum() == 0:
                continue

            def acc(idx, j=j):
                total = n[idx, j].sum()
                return c[idx, j].sum() / total if total else np.nan

            low, high = cluster_bootstrap_ci(acc, len(pids), n_boot=n_boot, seed=seed)
            rows.append((scope, j + 1, int(n[:, j].sum()), float(c[:, j].sum() / n[:, j].sum()), low, high))
    return pl.DataFrame(rows, schema=DECILES, orient="row")
