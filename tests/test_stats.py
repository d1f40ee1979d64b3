import math

import numpy as np
import pytest

from pavflow.stats import bootstrap_ci, mean_ci, pass_at_k


def test_ci_contains_mean():
    x = np.random.default_rng(1).binomial(1, 0.4, size=100)
    mean, low, high = mean_ci(x)
    assert mean == pytest.approx(x.mean())
    assert low < mean < high
    assert 0.0 <= low and high <= 1.0


def test_ci_shrinks_with_n():
    rng = np.random.default_rng(2)
    widths = []
    for n in (25, 100, 400, 1600):
        low, high = bootstrap_ci(rng.binomial(1, 0.5, size=n))
        widths.append(high - low)
    assert all(a > b for a, b in zip(widths, widths[1:]))
    assert widths[0] / widths[-1] == pytest.approx(8.0, rel=0.3)  # width ~ 1/sqrt(n)


def test_coverage_bernoulli():
    rng = np.random.default_rng(3)
    p, n, trials = 0.3, 60, 200
    hits = 0
    for t in range(trials):
        low, high = bootstrap_ci(rng.binomial(1, p, size=n), n_boot=1000, seed=t)
        hits += low <= p <= high
    assert 0.88 <= hits / trials <= 0.99


def test_deterministic_under_seed():
    x = np.random.default_rng(4).normal(size=50)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)


def test_level_and_edge_cases():
    x = np.random.default_rng(5).normal(size=200)
    lo90, hi90 = bootstrap_ci(x, level=0.90)
    lo99, hi99 = bootstrap_ci(x, level=0.99)
    assert lo99 < lo90 and hi90 < hi99
    assert bootstrap_ci(np.array([0.25])) == (0.25, 0.25)
    assert all(math.isnan(v) for v in mean_ci(np.array([])))
    with pytest.raises(ValueError):
        bootstrap_ci(x, level=1.0)


def test_large_input():
    x = np.random.default_rng(6).binomial(1, 0.5, size=5000)
    a = bootstrap_ci(x, n_boot=1000, seed=0)
    assert a == bootstrap_ci(x, n_boot=1000, seed=0)
    assert a[0] < x.mean() < a[1]


def test_bootstrap_ci_is_bca():
    """BCa, not the percentile interval: on skewed data the interval shifts toward the long tail."""
    stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(7).exponential(size=40)
    want = stats.bootstrap((x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(3)).confidence_interval
    assert bootstrap_ci(x, seed=3) == pytest.approx((want.low, want.high))
    pct = stats.bootstrap((x,), np.mean, n_resamples=2000, method="percentile",
                          rng=np.random.default_rng(3)).confidence_interval
    assert bootstrap_ci(x, seed=3)[1] > pct.high
    assert bootstrap_ci(np.array([1.0, 1.0, 1.0])) == (1.0, 1.0)  # degenerate: every resample equal


def test_pass_at_k():
    n = np.array([4, 4, 4, 10])
    c = np.array([0, 1, 4, 3])
    np.testing.assert_allclose(pass_at_k(n, c, 1), c / n)
    # 1 - C(3,2)/C(4,2) = 1 - 3/6; 1 - C(7,2)/C(10,2) = 1 - 21/45
    np.testing.assert_allclose(pass_at_k(n, c, 2), [0.0, 0.5, 1.0, 1 - 21 / 45])
    np.testing.assert_allclose(pass_at_k(n, c, 4), [0.0, 1.0, 1.0, 1 - 35 / 210])
    with pytest.raises(ValueError):
        pass_at_k(n, c, 5)


# --- learning curves -----------------------------------------------------------------------------

def test_first_reach_interpolates_linearly_in_samples():
    from pavflow.stats import first_reach
    x = np.array([0, 100, 200, 300])
    assert first_reach(x, np.array([0.2, 0.4, 0.6, 0.7]), 0.5) == pytest.approx(150)
    assert first_reach(x, np.array([0.2, 0.4, 0.6, 0.7]), 0.1) == 0
    assert first_reach(x, np.array([0.2, 0.4, 0.6, 0.7]), 0.6) == 200
    assert first_reach(x, np.array([0.2, 0.4, 0.6, 0.7]), 0.8) == float("inf")
    assert first_reach(x, np.array([0.2, np.nan, 0.6, 0.7]), 0.4) == pytest.approx(100)


def test_first_reach_axis_is_the_only_difference_between_the_scales():
    """The same curve crossed on both axes: the crossing is at the same fraction t of the segment,
    of x on the linear axis and of log2 x on the log2 axis; both skip nan points and sort by x."""
    from pavflow.stats import first_reach
    x, y = [100, 400, 1600], [0.1, 0.3, 0.9]
    t = 0.25  # 0.15 lies a quarter of the way from 0.1 to 0.3
    assert first_reach(x, y, 0.15) == pytest.approx(100 + t * 300)
    assert first_reach(x, y, 0.15, axis="log2") == pytest.approx(2 ** (np.log2(100) + t * 2))
    assert first_reach(x, y, 0.15, axis="log2") == pytest.approx(100 * 2 ** 0.5)  # 141.4, not 175
    shuffled = [1600, 100, np.nan, 400], [0.9, 0.1, 0.2, 0.3]  # x order, nan point dropped
    for axis in ("linear", "log2"):
        assert first_reach(*shuffled, 0.15, axis=axis) == first_reach(x, y, 0.15, axis=axis)
        assert first_reach([200, 100], [np.nan, 0.5], 0.4, axis=axis) == 100
        assert first_reach(x, [np.nan, np.nan, 0.2], 0.1, axis=axis) == 1600
    with pytest.raises(KeyError):
        first_reach(x, y, 0.15, axis="log10")


def test_sample_efficiency_of_a_twice_as_fast_arm():
    from pavflow.stats import sample_efficiency
    x = np.arange(0, 500, 100)  # 0..400 samples
    base = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]] * 3) + np.array([[-0.01], [0.0], [0.01]])
    fast = np.array([[0.1, 0.3, 0.5, 0.6, 0.65]] * 3) + np.array([[-0.01], [0.0], [0.01]])
    r = sample_efficiency(x, base, fast, n_boot=500)
    assert r["target_acc"] == pytest.approx(0.5) and r["samples_needed"] == pytest.approx(200)
    assert r["sample_efficiency"] == pytest.approx(2.0)
    assert r["ci_low"] <= 2.0 <= r["ci_high"] and r["ci_high"] - r["ci_low"] > 0  # seeds differ
    assert sample_efficiency(x, base, base, n_boot=50)["sample_efficiency"] == pytest.approx(1.0)
    never = sample_efficiency(x, base, base - 0.2, n_boot=50)
    assert never["sample_efficiency"] == 0.0 and never["samples_needed"] == float("inf")
    # a run stopped early by a guardrail (nan tail) only leaves the mean where it has points
    stopped = fast.copy()
    stopped[0, 3:] = np.nan
    assert sample_efficiency(x, base, stopped, n_boot=50)["samples_needed"] == pytest.approx(200, abs=10)


