"""The paper's claims (Setlur et al. 2024, "Rewarding Progress", arXiv:2410.08146): three on test-time
search, two on online RL, and its characterization of good provers; and the rules that judge this
study's numbers against them. Each verdict takes numbers of the structured headline
(pavflow.report.headline), never headline.json's keys. A comparison whose sides all sit at 0% (or all
at 100%) has a zero-width CI that says nothing about the claim: it is inconclusive, never a refutation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pavflow.report.fmt import ok
from pavflow.report.headline import BestProver

Verdict = Literal["reproduces", "does not reproduce", "inconclusive"]


def at_bound(*accs: float) -> bool:
    """Every accuracy is 0, or every one is 1: the study cannot tell the methods apart."""
    return all(a == 0 for a in accs) or all(a == 1 for a in accs)


@dataclass(frozen=True)
class AccuracyClaim:
    """Abstract: "test-time search against PAVs is >8% more accurate" than against an ORM. Judged on
    beam search minus best-of-N at matched generated tokens."""
    points: float = 0.08  # accuracy gain, as a fraction of problems

    @property
    def statement(self) -> str:
        return f"Beam search with PAVs is > {100 * self.points:g} points more accurate than best-of-N with an ORM"

    @property
    def rule(self) -> str:
        pts = f"{100 * self.points:g}"
        return f"reproduces if ≥ {pts} points with CI above 0; does not if the CI is below {pts}"

    def verdict(self, gain: float, ci_low: float, ci_high: float, *accs: float) -> Verdict:
        """`accs`: the compared accuracies (beam search's, best-of-N's)."""
        if not all(map(ok, (gain, ci_low, ci_high))) or (accs and at_bound(*accs)):
            return "inconclusive"
        if gain >= self.points and ci_low > 0:
            return "reproduces"
        return "does not reproduce" if ci_high < self.points else "inconclusive"


@dataclass(frozen=True)
class EfficiencyClaim:
    """Abstract: PAVs are "1.5-5× more compute-efficient" than ORMs. Judged on the lower end only:
    best-of-N's tokens to reach beam search's accuracy over beam search's tokens."""
    low: float = 1.5
    high: float = 5.0  # stated by the paper, not judged: more efficient than that still reproduces

    @property
    def statement(self) -> str:
        return f"Beam search with PAVs is {self.low:g}–{self.high:g}× more compute-efficient"

    def rule(self, has_ci: bool) -> str:
        if has_ci:
            return f"reproduces if the 95% CI at the largest budget lies above {self.low:g}×, does not if below"
        return f"reproduces if ≥ {self.low:g}× at the largest budget; point estimate, no CI"

    def verdict(self, ratio: float, bound: str, ci_low: float | None = None, ci_high: float | None = None) -> Verdict:
        """`bound` as stats.compute_efficiency: "=", ">" (a lower bound) or "<=" (an upper bound); the CI
        decides when there is one."""
        if ok(ci_low) and ok(ci_high):
            return ("reproduces" if ci_low >= self.low else
                    "does not reproduce" if ci_high < self.low else "inconclusive")
        if ratio >= self.low and bound != "<=":
            return "reproduces"
        return "does not reproduce" if ratio < self.low and bound != ">" else "inconclusive"


@dataclass(frozen=True)
class RLAccuracyClaim(AccuracyClaim):
    """Abstract: online RL with dense PAV rewards gives a ">6% gain in accuracy" over an ORM (outcome
    reward). Judged on the final sampled test accuracy, seed means, Welch CI over seeds."""
    points: float = 0.06

    @property
    def statement(self) -> str:
        return f"RL with dense progress rewards ends > {100 * self.points:g} points more accurate than outcome RL"


@dataclass(frozen=True)
class RLEfficiencyClaim(EfficiencyClaim):
    """Abstract: "5-6x gain in sample efficiency" of online RL over an ORM. Judged on the lower end: the
    outcome arm's samples to its final accuracy over the arm's samples to reach it."""
    low: float = 5.0
    high: float = 6.0

    @property
    def statement(self) -> str:
        return f"RL with dense progress rewards is {self.low:g}–{self.high:g}× more sample-efficient than outcome RL"


@dataclass(frozen=True)
class ProverClaim:
    """The paper's characterization of good provers: a prover BoK(π) should be neither too weak (small
    K) nor too strong (large K) for the base policy. Judged on a prover-K sweep."""
    margin: float = 0.0  # paired CI lower ends of the best K over both ends of the sweep must exceed it

    statement = "The best prover is neither too weak nor too strong"

    @property
    def rule(self) -> str:
        return (f"reproduces if the best K is interior and beats both the smallest and the largest K with CIs "
                f"above {self.margin:g}; does not if the best K is the smallest or the largest and beats the best "
                "interior K with a CI above 0; ties and overlapping CIs are inconclusive")

    def verdict(self, best: BestProver) -> Verdict:
        if at_bound(best.best["acc"], *(r["baseline_acc"] for r in best.minus.values())):
            return "inconclusive"
        lo, hi = best.sweep[0], best.sweep[-1]
        if best.best["K"] in (lo, hi):
            inner = [r for k, r in best.minus.items() if lo < k < hi]
            return "does not reproduce" if inner and inner[0]["ci_low"] > 0 else "inconclusive"
        ends = [best.minus.get(k) for k in (lo, hi)]
        return "reproduces" if all(r is not None and r["ci_low"] > self.margin for r in ends) else "inconclusive"


ACCURACY, EFFICIENCY, PROVER = AccuracyClaim(), EfficiencyClaim(), ProverClaim()
RL_ACCURACY, RL_EFFICIENCY = RLAccuracyClaim(), RLEfficiencyClaim()
