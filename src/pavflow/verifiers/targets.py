"""The study's verifiers by name, and the training targets of each value verifier at the states s_h,
h = 0..H, of the seed responses.

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

from dataclasses import dataclass

import polars as pl

KINDS = ("orm", "pqv", "pav", "pav_analytic", "implicit")
ANALYTIC = "analytic"  # the pseudo rollout policy of analytic provers: prover analytic_k4 = BoK(pi) from pqv
IMPLICIT_LOSSES = ("ce", "dpo")
TARGETS = ("soft", "hard")
PREFIXES = ("all", "random", "first_pit")


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    kind: str  # one of KINDS
    prover: str | None = None  # pav: '<rho>_k<K>'; pav_analytic: 'analytic_k<K>'
    loss: str | None = None  # implicit: ce | dpo
    targets: str = "soft"  # soft | hard
    prefixes: str = "all"  # all | random | first_pit

    @property
    def trained(self) -> bool:
        return self.kind != "pav_analytic"

    @property
    def value_model(self) -> bool:
        return self.kind in ("orm", "pqv", "pav")


def parse_verifier(name: str) -> VerifierSpec:
    """'pav_base_k4.hard' -> VerifierSpec(kind='pav', prover='base_k4', targets='hard'); see the module doc."""
    def bad(why: str):
        raise ValueError(f"verifier {name!r}: {why}; expected orm, pqv, pav_<prover> (e.g. pav_base_k4), "
                         "pav_analytic_k<K>, implicit_ce or implicit_dpo, pqv/pav optionally with label "
                         f"variants .hard and .random or .first_pit (e.g. pqv.hard.first_pit)")

    base, *variants = name.split(".")
    targets, prefixes = "soft", "all"
    for v in variants:
        if v in TARGETS[1:] and targets == "soft":
            targets = v
        elif v in PREFIXES[1:] and prefixes == "all":
            prefixes = v
        else:
            bad(f"unknown or repeated label variant {v!r}")
    kind, _, rest = base.partition("_")
    if base in ("orm", "pqv"):
        spec = VerifierSpec(name, base, targets=targets, prefixes=prefixes)
    elif kind == "implicit" and rest in IMPLICIT_LOSSES:
        spec = VerifierSpec(name, "implicit", loss=rest)
    elif kind == "pav" and rest:
        from pavflow.labels import parse_prover
        try:
            rho, _ = parse_prover(rest)
        except ValueError as e:
            bad(str(e))
        spec = VerifierSpec(name, "pav_analytic" if rho == ANALYTIC else "pav", prover=rest,
                            targets=targets, prefixes=prefixes)
    else:
        bad("unknown verifier")
    if variants and spec.kind not in ("pqv", "pav"):
        bad(f"label variants apply to pqv and pav only, not {spec.kind}")
    return spec


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
