import math

import numpy as np
import polars as pl
import pytest

from pavflow.data import LABELS, MC, conform
from pavflow.labels import bok_of_value, bok_value, make_labels
from pavflow.names import Prover


def bok(n, c, k) -> float:
    return float(bok_value(np.array([n]), np.array([c]), k)[0])


# --- bok_value -----------------------------------------------------------------------------------

def test_bok_value_small_exact_cases():
    assert bok(4, 2, 2) == pytest.approx(1 - math.comb(2, 2) / math.comb(4, 2), abs=1e-15)
    assert bok(4, 2, 2) == pytest.approx(5 / 6, abs=1e-15)
    assert bok(6, 1, 4) == pytest.approx(1 - 5 / 15, abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
@pytest.mark.parametrize("k", [1, 2, 3, 7, 16, 40])
def test_bok_value_boundaries(n, k):
    assert bok(n, 0, k) == 0.0
    assert bok(n, n, k) == 1.0


@pytest.mark.parametrize("n", [1, 3, 8])
def test_bok_value_k1_is_success_rate(n):
    c = np.arange(n + 1)
    np.testing.assert_allclose(bok_value(np.full(n + 1, n), c, 1), c / n, rtol=0, atol=1e-15)


def test_bok_value_is_elementwise_and_matches_pass_at_k_formula():
    n = np.array([10, 10, 7, 3, 12, 5])
    c = np.array([0, 3, 7, 1, 5, 4])
    for k in [1, 2, 3, 5]:
        want = [1 - math.comb(ni - ci, k) / math.comb(ni, k) if k <= ni else 1 - (1 - ci / ni) ** k
                for ni, ci in zip(n, c)]
        np.testing.assert_allclose(bok_value(n, c, k), want, rtol=0, atol=1e-12)


def test_bok_value_monotone_in_k_and_c():
    # for K <= n only: at K = n + 1 the plug-in fallback is (by design) below the K = n estimate
    n = np.full(9, 8)
    c = np.arange(9)
    prev = bok_value(n, c, 1)
    assert (np.diff(prev) > 0).all()
    for k in range(2, 9):
        cur = bok_value(n, c, k)
        assert (cur >= prev - 1e-15).all()
        assert (np.diff(cur) >= -1e-15).all()
        prev = cur


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("n", [1, 4, 9])
def test_bok_value_unbiased_exact_expectation(n, p):
    c = np.arange(n + 1)
    pmf = np.array([math.comb(n, ci) * p**ci * (1 - p) ** (n - ci) for ci in c])
    for k in range(1, n + 1):
        expectation = float(np.sum(pmf * bok_value(np.full(n + 1, n), c, k)))
        assert expectation == pytest.approx(1 - (1 - p) ** k, abs=1e-12), (n, p, k)


def test_plug_in_is_biased_where_estimator_is_not():
    # sanity check that the exact-expectation test has teeth: the plug-in estimate is biased
    n, k, p = 4, 3, 0.3
    c = np.arange(n + 1)
    pmf = np.array([math.comb(n, ci) * p**ci * (1 - p) ** (n - ci) for ci in c])
    plug_in = 1 - (1 - c / n) ** k
    assert abs(float(np.sum(pmf * plug_in)) - (1 - (1 - p) ** k)) > 1e-3


@pytest.mark.parametrize("n,k,p", [(8, 3, 0.2), (5, 5, 0.6), (16, 4, 0.05)])
def test_bok_value_unbiased_by_simulation(n, k, p):
    rng = np.random.default_rng(1234)
    draws = 200_000
    c = rng.binomial(n, p, size=draws)
    est = bok_value(np.full(draws, n), c, k)
    se = est.std(ddof=1) / math.sqrt(draws)
    assert abs(est.mean() - (1 - (1 - p) ** k)) < 4 * se + 1e-12


@pytest.mark.parametrize("n,c,k", [(1, 0, 4), (1, 1, 4), (3, 1, 5), (4, 3, 9), (2, 1, 3)])
def test_bok_value_k_above_n_uses_plug_in(n, c, k):
    assert bok(n, c, k) == pytest.approx(1 - (1 - c / n) ** k, abs=1e-15)


def test_bok_value_mixed_k_above_and_below_n():
    n, c, k = np.array([1, 2, 6, 10]), np.array([1, 1, 2, 3]), 3
    want = [1.0, 1 - 0.5**3, 1 - math.comb(4, 3) / math.comb(6, 3), 1 - math.comb(7, 3) / math.comb(10, 3)]
    np.testing.assert_allclose(bok_value(n, c, k), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n,c,k", [
    ([4], [2], 0), ([4], [2], -1), ([4], [5], 2), ([4], [-1], 2), ([0], [0], 1), ([3, 4], [1, 5], 2),
])
def test_bok_value_invalid_inputs_raise(n, c, k):
    with pytest.raises(ValueError):
        bok_value(np.array(n), np.array(c), k)