def test_no_sample_efficiency_when_the_baseline_never_rises_above_the_start():
    """Outcome RL that ends where both arms began (13.5% after 6 updates, smollm_cpu) is reached by the
    other arm at 0 samples: undefined, not an infinite efficiency."""
    from pavflow.stats import sample_efficiency
    x = np.array([0.0, 48.0, 96.0])
    flat = np.array([[0.15, 0.13, 0.146], [0.125, 0.125, 0.125]])
    r = sample_efficiency(x, flat, flat + 0.05, n_boot=200)
    assert r["samples_needed"] == 0.0 and np.isnan(r["sample_efficiency"])
    assert np.isnan(r["ci_low"]) and np.isnan(r["ci_high"])


# --- paired comparisons, matched compute ---------------------------------------------------------

from pavflow.stats import compute_efficiency, first_reach, matched_difference, paired_bootstrap_ci  # noqa: E402


def test_paired_ci_coverage_on_simulated_datasets():
    """500 simulated paired datasets with a known mean difference: the 95% paired CI covers it at
    close to the nominal rate, and is narrower than an unpaired CI when the methods are correlated."""
    rng = np.random.default_rng(11)
    n, trials, true_diff = 80, 500, 0.1
    hits, paired_w, unpaired_w = 0, [], []
    for t in range(trials):
        ease = rng.uniform(0, 1, size=n)  # per-problem difficulty, shared by both methods
        u = rng.uniform(size=n)  # one draw per problem: the methods succeed together most of the time
        a = (u < np.clip(ease + 0.05, 0, 1)).astype(float)
        b = (u < np.clip(ease - 0.05, 0, 1)).astype(float)
        # the true mean difference of this design: E[clip(e+.05)] - E[clip(e-.05)] = 0.1 - 2 * .05^2/2
        d, lo, hi = paired_bootstrap_ci(a, b, n_boot=500, seed=t)
        assert d == pytest.approx(a.mean() - b.mean())
        hits += lo <= true_diff - 0.0025 <= hi
        if t < 50:
            paired_w.append(hi - lo)
            la, ha = bootstrap_ci(a, n_boot=500, seed=t)
            lb, hb = bootstrap_ci(b, n_boot=500, seed=t)
            unpaired_w.append(np.hypot(ha - la, hb - lb))
    assert 0.91 <= hits / trials <= 0.98, hits / trials
    assert np.mean(paired_w) < 0.8 * np.mean(unpaired_w)
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap_ci([1, 0], [1])


def test_first_reach_interpolates_in_log_tokens():
    tokens, acc = [100, 200, 400, 800], [0.2, 0.3, 0.5, 0.55]
    assert first_reach(tokens, acc, 0.3, axis="log2") == pytest.approx(200)
    assert first_reach(tokens, acc, 0.4, axis="log2") == pytest.approx(200 * 2 ** 0.5)  # halfway in log2
    assert first_reach(tokens, acc, 0.1, axis="log2") == 100  # already there at the first point
    assert first_reach(tokens, acc, 0.6, axis="log2") == math.inf
    # first crossing of a non-monotone curve; input order does not matter
    assert first_reach([400, 100, 200], [0.5, 0.2, 0.6], 0.4, axis="log2") == pytest.approx(100 * 2 ** 0.5)


