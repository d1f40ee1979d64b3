"""Names of provers, verifiers, arms and search methods: parse(str(x)) is x, and every name a study
uses matches its Snakemake wildcard pattern (and nothing the grammar rejects does)."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from pavflow.config import analytic_provers, compose, provers, rl_arms, trained_verifiers
from pavflow.names import (ANALYTIC, ARMS, Arm, POOL_METHODS, PROVER, SEARCH_METHODS, VERIFIER, WILDCARDS, Prover,
                           Verifier, data_variant, pav)


@pytest.mark.parametrize("name, policy, k", [("base_k4", "base", 4), ("weak_k16", "weak", 16),
                                             ("my_policy_k2", "my_policy", 2), ("analytic_k8", ANALYTIC, 8)])
def test_prover_parse_and_str(name, policy, k):
    p = Prover.parse(name)
    assert (p.policy, p.k) == (policy, k) and str(p) == name and p.analytic == (policy == ANALYTIC)
    assert re.fullmatch(PROVER, name)


@pytest.mark.parametrize("name", ["base", "base_k0", "base_k", "_k4", "base_kx", "base-x_k4", "9a_k1", ""])
def test_prover_rejects(name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        Prover.parse(name)
    assert not re.fullmatch(PROVER, name)


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.integers(1, 10_000))
def test_prover_round_trip(policy, k):
    assert Prover.parse(str(Prover(policy, k))) == Prover(policy, k)


@pytest.mark.parametrize("name, kind, prover, loss, targets, prefixes", [
    ("orm", "orm", None, None, "soft", "all"), ("pqv", "pqv", None, None, "soft", "all"),
    ("pav_base_k4", "pav", "base_k4", None, "soft", "all"),
    ("pav_weak_k16", "pav", "weak_k16", None, "soft", "all"),
    ("pav_my_policy_k2", "pav", "my_policy_k2", None, "soft", "all"),
    ("pav_analytic_k8", "pav_analytic", "analytic_k8", None, "soft", "all"),
    ("implicit_ce", "implicit", None, "ce", "soft", "all"), ("implicit_dpo", "implicit", None, "dpo", "soft", "all"),
    ("pqv.hard", "pqv", None, None, "hard", "all"), ("pqv.first_pit", "pqv", None, None, "soft", "first_pit"),
    ("pqv.hard.first_pit", "pqv", None, None, "hard", "first_pit"),
    ("pav_base_k4.random", "pav", "base_k4", None, "soft", "random"),
])
def test_verifier_parse_and_str(name, kind, prover, loss, targets, prefixes):
    v = Verifier.parse(name)
    assert (v.kind, str(v.prover) if v.prover else None, v.loss, v.targets, v.prefixes) == \
        (kind, prover, loss, targets, prefixes)
    assert str(v) == name and v.trained == (kind != "pav_analytic")
    assert re.fullmatch(VERIFIER, name)


def test_variants_in_either_order_mean_the_same_verifier():
    assert str(Verifier.parse("pqv.random.hard")) == "pqv.hard.random"


@pytest.mark.parametrize("name", ["pav", "pav_", "pqv_x", "orm_base_k4", "foo", "", "PQV", "prm",
                                  "implicit", "implicit_kto", "pqv.soft2", "pqv.hard.hard",
                                  "pqv.random.first_pit", "orm.hard", "implicit_ce.hard", "pav_analytic_k4.hard",
                                  "pav_base_k0"])
def test_verifier_rejects(name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        Verifier.parse(name)


def test_pav_of_a_prover():
    assert str(pav(Prover("base", 4))) == "pav_base_k4" and pav(Prover(ANALYTIC, 2)).kind == "pav_analytic"


def test_every_name_of_a_study_matches_its_wildcard():
    cfg = compose("didactic", [])
    for p in provers(cfg) + analytic_provers(cfg):
        assert re.fullmatch(WILDCARDS["prover"], str(p)), p
    for v in trained_verifiers(cfg):
        assert re.fullmatch(WILDCARDS["verifier"], str(v)), v
    for a in rl_arms(cfg):
        assert re.fullmatch(WILDCARDS["arm"], str(a)) and Arm.parse(str(a)) == a, a
    assert {a.kind for a in rl_arms(cfg)} == set(cfg.rl.arms)
    assert not re.fullmatch(WILDCARDS["arm"], "pav_k4") and not re.fullmatch(WILDCARDS["arm"], "pav_mc")
    for name in cfg.sft.policies:
        assert re.fullmatch(WILDCARDS["policy"], name)


def test_search_methods():
    assert SEARCH_METHODS == POOL_METHODS + ("beam",) and len(set(SEARCH_METHODS)) == len(SEARCH_METHODS)


@pytest.mark.parametrize("name, kind, prover", [("outcome", "outcome", None), ("pav", "pav", None),
                                                ("pav_mc_base_k4", "pav_mc", "base_k4"),
                                                ("pav_mc_my_weak_k16", "pav_mc", "my_weak_k16")])
def test_arm_parse_and_str(name, kind, prover):
    a = Arm.parse(name)
    assert (a.kind, str(a.prover) if a.prover else None) == (kind, prover) and str(a) == name


@pytest.mark.parametrize("name", ["pav_mc", "pav_mc_", "pav_mc_base", "bogus", "pav_k4"])
def test_arm_rejects(name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        Arm.parse(name)
    assert not re.fullmatch(WILDCARDS["arm"], name)


def test_orm_rollouts():
    v = Verifier.parse("orm.rollouts")
    assert v.kind == "orm" and v.rollouts and str(v) == "orm.rollouts" and str(v.base) == "orm" and v.trained
    assert re.fullmatch(VERIFIER, "orm.rollouts") and not re.fullmatch(VERIFIER, "pqv.rollouts")
    for bad in ("pqv.rollouts", "orm.rollouts.hard", "orm.hard.rollouts", "pav_base_k4.rollouts"):
        with pytest.raises(ValueError, match="orm.rollouts"):
            Verifier.parse(bad)


def test_data_scaling_variants():
    v = Verifier.parse("pav_base_k4.s2m8")
    assert v.data == (2, 8) and str(v.base) == "pav_base_k4" and str(v) == "pav_base_k4.s2m8"
    assert str(Verifier.parse("pqv.hard.first_pit.s1m4")) == "pqv.hard.first_pit.s1m4"
    assert Verifier.parse("pqv.hard.first_pit.s1m4").all_data == Verifier.parse("pqv.hard.first_pit")  # keeps the others
    assert data_variant(2, 8) == "s2m8" and Verifier.parse(f"pqv.{data_variant(2, 8)}").data == (2, 8)
    for bad in ("pqv.s0m4", "pqv.s2", "pqv.s2m4.s1m4", "orm.s2m4"):
        with pytest.raises(ValueError):
            Verifier.parse(bad)
