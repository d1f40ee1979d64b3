"""The study's things by name: provers, verifiers, RL arms and search methods as small typed values.

Every string that names one of them (a Snakemake wildcard, a path, a table column, a W&B tag) is made
by `str()` of a value here and read back by its `parse`; the wildcard patterns are built from the same
grammar. Nothing else in pavflow splits a name.

    prover     <policy>_k<K>              mu = BoK(rho) over rollout policy <policy>; analytic_k<K> is
                                          BoK(pi) computed from the pqv (verifiers.analytic)
    verifier   orm | pqv | pav_<prover> | implicit_ce | implicit_dpo,
               pqv and pav optionally with label variants .hard and .random or .first_pit, and
               .s<n>m<m>: trained on n seeds per problem and m of the rollouts of each state (the
               verifier data-scaling curve); orm.rollouts: the ORM trained on the seeds and on every
               continuation of the base policy's MC pool (many responses of both outcomes per problem)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

ANALYTIC = "analytic"  # pseudo rollout policy of the analytic provers: analytic_k4 = BoK(pi) from the pqv
POLICY = r"[A-Za-z_][A-Za-z0-9_]*"


@dataclass(frozen=True, order=True)
class Prover:
    """mu = BoK(rho): succeeds from a state if any of K rho-continuations does."""
    policy: str
    k: int

    def __str__(self) -> str:
        return f"{self.policy}_k{self.k}"

    @property
    def analytic(self) -> bool:
        return self.policy == ANALYTIC

    @classmethod
    def parse(cls, name: str) -> Prover:
        """'base_k4' -> Prover('base', 4)."""
        policy, sep, k = str(name).rpartition("_k")
        if not (sep and re.fullmatch(POLICY, policy) and k.isdigit() and int(k) >= 1):
            raise ValueError(f"prover {name!r}: expected '<policy>_k<K>' with K >= 1, e.g. base_k4")
        return cls(policy, int(k))

    @classmethod
    def of(cls, cfg) -> Prover:
        """From a config node {policy, k} (e.g. search.prover, rl.prover)."""
        return cls(str(cfg.policy), int(cfg.k))


PROVER = POLICY + r"_k[1-9][0-9]*"

VERIFIER_KINDS = ("orm", "pqv", "pav", "pav_analytic", "implicit")
IMPLICIT_LOSSES = ("ce", "dpo")
TARGETS = ("soft", "hard")  # label variant .hard: 1[c > 0] (Math-Shepherd)
PREFIXES = ("all", "random", "first_pit")  # which states carry a target (verifiers.selection)
ROLLOUTS = "rollouts"  # orm.rollouts: the ORM trained on the MC continuations too


def data_variant(n_seed: int, n_mc: int) -> str:
    """The label variant of a verifier trained on n_seed seeds per problem and n_mc rollouts per state: s<n>m<m>."""
    return f"s{n_seed}m{n_mc}"


@dataclass(frozen=True)
class Verifier:
    kind: str  # one of VERIFIER_KINDS
    prover: Prover | None = None  # pav, pav_analytic
    loss: str | None = None  # implicit: ce | dpo
    targets: str = "soft"
    prefixes: str = "all"
    data: tuple[int, int] | None = None  # (seeds per problem, rollouts per state) it trains on; None: all
    rollouts: bool = False  # orm.rollouts: also trained on the MC continuations as graded responses

    def __str__(self) -> str:
        base = {"pav": f"pav_{self.prover}", "pav_analytic": f"pav_{self.prover}",
                "implicit": f"implicit_{self.loss}"}.get(self.kind, self.kind)
        variants = ([self.targets] if self.targets != "soft" else []) + \
            ([self.prefixes] if self.prefixes != "all" else []) + \
            ([data_variant(*self.data)] if self.data else []) + ([ROLLOUTS] if self.rollouts else [])
        return ".".join([base, *variants])

    @property
    def name(self) -> str:
        return str(self)

    @property
    def trained(self) -> bool:
        return self.kind != "pav_analytic"

    @property
    def base(self) -> Verifier:
        """The verifier without its label variants (pqv.hard -> pqv)."""
        return Verifier(self.kind, self.prover, self.loss)

    @property
    def all_data(self) -> Verifier:
        """The verifier without its data-scaling variant (pqv.hard.s2m8 -> pqv.hard)."""
        return replace(self, data=None)

    @classmethod
    def parse(cls, name: str) -> Verifier:
        """'pav_base_k4.hard' -> Verifier('pav', Prover('base', 4), targets='hard'); see the module doc."""
        def bad(why: str):
            raise ValueError(f"verifier {name!r}: {why}; expected orm, pqv, pav_<prover> (e.g. pav_base_k4), "
                             "pav_analytic_k<K>, implicit_ce or implicit_dpo, pqv/pav optionally with label "
                             "variants .hard and .random or .first_pit and .s<seeds>m<rollouts> "
                             "(e.g. pqv.hard.first_pit, pav_base_k4.s2m8), or orm.rollouts")

        base, *variants = str(name).split(".")
        if base == "orm" and variants == [ROLLOUTS]:
            return cls("orm", rollouts=True)
        targets, prefixes, data = "soft", "all", None
        for v in variants:
            m = re.fullmatch(r"s([1-9][0-9]*)m([1-9][0-9]*)", v)
            if v in TARGETS[1:] and targets == "soft":
                targets = v
            elif v in PREFIXES[1:] and prefixes == "all":
                prefixes = v
            elif m and data is None:
                data = (int(m.group(1)), int(m.group(2)))
            else:
                bad(f"unknown or repeated label variant {v!r}")
        kind, _, rest = base.partition("_")
        if base in ("orm", "pqv"):
            out = cls(base, targets=targets, prefixes=prefixes, data=data)
        elif kind == "implicit" and rest in IMPLICIT_LOSSES:
            out = cls("implicit", loss=rest)
        elif kind == "pav" and rest:
            try:
                prover = Prover.parse(rest)
            except ValueError as e:
                bad(str(e))
            out = cls("pav_analytic" if prover.analytic else "pav", prover, targets=targets, prefixes=prefixes, data=data)
        else:
            bad("unknown verifier")
        if variants and out.kind not in ("pqv", "pav"):
            bad(f"label variants apply to pqv and pav only, not {out.kind}")
        return out


def pav(prover: Prover) -> Verifier:
    return Verifier("pav_analytic" if prover.analytic else "pav", prover)


_VARIANT = "|".join(TARGETS[1:] + PREFIXES[1:] + ("s[1-9][0-9]*m[1-9][0-9]*",))
VERIFIER = rf"orm\.{ROLLOUTS}|(orm|pqv|pav_{PROVER}|implicit_(?:{'|'.join(IMPLICIT_LOSSES)}))(?:\.(?:{_VARIANT}))*"

# RL arms: outcome reward alone, or plus alpha * the progress of every step from the trained pav of
# rl.prover (pav), its analytic twin from the pqv (pav_analytic), an implicit PRM (implicit_<loss>), or
# an oracle prover: V^mu from fresh rollouts of the prover's policy at every visited state (pav_mc_<prover>)
ARMS = ("outcome", "pav", "pav_analytic", "implicit_ce", "implicit_dpo", "pav_mc")  # arm kinds in rl.arms


@dataclass(frozen=True)
class Arm:
    kind: str  # one of ARMS
    prover: Prover | None = None  # pav_mc: the oracle prover

    def __str__(self) -> str:
        return self.kind if self.prover is None else f"{self.kind}_{self.prover}"

    @classmethod
    def parse(cls, name: str) -> Arm:
        """'outcome' -> Arm('outcome'); 'pav_mc_weak_k4' -> Arm('pav_mc', Prover('weak', 4))."""
        name = str(name)
        try:
            if name.startswith("pav_mc_"):
                return cls("pav_mc", Prover.parse(name[len("pav_mc_"):]))
        except ValueError:
            pass
        else:
            if name in ARMS and name != "pav_mc":
                return cls(name)
        raise ValueError(f"RL arm {name!r}: expected one of {[a for a in ARMS if a != 'pav_mc']} or "
                         "pav_mc_<prover> (e.g. pav_mc_base_k4)")


# values of the SEARCH table's `method` column: the methods over a sampled pool (best-of-N, majority
# and verifier-weighted majority vote, pass@N), and step-level beam search
POOL_METHODS = ("bon", "majority", "weighted_majority", "pass")
SEARCH_METHODS = POOL_METHODS + ("beam",)

# Snakemake wildcard constraints, one per wildcard name the registry uses
ARM = "|".join(a for a in ARMS if a != "pav_mc") + f"|pav_mc_{PROVER}"
WILDCARDS = {"policy": POLICY, "prover": PROVER, "verifier": VERIFIER, "arm": ARM,
             "rl_seed": r"[0-9]+"}