def test_compute_efficiency_on_a_hand_made_curve():
    bon_tokens, bon_acc = [100, 200, 400, 800], [0.2, 0.3, 0.5, 0.55]
    # beam reaches 40% with 50 tokens; bon needs 200*sqrt(2) tokens
    r, bound = compute_efficiency(bon_tokens, bon_acc, 50, 0.4)
    assert (r, bound) == (pytest.approx(200 * 2 ** 0.5 / 50), "=")
    r, bound = compute_efficiency(bon_tokens, bon_acc, 100, 0.7)  # never reached: > 800 / 100
    assert (r, bound) == (pytest.approx(8.0), ">")
    r, bound = compute_efficiency(bon_tokens, bon_acc, 400, 0.1)  # bon is there at once: <= 100 / 400
    assert (r, bound) == (pytest.approx(0.25), "<=")


def test_matched_difference():
    # 4 problems; baseline at 100 and 400 tokens; method at 200 tokens = halfway in log2
    base = np.array([[0, 1], [0, 1], [1, 1], [0, 0]])
    a = np.array([1, 1, 1, 0])
    d, lo, hi = matched_difference(a, 200.0, base, [100.0, 400.0], n_boot=500)
    assert d == pytest.approx(np.mean(a - base.mean(axis=1)))  # 0.25
    assert lo <= d <= hi
    d, *_ = matched_difference(a, 400.0, base, [100.0, 400.0])
    assert d == pytest.approx(0.0)
    assert matched_difference(a, 50.0, base, [100.0, 400.0]) is None
    assert matched_difference(a, 401.0, base, [100.0, 400.0]) is None
    with pytest.raises(ValueError, match="increasing"):
        matched_difference(a, 200.0, base, [400.0, 100.0])


from pavflow.stats import cluster_bootstrap_ci  # noqa: E402


def test_cluster_bootstrap_resamples_whole_clusters():
    # 40 clusters of very different sizes; the pooled ratio's CI covers it and is deterministic
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 20, size=40)
    sq = np.array([rng.random(s).sum() for s in sizes])
    stat = lambda idx: sq[idx].sum() / sizes[idx].sum()  # noqa: E731
    lo, hi = cluster_bootstrap_ci(stat, 40, n_boot=500, seed=1)
    assert lo < stat(np.arange(40)) < hi
    assert (lo, hi) == cluster_bootstrap_ci(stat, 40, n_boot=500, seed=1)
    # identical clusters: no uncertainty at all
    assert cluster_bootstrap_ci(lambda idx: 0.25, 10, n_boot=50) == (0.25, 0.25)


def test_cluster_bootstrap_edge_cases():
    assert all(math.isnan(x) for x in cluster_bootstrap_ci(lambda idx: 1.0, 0))
    assert all(math.isnan(x) for x in cluster_bootstrap_ci(lambda idx: float("nan"), 5, n_boot=20))
    # nan resamples (e.g. AUROC with one class drawn) are dropped, the rest still give a CI
    y = np.array([0, 1])
    lo, hi = cluster_bootstrap_ci(lambda idx: float(y[idx].mean()) if len(set(y[idx])) == 2 else float("nan"),
                                  2, n_boot=100)
    assert lo == hi == 0.5


from pavflow.stats import compute_efficiency_ci  # noqa: E402


def test_compute_efficiency_ci_brackets_the_estimate_and_goes_to_infinity_when_unreached():
    rng = np.random.default_rng(0)
    P = 400
    tokens = np.array([100.0, 200.0, 400.0, 800.0])
    base = (rng.random((P, 4)) < np.array([0.2, 0.3, 0.4, 0.5])).astype(float)  # BoN curve
    a = (rng.random(P) < 0.3).astype(float)  # method at 100 tokens
    r, bound = compute_efficiency(tokens, base.mean(axis=0), 100.0, float(a.mean()))
    lo, hi = compute_efficiency_ci(tokens, base, 100.0, a, n_boot=400)
    assert bound == "=" and lo < r < hi and math.isfinite(hi)
    assert (lo, hi) == compute_efficiency_ci(tokens, base, 100.0, a, n_boot=400)  # seeded
    # a method the baseline almost never reaches: the upper end is unbounded
    top = np.ones(P)
    lo, hi = compute_efficiency_ci(tokens, base, 100.0, top, n_boot=200)
    assert math.isinf(hi)
    with pytest.raises(ValueError, match="3 baseline problems, 2 method problems"):
        compute_efficiency_ci(tokens, base[:3], 100.0, a[:2])


def test_no_compute_efficiency_at_zero_accuracy():
    ratio, bound = compute_efficiency(np.array([10.0, 20.0]), np.array([0.0, 0.0]), 15.0, 0.0)
    assert math.isnan(ratio) and bound == "="
    assert all(math.isnan(x) for x in compute_efficiency_ci(np.array([10.0, 20.0]), np.zeros((4, 2)), 15.0, np.zeros(4)))
