"""Training targets of each value verifier at the states s_h, h = 0..H, of the seed responses.

    orm  outcome of the response, at s_H only
    pqv  Q^pi: c/n of the base policy's MC pool at every state
    pav  V^mu of its prover (labels table) at every state; its progress A^mu is the difference
"""
from __future__ import annotations

import polars as pl

KINDS = ("orm", "pqv", "pav")


def parse_verifier(name: str) -> tuple[str, str | None]:
    """'orm' -> ('orm', None); 'pav_base_k4' -> ('pav', 'base_k4')."""
    kind, _, prover = name.partition("_")
    if kind not in KINDS or (kind == "pav") != bool(prover):
        raise ValueError(f"verifier {name!r}: expected orm, pqv or pav_<prover> (e.g. pav_base_k4)")
    return kind, prover or None


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
        raise ValueError(f"unknown verifier kind {kind!r}; expected one of {KINDS}")
    return df.with_columns(pl.col("h").cast(pl.Int32)).sort(key)
