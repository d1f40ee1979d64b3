"""Choosing the beam-search configuration (prover, alpha) on the validation split, never on test.

Input: SEARCH rows of beam search on val problems, one configuration per (verifier, prover, k,
alpha) at a single budget. alpha = 0 is the pqv alone (Q^pi), whatever the prover: it is one
configuration (verifier "pqv", prover ""). The choice is the highest val accuracy; ties go to the
smaller alpha, then the smaller K, then the prover name, so a choice never depends on row order.
"""
from __future__ import annotations

import polars as pl


def choose_on_val(val: pl.DataFrame) -> dict:
    """{"prover", "k", "alpha", "verifier", "val_acc", "n_problems", "budget"} of the best
    configuration; raises on an empty table or a table mixing budgets or splits."""
    if val is None or val.height == 0:
        raise ValueError("choose_on_val: no validation search rows")
    if val["budget"].n_unique() != 1 or val["split"].n_unique() != 1:
        raise ValueError(f"choose_on_val: expected one budget and one split, got budgets "
                         f"{sorted(val['budget'].unique())} splits {sorted(val['split'].unique())}")
    acc = (val.group_by("verifier", "prover", "k", "alpha")
           .agg(val_acc=pl.col("correct").cast(pl.Float64).mean(), n_problems=pl.col("problem_id").n_unique())
           .sort(["val_acc", "alpha", "k", "prover"], descending=[True, False, False, False]))
    best = acc.row(0, named=True)
    return {**best, "k": int(best["k"]), "alpha": float(best["alpha"]), "budget": int(val["budget"][0])}