# --- make_labels ---------------------------------------------------------------------------------

def mc_table(rows, policy) -> pl.DataFrame:
    """rows: (problem_id, sample_id, h, n, c); shuffled on purpose to exercise sorting."""
    df = pl.DataFrame(rows, schema=["problem_id", "sample_id", "h", "n", "c"], orient="row")
    df = df.with_columns(split=pl.lit("train"), rollout_policy=pl.lit(policy), gen_tokens=pl.lit(0))
    return conform(df, MC).sample(fraction=1.0, shuffle=True, seed=3)


# base policy pi: q_pi = c / n
PI = [("p0", 0, 0, 4, 1), ("p0", 0, 1, 4, 2), ("p0", 0, 2, 1, 1),
      ("p0", 1, 0, 4, 3), ("p0", 1, 1, 4, 0), ("p0", 1, 2, 1, 0),
      ("p1", 0, 0, 4, 0), ("p1", 0, 1, 1, 1)]
# rollout policy rho with n = 6 (K = 4 <= n: unbiased estimator); terminal states n = 1 (plug-in)
RHO = [("p0", 0, 0, 6, 1), ("p0", 0, 1, 6, 2), ("p0", 0, 2, 1, 1),
       ("p0", 1, 0, 6, 3), ("p0", 1, 1, 6, 0), ("p0", 1, 2, 1, 0),
       ("p1", 0, 0, 6, 0), ("p1", 0, 1, 1, 1)]
# 1 - C(6-c, 4) / C(6, 4): c=0 -> 0, c=1 -> 2/3, c=2 -> 14/15, c=3 -> 1
EXPECTED = {  # (problem, sample, h) -> (q_pi, v_mu, a_mu)
    ("p0", 0, 0): (1 / 4, 2 / 3, None),
    ("p0", 0, 1): (2 / 4, 14 / 15, 14 / 15 - 2 / 3),
    ("p0", 0, 2): (1.0, 1.0, 1 - 14 / 15),
    ("p0", 1, 0): (3 / 4, 1.0, None),
    ("p0", 1, 1): (0.0, 0.0, -1.0),
    ("p0", 1, 2): (0.0, 0.0, 0.0),
    ("p1", 0, 0): (0.0, 0.0, None),
    ("p1", 0, 1): (1.0, 1.0, 1.0),
}


def test_make_labels_hand_built_pools():
    out = make_labels(mc_table(PI, "base"), mc_table(RHO, "base"), Prover("base", 4))
    assert out.columns == list(LABELS)
    assert conform(out, LABELS).equals(out.cast(LABELS))  # conforms to the LABELS schema
    assert out.height == len(EXPECTED)
    got = {(r["problem_id"], r["sample_id"], r["h"]): r for r in out.iter_rows(named=True)}
    assert set(got) == set(EXPECTED)
    for key, (q_pi, v_mu, a_mu) in EXPECTED.items():
        r = got[key]
        assert r["q_pi"] == pytest.approx(q_pi, abs=1e-12), key
        assert r["v_mu"] == pytest.approx(v_mu, abs=1e-12), key
        if a_mu is None:
            assert r["a_mu"] is None, key
        else:
            assert r["a_mu"] == pytest.approx(a_mu, abs=1e-12), key
        assert (r["prover"], r["rollout_policy"], r["k"], r["split"]) == ("base_k4", "base", 4, "train")


