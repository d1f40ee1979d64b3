"""Uncertainty over problems: percentile bootstrap of a mean, and the unbiased pass@k estimator."""
from __future__ import annotations

import warnings

import numpy as np

_MAX_DRAWS = 1 << 22  # resampled values held in memory at once (~32 MB of int64 indices)


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (one value per problem).

    Deterministic given `seed`. Empty input gives (nan, nan); a single value gives (v, v).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_DRAWS // n)
    means = np.concatenate([
        x[rng.integers(0, n, size=(min(chunk, n_boot - i), n))].mean(axis=1)
        for i in range(0, n_boot, chunk)
    ])
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0,
            level: float = 0.95) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) of `values`, CI from `bootstrap_ci`."""
    x = np.asarray(values, dtype=np.float64).ravel()
    mean = float(x.mean()) if x.size else float("nan")
    return (mean, *bootstrap_ci(x, n_boot=n_boot, seed=seed, level=level))


def pass_at_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Unbiased per-problem pass@k = 1 - C(n-c, k) / C(n, k) from c correct out of n samples (k <= n)."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    if np.any(n < k):
        raise ValueError(f"pass@{k} needs at least {k} samples per problem; min is {n.min()}")
    # C(n-c, k) / C(n, k) = prod_{i=0}^{k-1} (n-c-i) / (n-i), clipped at 0 once n-c-i <= 0.
    i = np.arange(k)
    ratio = np.clip((n - c)[:, None] - i, 0, None) / (n[:, None] - i)
    return 1.0 - ratio.prod(axis=1)


def samples_to_reach(samples: np.ndarray, acc: np.ndarray, target: float) -> float:
    """Samples seen when a learning curve first reaches `target`, interpolating linearly between
    evaluation points; inf if it never does (nan points are skipped)."""
    x, y = np.asarray(samples, dtype=np.float64), np.asarray(acc, dtype=np.float64)
    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    hit = np.flatnonzero(y >= target)
    if hit.size == 0:
        return float("inf")
    i = hit[0]
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (target - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))


def sample_efficiency(samples: np.ndarray, baseline: np.ndarray, treated: np.ndarray, n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95) -> dict:
    """How many times fewer samples the treated arm needs to reach the baseline arm's final accuracy.

    `baseline`, `treated`: (seeds, points) accuracy curves on the common `samples` axis (nan where a
    run stopped early). Target = the baseline's seed-mean accuracy at its last point; ratio =
    samples of that point / samples at which the treated seed-mean curve first reaches the target
    (0 if it never does). CI: percentile bootstrap resampling the seeds of each arm independently."""
    x = np.asarray(samples, dtype=np.float64)
    base, treat = np.atleast_2d(np.asarray(baseline, float)), np.atleast_2d(np.asarray(treated, float))

    def ratio(b: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
        with warnings.catch_warnings():  # a resample of only early-stopped seeds has all-nan points
            warnings.simplefilter("ignore", RuntimeWarning)
            b_mean, t_mean = np.nanmean(b, axis=0), np.nanmean(t, axis=0)
        last = np.flatnonzero(~np.isnan(b_mean))[-1]
        target, needed = float(b_mean[last]), samples_to_reach(x, t_mean, float(b_mean[last]))
        return (x[last] / needed if needed > 0 else float("inf")), target, needed

    r, target, needed = ratio(base, treat)
    rng = np.random.default_rng(seed)
    boot = [ratio(base[rng.integers(0, len(base), len(base))], treat[rng.integers(0, len(treat), len(treat))])[0]
            for _ in range(n_boot)]
    tail = (1 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail], method="inverted_cdf")  # no interpolation: ratios may be inf
    return {"sample_efficiency": r, "ci_low": float(lo), "ci_high": float(hi), "target_acc": target,
            "samples_needed": needed, "n_seeds": (len(base), len(treat))}
