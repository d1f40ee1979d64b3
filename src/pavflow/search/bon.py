"""Search over a pool of sampled responses: best-of-N, majority and verifier-weighted majority vote,
pass@N. No model here: a pool of n_max scored samples per problem is given, and budget N uses the
first N samples of each problem (sample_id < N), so budgets are nested, as is common practice.

Pool columns:
    problem_id, sample_id  keys
    correct                0/1 grade of the sample
    gen_tokens             tokens the sample generated
    prompt_len             tokens of the problem's prompt (same for every sample of a problem)
    answer                 the answer extracted from the response; None or "" when there is none
    score                  the verifier's score of the sample (e.g. `aggregate_prm` of a PRM's values)
"""
from __future__ import annotations

import numpy as np
import polars as pl

from pavflow.names import POOL_METHODS as METHODS

POOL_COLUMNS = ("problem_id", "sample_id", "correct", "gen_tokens", "prompt_len", "answer", "score")


def aggregate_prm(values: np.ndarray, how: str) -> float:
    """A response score from a PRM's step scores `values` (the values at h = 1..H, shape (H,)).

    A response with no steps (H = 0) scores -inf: it is never preferred over one with steps.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if how not in ("last", "min", "prod", "mean"):
        raise ValueError(f"aggregate_prm: unknown how={how!r}; expected last, min, prod or mean")
    if v.size == 0:
        return float("-inf")
    if how == "last":
        return float(v[-1])
    if how == "min":
        return float(v.min())
    if how == "prod":
        return float(v.prod())
    return float(v.mean())


def top_pick(scores: np.ndarray, n: int) -> int:
    """Best-of-N's pick among the first n samples (scores in sample_id order): the highest score, ties
    to the lowest sample_id (np.argmax takes the first of tied maxima)."""
    return int(np.argmax(scores[:n]))


def _vote(answers: list, weights: np.ndarray, by: str) -> int:
    """Index (into the first-N samples) of the first sample carrying the winning answer.

    by="count": most samples, ties by highest total weight, then lowest first sample.
    by="weight": highest total weight, ties by most samples, then lowest first sample.
    An empty answer (None or "") never wins over a real one.
    """
    groups: dict = {}  # answer -> [count, total weight, first index]
    for i, a in enumerate(answers):
        key = a if a else None
        g = groups.setdefault(key, [0, 0.0, i])
        g[0] += 1
        g[1] += weights[i]

    def rank(item):
        key, (count, weight, first) = item
        main = (count, weight) if by == "count" else (weight, count)
        return (key is not None, *main, -first)

    return max(groups.items(), key=rank)[1][2]


def bon_search(pool: pl.DataFrame, budgets: list[int]) -> pl.DataFrame:
    """Per-problem rows (problem_id, method, budget, correct, gen_tokens, prompt_tokens) for every
    method in METHODS and every budget N, each using the samples with sample_id < N.

    gen_tokens is the sum over the N samples; prompt_tokens = N * prompt_len.
    """
    missing = [c for c in POOL_COLUMNS if c not in pool.columns]
    if missing:
        raise ValueError(f"bon_search: pool is missing columns {missing}; has {pool.columns}")
    if not budgets or min(budgets) < 1:
        raise ValueError(f"bon_search: budgets must be a non-empty list of ints >= 1, got {budgets}")
    score_col = pool["score"].cast(pl.Float64)
    if score_col.is_null().any() or score_col.is_nan().any():
        raise ValueError("bon_search: pool has NaN or null scores")
    if pool.select(pl.struct("problem_id", "sample_id").is_duplicated().any()).item():
        raise ValueError("bon_search: pool has duplicate (problem_id, sample_id) rows")
    rows = []
    for (pid,), g in pool.sort("problem_id", "sample_id").group_by("problem_id", maintain_order=True):
        sid = g["sample_id"].to_numpy()
        correct = g["correct"].to_numpy().astype(np.int64)  # (n_max,)
        gen = g["gen_tokens"].to_numpy().astype(np.int64)
        score = g["score"].to_numpy().astype(np.float64)
        answers = g["answer"].to_list()
        prompt_len = int(g["prompt_len"][0])
        for n in budgets:
            if len(sid) < n or sid[0] != 0 or sid[n - 1] != n - 1:
                raise ValueError(f"bon_search: problem {pid!r} lacks samples 0..{n - 1} for budget {n}")
            best = top_pick(score, n)
            picks = {
                "bon": correct[best],
                "majority": correct[_vote(answers[:n], score[:n], "count")],
                "weighted_majority": correct[_vote(answers[:n], score[:n], "weight")],
                "pass": correct[:n].max(),
            }
            for method in METHODS:
                rows.append((pid, method, n, int(picks[method]), int(gen[:n].sum()), n * prompt_len))
    schema = {"problem_id": pl.String, "method": pl.String, "budget": pl.Int32, "correct": pl.Int8,
              "gen_tokens": pl.Int64, "prompt_tokens": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")
