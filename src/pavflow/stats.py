"""Uncertainty over problems: bootstrap CIs of a mean (scipy's BCa), and the unbiased pass@k estimator."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as _scipy_stats


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap CI of the mean of `values` (one value per problem), by `scipy.stats.bootstrap`.

    Deterministic given `seed`. Empty input gives (nan, nan); a single value, or values all equal,
    give (v, v) (every resample has the same mean)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return float("nan"), float("nan")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    ci = _scipy_stats.bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=level, method="BCa",
                                vectorized=True, axis=-1, rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def cluster_bootstrap_ci(stat, n_clusters: int, n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `stat(idx)`, a statistic of the clusters `idx` (indices into
    0..n_clusters-1, drawn with replacement): for statistics pooled over the states of whole responses,
    which are not independent draws. Resamples where the statistic is nan are dropped.

    Hand-written: scipy.stats.bootstrap cannot drop undefined resamples (an AUROC of a resample with
    one class, a Spearman of a constant one); it returns nan for the whole interval instead."""
    if n_clusters == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = np.array([stat(rng.integers(0, n_clusters, size=n_clusters)) for _ in range(n_boot)], dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low, high = np.quantile(draws, [tail, 1.0 - tail])
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


_AXES = {"linear": (lambda v: v, lambda v: v), "log2": (np.log2, lambda v: 2 ** v)}  # (to, back)


def first_reach(x: np.ndarray, y: np.ndarray, target: float, axis: str = "linear") -> float:
    """x at which a measured curve y(x) first reaches `target`, interpolating linearly on the `axis`
    scale of x ("linear" for samples seen, "log2" for tokens) between measured points; inf if it
    never does. Points are taken in order of x (stable), nan points are skipped. A curve already at
    `target` at its first point gives that point's x (no extrapolation)."""
    to, back = _AXES[axis]
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    hit = np.flatnonzero(y >= target)
    if hit.size == 0:
        return float("inf")
    i = hit[0]
    if i == 0:
        return float(x[0])
    t = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(back(to(x[i - 1]) + t * (to(x[i]) - to(x[i - 1]))))


def sample_efficiency(samples: np.ndarray, baseline: np.ndarray, treated: np.ndarray, n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95, baseline_cost: np.ndarray | None = None,
                      treated_cost: np.ndarray | None = None) -> dict:
    """How many times fewer samples the treated arm needs to reach the baseline arm's final accuracy.

    `baseline`, `treated`: (seeds, points) accuracy curves on the common `samples` axis (nan where a
    run stopped early). Target = the baseline's seed-mean accuracy at its last point; ratio =
    samples of that point / samples at which the treated seed-mean curve first reaches the target
    (0 if it never does; nan if it is there before any update, where the baseline did not rise above
    the initial policy and there is no efficiency to measure). CI: percentile bootstrap resampling the
    seeds of each arm independently, over the resamples where the ratio is defined.
    `baseline_cost`, `treated_cost`: (seeds, points) cost of each run at each point (e.g. generated
    plus rollout tokens); the ratio is then in that cost, each arm on its seed-mean cost axis
    (resampled with its seeds), and `samples_needed` is the treated arm's cost to reach the target.

    Hand-written: the ratio is inf on a resample whose treated arm never reaches the target, where
    scipy.stats.bootstrap's BCa is undefined and its percentile interval interpolates (inf - inf)."""
    x = np.asarray(samples, dtype=np.float64)
    base, treat = np.atleast_2d(np.asarray(baseline, float)), np.atleast_2d(np.asarray(treated, float))
    costs = [None if c is None else np.atleast_2d(np.asarray(c, float)) for c in (baseline_cost, treated_cost)]
    for name, c, acc in (("baseline_cost", costs[0], base), ("treated_cost", costs[1], treat)):
        if c is not None and c.shape != acc.shape:
            raise ValueError(f"sample_efficiency: {name} has shape {c.shape}, its accuracies {acc.shape}")

    def ratio(bi: np.ndarray, ti: np.ndarray) -> tuple[float, float, float]:
        with warnings.catch_warnings():  # a resample of only early-stopped seeds has all-nan points
            warnings.simplefilter("ignore", RuntimeWarning)
            b_mean, t_mean = np.nanmean(base[bi], axis=0), np.nanmean(treat[ti], axis=0)
            xb, xt = (x if c is None else np.nanmean(c[i], axis=0) for c, i in zip(costs, (bi, ti)))
        last = np.flatnonzero(~np.isnan(b_mean))[-1]
        target, needed = float(b_mean[last]), first_reach(xt, t_mean, float(b_mean[last]))
        return (xb[last] / needed if needed > 0 else float("nan")), target, needed

    r, target, needed = ratio(np.arange(len(base)), np.arange(len(treat)))
    rng = np.random.default_rng(seed)
    boot = np.array([ratio(rng.integers(0, len(base), len(base)), rng.integers(0, len(treat), len(treat)))[0]
                     for _ in range(n_boot)])
    boot = boot[~np.isnan(boot)]
    tail = (1 - level) / 2
    lo, hi = (np.quantile(boot, [tail, 1 - tail], method="inverted_cdf")  # no interpolation: ratios may be inf
              if boot.size else (float("nan"), float("nan")))
    return {"sample_efficiency": r, "ci_low": float(lo), "ci_high": float(hi), "target_acc": target,
            "samples_needed": needed, "n_seeds": (len(base), len(treat))}


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a - b), ci_low, ci_high) for two methods measured on the same problems: `a[i]` and
    `b[i]` belong to problem i. Each bootstrap resample draws problems, so both methods see the same
    resampled problems (the CI is `bootstrap_ci`, BCa, of the per-problem difference)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap_ci: {a.size} and {b.size} values; a paired comparison "
                         "needs one value per problem on both sides")
    return mean_ci(a - b, n_boot=n_boot, seed=seed, level=level)