def test_make_labels_k1_same_pool_gives_v_mu_equal_q_pi():
    pool = mc_table(PI, "base")
    out = make_labels(pool, pool, Prover("base", 1))
    np.testing.assert_allclose(out["v_mu"].to_numpy(), out["q_pi"].to_numpy(), atol=1e-15)
    assert set(out["prover"]) == {str(Prover("base", 1))} == {"base_k1"}


@pytest.mark.parametrize("drop_from", ["pi", "rho"])
def test_make_labels_mismatched_pools_raise(drop_from):
    pi, rho = mc_table(PI, "base"), mc_table(RHO, "strong")
    drop = (pl.col("problem_id") == "p0") & (pl.col("sample_id") == 1) & (pl.col("h") == 1)
    if drop_from == "pi":
        pi = pi.filter(~drop)
    else:
        rho = rho.filter(~drop)
    with pytest.raises(ValueError, match="strong"):
        make_labels(pi, rho, Prover("strong", 4))


# --- properties ----------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

counts = st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))


@settings(max_examples=300, deadline=None)
@given(nc=counts, k=st.integers(1, 64))
def test_bok_value_properties(nc, k):
    n, c = nc
    v = bok(n, c, k)
    assert 0.0 <= v <= 1.0
    if k > 1 and (k <= n) == (k - 1 <= n):
        # a larger K never makes the prover weaker, within each estimator: DESIGN.md's switch from the
        # unbiased estimator (K <= n) to plug-in (K > n) is not monotone, e.g. n=2, c=1: 1.0 at K=2,
        # 0.875 at K=3
        assert v >= bok(n, c, k - 1) - 1e-12
    if c < n:
        assert bok(n, c + 1, k) >= v - 1e-12  # one more success never lowers the value
    assert (v == 0.0) == (c == 0)
    if k <= n:
        assert (v == 1.0) == (n - c < k)
        assert v == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)
    else:
        assert v == pytest.approx(1 - (1 - c / n) ** k, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(pools=st.lists(st.lists(counts, min_size=1, max_size=6), min_size=1, max_size=4), k=st.integers(1, 16))
def test_make_labels_progress_telescopes(pools, k):
    """Per seed, the progress a_mu of steps 1..H sums to v_mu(s_H) - v_mu(s_0), and q_pi = c / n."""
    rows = [("p", "train", i, "base", h, n, c, 0) for i, states in enumerate(pools) for h, (n, c) in enumerate(states)]
    pool = conform(pl.DataFrame(rows, schema=MC, orient="row"), MC)
    df = make_labels(pool, pool, Prover("base", k))
    assert df.height == len(rows)
    for i, states in enumerate(pools):
        seed = df.filter(pl.col("sample_id") == i).sort("h")
        v, a = seed["v_mu"].to_list(), seed["a_mu"].to_list()
        assert a[0] is None
        assert sum(a[1:]) == pytest.approx(v[-1] - v[0], abs=1e-9)
        assert seed["q_pi"].to_list() == pytest.approx([c / n for n, c in states])


def test_bok_of_value_is_the_formula_and_the_plug_in_of_bok_value():
    v = np.array([0.0, 0.25, 0.5, 1.0])
    assert np.allclose(bok_of_value(v, 2), [0.0, 0.4375, 0.75, 1.0])
    assert np.array_equal(bok_of_value(v, 1), v)
    # K > n: bok_value falls back to exactly this plug-in
    n, c = np.array([4, 4]), np.array([1, 3])
    assert np.allclose(bok_value(n, c, 9), bok_of_value(c / n, 9))
