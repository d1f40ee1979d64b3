"""What a study of this size can detect: the minimum detectable effect (MDE) of a comparison (the
claims' verdicts, from confidence intervals, are in pavflow.report.claims).

MDE: the smallest true difference a two-sided test at level `alpha` detects with probability `power`,
(z_{1-alpha/2} + z_{power}) * SE. For a paired accuracy difference over problems, SE is the standard
error of the per-problem differences; for RL arms compared over seeds, the standard error of the
difference of two seed means (Welch). A claim whose effect is below the MDE cannot be resolved here,
which is different from "the effect is absent".
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, t

ALPHA, POWER = 0.05, 0.8


def mde(se: float, alpha: float = ALPHA, power: float = POWER, df: float | None = None) -> float:
    """With `df` (a t test on few seeds) the t quantiles, else the normal ones."""
    q = norm if df is None else t(df)
    return float((q.ppf(1 - alpha / 2) + q.ppf(power)) * se)


def se_from_ci(ci_low: float, ci_high: float, level: float = 1 - ALPHA) -> float:
    """The SE a normal CI of this width implies (for a bootstrap CI: its width in SE units)."""
    return float((ci_high - ci_low) / (2 * norm.ppf(1 - (1 - level) / 2)))


def paired_se(a, b) -> float:
    """SE of mean(a - b) over paired items (e.g. 0/1 correctness of two methods on the same problems)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")


def unpaired_se(a, b) -> float:
    """SE of mean(a) - mean(b) for independent samples (e.g. RL seeds of two arms), Welch."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return float("nan")
    return float(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


def n_for_half_width(sd: float, half_width: float, alpha: float = ALPHA) -> int:
    """Items a paired comparison with per-item difference SD `sd` needs for a CI of +-half_width."""
    return int(math.ceil((norm.ppf(1 - alpha / 2) * sd / half_width) ** 2))


def t_ci(values, level: float = 1 - ALPHA) -> tuple[float, float]:
    """Student-t CI of the mean of a few values (seeds); nan with fewer than 2 or no spread."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 or x.std() == 0:
        return float("nan"), float("nan")
    lo, hi = t.interval(level, x.size - 1, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(x.size))
    return float(lo), float(hi)


TARGET_HALF_WIDTH = 0.04  # the 95% CI half-width of an accuracy difference a study should be sized for


def n_for_ci(ci_low: float, ci_high: float, n: int, half_width: float = TARGET_HALF_WIDTH) -> int | None:
    """Items (problems, or seeds per arm) a comparison whose 95% CI on n items is [ci_low, ci_high] would
    need for a CI of +-half_width: the width shrinks as 1/sqrt(n). None without a CI of positive width."""
    if not all(map(math.isfinite, (ci_low, ci_high))) or ci_high <= ci_low or n < 1:
        return None
    return int(math.ceil(n * ((ci_high - ci_low) / 2 / half_width) ** 2))