def _log_interp_weight(x: np.ndarray, target: float) -> tuple[int, float] | None:
    """(i, w): `target` lies between x[i] and x[i+1] (x increasing), at weight w in log2(x) -- a
    straight segment on the log2 axes the curves are drawn on. None outside [x[0], x[-1]]."""
    if target < x[0] or target > x[-1]:
        return None
    i = min(int(np.searchsorted(x, target, side="right")) - 1, len(x) - 2)
    if len(x) == 1 or x[i + 1] == x[i]:
        return max(i, 0), 0.0
    return i, float((np.log2(target) - np.log2(x[i])) / (np.log2(x[i + 1]) - np.log2(x[i])))


def compute_efficiency(base_tokens: np.ndarray, base_acc: np.ndarray, tokens: float,
                       acc: float) -> tuple[float, str]:
    """How many times the tokens of a method at one point (`tokens`, `acc`) the baseline curve needs
    to reach `acc`: (ratio, bound). bound is "=" when the baseline's measured curve reaches `acc`
    (ratio by `first_reach` in log2 tokens), ">" when it never does (ratio = its largest tokens /
    `tokens`, a lower bound), and "<=" when it is already there at its first point (ratio = its
    smallest tokens / `tokens`, an upper bound). nan when `acc` is 0: every curve starts there."""
    x, y = np.asarray(base_tokens, dtype=np.float64), np.asarray(base_acc, dtype=np.float64)
    if x.size == 0 or tokens <= 0 or acc <= 0:  # any curve "reaches" 0 accuracy: no ratio from zeros
        return float("nan"), "="
    need = first_reach(x, y, acc, axis="log2")
    if not np.isfinite(need):
        return float(x.max() / tokens), ">"
    first = y[np.argmin(x)] >= acc
    return float(need / tokens), "<=" if first else "="


def compute_efficiency_ci(base_tokens: np.ndarray, base: np.ndarray, tokens: float, a: np.ndarray,
                          n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `compute_efficiency`, resampling problems (the same ones on both sides):
    `base` (problems, points) 0/1 of the baseline at its measured mean tokens `base_tokens`, `a`
    (problems,) 0/1 of the method at `tokens`. A resample whose baseline never reaches the method's
    accuracy counts as an infinite ratio, so the upper end is inf when that happens often enough.

    Hand-written for that reason: scipy.stats.bootstrap needs a finite statistic (BCa) or
    interpolates the percentile interval, and neither keeps an infinite upper end."""
    base = np.atleast_2d(np.asarray(base, dtype=np.float64))
    a = np.asarray(a, dtype=np.float64).ravel()
    if base.shape[0] != a.size:
        raise ValueError(f"compute_efficiency_ci: {base.shape[0]} baseline problems, {a.size} method problems")
    if a.size == 0 or tokens <= 0 or a.mean() <= 0:  # no ratio at 0 accuracy (compute_efficiency)
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, a.size, size=a.size)
        need = first_reach(base_tokens, base[idx].mean(axis=0), float(a[idx].mean()), axis="log2")
        draws[b] = need / tokens
    tail = (1.0 - level) / 2
    low, high = np.quantile(draws, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


def matched_difference(a: np.ndarray, a_tokens: float, base: np.ndarray, base_tokens: np.ndarray,
                       n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float] | None:
    """Accuracy of a method minus a baseline's at the method's mean generated tokens, with a paired
    bootstrap CI over problems. `a`: (problems,) 0/1 of the method; `base`: (problems, points) 0/1 of
    the baseline at its measured points, whose mean tokens are `base_tokens` (increasing). Per
    problem, the baseline is interpolated at `a_tokens` in log2(tokens) between its two bracketing
    points (weights from the mean tokens, held fixed). None when `a_tokens` is outside the
    baseline's measured token range."""
    base = np.atleast_2d(np.asarray(base, dtype=np.float64))
    x = np.asarray(base_tokens, dtype=np.float64)
    if base.shape[1] != x.size:
        raise ValueError(f"matched_difference: {base.shape[1]} baseline points, {x.size} token counts")
    if np.any(np.diff(x) < 0):
        raise ValueError("matched_difference: base_tokens must be increasing")
    where = _log_interp_weight(x, float(a_tokens))
    if where is None:
        return None
    i, w = where
    b = base[:, i] if w == 0.0 else (1 - w) * base[:, i] + w * base[:, i + 1]
    return paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed, level=level)
