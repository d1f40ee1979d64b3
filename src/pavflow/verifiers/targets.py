"""The training targets of each value verifier (names: pavflow.names) at the states s_h, h = 0..H, of
the seed responses.

    orm                 outcome of the response, at s_H only
    pqv                 Q^pi: c/n of the base policy's MC pool at every state
    pav_<rho>_k<K>      V^mu of prover mu = BoK(rho) (labels table) at every state; A^mu is the difference
    pav_analytic_k<K>   not trained: V^mu = 1 - (1 - pqv)^K from the trained pqv (verifiers.analytic)
    implicit_ce|dpo     implicit PRM (Yuan et al. 2024) trained on outcomes (verifiers.implicit)

Label variants of pqv and pav, as suffixes: `.hard` (1 if any continuation succeeded, Math-Shepherd;
the same for every K: it is the K -> infinity prover) and `.random` / `.first_pit` (which states carry a
target, verifiers.selection), e.g. `pqv.hard`, `pqv.first_pit`, `pav_base_k4.random`.
"""
from __future__ import annotations

import polars as pl


def state_targets(kind: str, seeds: pl.DataFrame, mc_pi: pl.DataFrame | None = None,
                  labels: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows (problem_id, split, sample_id, h, target) for every state that carries a target."""
    key = ["problem_id", "split", "sample_id", "h"]
    if kind == "orm":
        df = seeds.select("problem_id", "split", "sample_id", h=pl.col("n_steps"),
                          target=pl.col("correct").cast(pl.Float64))
    elif kind == "pqv":
        df = mc_pi.select(*key, target=pl.col("c") / pl.col("n"))
    elif kind == "pav":
        df = labels.select(*key, target=pl.col("v_mu"))
    else:
        raise ValueError(f"state_targets: {kind!r} has no state targets; expected orm, pqv or pav")
    return df.with_columns(pl.col("h").cast(pl.Int32)).sort(key)
