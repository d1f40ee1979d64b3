import math

import pytest

from pavflow.report.claims import (ACCURACY, EFFICIENCY, PROVER, RL_ACCURACY, RL_EFFICIENCY, AccuracyClaim,
                                   EfficiencyClaim, ProverClaim)
from pavflow.report.headline import BestProver


def test_thresholds_are_the_papers():
    assert (ACCURACY.points, EFFICIENCY.low, EFFICIENCY.high, PROVER.margin) == (0.08, 1.5, 5.0, 0.0)
    assert ACCURACY.statement == "Beam search with PAVs is > 8 points more accurate than best-of-N with an ORM"
    assert ACCURACY.rule == "reproduces if ≥ 8 points with CI above 0; does not if the CI is below 8"
    assert EFFICIENCY.statement == "Beam search with PAVs is 1.5–5× more compute-efficient"
    assert EFFICIENCY.rule(True) == ("reproduces if the 95% CI at the largest budget lies above 1.5×, "
                                     "does not if below")
    assert EFFICIENCY.rule(False) == "reproduces if ≥ 1.5× at the largest budget; point estimate, no CI"
    assert PROVER.statement == "The best prover is neither too weak nor too strong"
    assert "CIs above 0;" in PROVER.rule
    # the abstract's online-RL claims: >6% accuracy and 5-6x sample efficiency over ORMs
    assert (RL_ACCURACY.points, RL_EFFICIENCY.low, RL_EFFICIENCY.high) == (0.06, 5.0, 6.0)
    assert RL_ACCURACY.rule == "reproduces if ≥ 6 points with CI above 0; does not if the CI is below 6"


@pytest.mark.parametrize("gain, lo, hi, verdict", [
    (0.10, 0.01, 0.20, "reproduces"),
    (0.08, 0.001, 0.15, "reproduces"),  # at the threshold
    (0.079, 0.01, 0.15, "inconclusive"),  # just below it, CI straddles it
    (0.10, 0.0, 0.20, "inconclusive"),  # CI not above 0
    (0.02, -0.03, 0.079, "does not reproduce"),  # CI below 8 points
    (0.02, -0.03, 0.08, "inconclusive"),  # CI reaches 8 points
    (-0.20, -0.30, -0.10, "does not reproduce"),
])
def test_accuracy_verdict(gain, lo, hi, verdict):
    assert ACCURACY.verdict(gain, lo, hi) == verdict


@pytest.mark.parametrize("accs", [(0.0, 0.0), (1.0, 1.0)])
def test_both_sides_at_0_or_100_percent_are_inconclusive_not_a_refutation(accs):
    """The smoke study's tie: both at 0%, CI [0, 0] lies below 8 points but says nothing about the claim."""
    assert ACCURACY.verdict(0.0, 0.0, 0.0) == "does not reproduce"
    assert ACCURACY.verdict(0.0, 0.0, 0.0, *accs) == "inconclusive"
    assert ACCURACY.verdict(0.0, 0.0, 0.0, 0.1, 0.1) == "does not reproduce"  # a tie away from the bounds
    assert ACCURACY.verdict(0.0, float("nan"), float("nan")) == "inconclusive"


def test_accuracy_threshold_is_one_number():
    five = AccuracyClaim(points=0.05)
    assert five.verdict(0.06, 0.01, 0.1) == "reproduces" and ACCURACY.verdict(0.06, 0.01, 0.1) == "inconclusive"
    assert "> 5 points" in five.statement and "below 5" in five.rule


@pytest.mark.parametrize("ratio, bound, lo, hi, verdict", [
    (2.0, "=", 1.5, 3.0, "reproduces"),  # the CI decides: its low end at the threshold
    (2.0, "=", 1.49, 3.0, "inconclusive"),
    (1.2, "=", 0.9, 1.49, "does not reproduce"),
    (1.2, "=", 0.9, 1.5, "inconclusive"),
    (2.0, ">", 1.6, math.inf, "reproduces"),
    (1.6, "=", None, None, "reproduces"),  # no CI: the point estimate and its bound
    (1.5, "=", float("nan"), float("nan"), "reproduces"),
    (1.6, "<=", None, None, "inconclusive"),  # an upper bound above 1.5 says nothing
    (1.4, "=", None, None, "does not reproduce"),
    (1.4, "<=", None, None, "does not reproduce"),
    (1.4, ">", None, None, "inconclusive"),  # a lower bound below 1.5 says nothing
    (1.6, ">", None, None, "reproduces"),
])
def test_efficiency_verdict(ratio, bound, lo, hi, verdict):
    assert EFFICIENCY.verdict(ratio, bound, lo, hi) == verdict


def test_efficiency_threshold_is_one_number():
    assert EfficiencyClaim(low=2.0).verdict(1.8, "=", 1.6, 2.2) == "inconclusive"
    assert EFFICIENCY.verdict(1.8, "=", 1.6, 2.2) == "reproduces"
    assert EfficiencyClaim(low=2.0, high=4.0).statement.endswith("2–4× more compute-efficient")


def _best(*ci_lows, best=4, acc=0.5, others=0.4) -> BestProver:
    """The best K among {1, 4, 64} compared with the Ks in `ci_lows`' order (the ends, then an interior K)."""
    ks = [k for k in (1, 64) if k != best] + ([4] if best != 4 else [])
    minus = {k: {"diff": lo + 0.1, "ci_low": lo, "ci_high": lo + 0.2, "baseline_acc": others}
             for k, lo in zip(ks, ci_lows)}
    return BestProver("base", 64, {"K": best, "acc": acc, "ci_low": 0.4, "ci_high": 0.6}, minus, (1, 4, 64))


@pytest.mark.parametrize("best, ci_lows, verdict", [
    (4, (0.01, 0.02), "reproduces"),  # interior and better than both ends
    (4, (0.01, 0.0), "inconclusive"),  # interior, but one paired CI reaches 0
    (4, (-0.05, 0.02), "inconclusive"),
    (4, (0.01,), "inconclusive"),  # one end not compared
    (64, (0.01, 0.02), "does not reproduce"),  # an end, and it beats the interior K (the second compared)
    (64, (0.01, -0.02), "inconclusive"),  # an end, within noise of the interior K
    (1, (-0.01, 0.02), "does not reproduce"),  # the interior decides, not the other end
    (1, (0.01,), "inconclusive"),  # an end, the interior K not compared
])
def test_prover_verdict(best, ci_lows, verdict):
    assert PROVER.verdict(_best(*ci_lows, best=best)) == verdict


def test_a_prover_sweep_tied_at_0_is_inconclusive():
    """All Ks at 0%: the tie-break picks the smallest K, an end; that is no evidence against the claim."""
    assert PROVER.verdict(_best(0.0, 0.0, best=1, acc=0.0, others=0.0)) == "inconclusive"
    assert PROVER.verdict(_best(0.01, 0.02, best=1, acc=0.1, others=0.0)) == "does not reproduce"


def test_two_ks_cannot_test_the_claim():
    b = BestProver("base", 16, {"K": 4, "acc": 0.7, "ci_low": 0.6, "ci_high": 0.8},
                   {1: {"diff": 0.1, "ci_low": 0.02, "ci_high": 0.2, "baseline_acc": 0.6}}, (1, 4))
    assert PROVER.verdict(b) == "inconclusive"  # no interior K


def test_prover_margin_is_one_number():
    assert ProverClaim(margin=0.05).verdict(_best(0.01, 0.02)) == "inconclusive"
    assert "CIs above 0.05;" in ProverClaim(margin=0.05).rule
