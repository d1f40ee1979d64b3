import math

import numpy as np
import polars as pl
import pytest

from pavflow.search.bon import METHODS, aggregate_prm, bon_search

# (problem_id, sample_id, correct, gen_tokens, answer, score); prompt_len per problem below
POOL = [
    # score tie between samples 0 and 1 -> best_of_n takes sample 0; at N=2 the vote ties on count and
    # on total score -> the answer seen first ("5"); at N=4 the vote ties on count -> higher total ("5")
    ("p0", 0, 0, 10, "5", 0.9), ("p0", 1, 1, 20, "7", 0.9), ("p0", 2, 1, 30, "7", 0.2),
    ("p0", 3, 0, 40, "5", 0.95),
    # at N=4 the vote ties on count; the higher total score ("4") beats the answer seen first ("3")
    ("p1", 0, 0, 1, "3", 0.1), ("p1", 1, 1, 2, "4", 0.5), ("p1", 2, 0, 3, "3", 0.1),
    ("p1", 3, 1, 4, "4", 0.2),
    # empty answers (None and "") never win over a real one, however many and however well scored
    ("p2", 0, 0, 5, None, 0.9), ("p2", 1, 0, 5, "", 0.8), ("p2", 2, 0, 5, None, 0.7),
    ("p2", 3, 1, 5, "8", 0.1),
    # majority and weighted majority disagree at N=3; at N=3 weights tie 0.5 = 0.25 + 0.25 -> more votes
    ("p3", 0, 1, 7, "1", 0.9), ("p3", 1, 0, 7, "2", 0.3), ("p3", 2, 0, 7, "2", 0.3),
    ("p3", 3, 0, 7, "3", -math.inf),
    ("p4", 0, 0, 2, "1", 0.5), ("p4", 1, 1, 2, "2", 0.25), ("p4", 2, 1, 2, "2", 0.25),
    ("p4", 3, 0, 2, "9", 0.0),
]
PROMPT_LEN = {"p0": 6, "p1": 3, "p2": 4, "p3": 5, "p4": 1}

# (problem, budget) -> bon, majority, weighted_majority, pass
EXPECTED = {
    ("p0", 1): (0, 0, 0, 0), ("p0", 2): (0, 0, 0, 1), ("p0", 3): (0, 1, 1, 1), ("p0", 4): (0, 0, 0, 1),
    ("p1", 1): (0, 0, 0, 0), ("p1", 2): (1, 1, 1, 1), ("p1", 3): (1, 0, 1, 1), ("p1", 4): (1, 1, 1, 1),
    ("p2", 1): (0, 0, 0, 0), ("p2", 2): (0, 0, 0, 0), ("p2", 3): (0, 0, 0, 0), ("p2", 4): (0, 1, 1, 1),
    ("p3", 1): (1, 1, 1, 1), ("p3", 2): (1, 1, 1, 1), ("p3", 3): (1, 0, 1, 1), ("p3", 4): (1, 0, 1, 1),
    ("p4", 1): (0, 0, 0, 0), ("p4", 2): (0, 0, 0, 1), ("p4", 3): (0, 1, 1, 1), ("p4", 4): (0, 1, 1, 1),
}


def make_pool(rows=POOL, shuffle_seed=None) -> pl.DataFrame:
    cols = ["problem_id", "sample_id", "correct", "gen_tokens", "answer", "score"]
    df = pl.DataFrame(rows, schema=cols, orient="row")
    df = df.with_columns(prompt_len=pl.col("problem_id").replace_strict(PROMPT_LEN))
    if shuffle_seed is not None:
        df = df.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
    return df


def as_dict(out: pl.DataFrame) -> dict:
    return {(r["problem_id"], r["method"], r["budget"]): r for r in out.iter_rows(named=True)}


@pytest.mark.parametrize("shuffle_seed", [None, 0, 1])
def test_methods_pick_what_they_should(shuffle_seed):
    out = bon_search(make_pool(shuffle_seed=shuffle_seed), [1, 2, 3, 4])
    assert out.columns == ["problem_id", "method", "budget", "correct", "gen_tokens", "prompt_tokens"]
    assert out.height == 5 * 4 * len(METHODS)
    got = as_dict(out)
    for (pid, n), expected in EXPECTED.items():
        for method, want in zip(METHODS, expected):
            assert got[(pid, method, n)]["correct"] == want, (pid, method, n)


def test_token_sums_use_first_n_samples():
    pool = make_pool(shuffle_seed=3)
    got = as_dict(bon_search(pool, [1, 3, 4]))
    for pid, plen in PROMPT_LEN.items():
        gens = [r[3] for r in POOL if r[0] == pid]  # in sample_id order
        for n in (1, 3, 4):
            for method in METHODS:
                row = got[(pid, method, n)]
                assert row["gen_tokens"] == sum(gens[:n])
                assert row["prompt_tokens"] == n * plen


def test_budgets_are_nested_prefixes_of_the_pool():
    # Extra samples beyond the budget must not change the result at that budget.
    pool = make_pool()
    extra = pl.DataFrame([("p0", 4, 1, 99, "7", 5.0), ("p0", 5, 1, 99, "7", 5.0)],
                         schema=["problem_id", "sample_id", "correct", "gen_tokens", "answer", "score"],
                         orient="row").with_columns(prompt_len=pl.lit(6))
    bigger = pl.concat([pool, extra.select(pool.columns)], how="vertical_relaxed")
    a = bon_search(pool, [2, 4]).filter(pl.col("problem_id") == "p0")
    b = bon_search(bigger, [2, 4]).filter(pl.col("problem_id") == "p0")
    assert a.equals(b)
    c = as_dict(bon_search(bigger.filter(pl.col("problem_id") == "p0"), [6]))
    assert c[("p0", "bon", 6)]["correct"] == 1  # sample 4 scores 5.0
    assert c[("p0", "majority", 6)]["correct"] == 1  # "7" x4 vs "5" x2
    assert c[("p0", "bon", 6)]["gen_tokens"] == 100 + 2 * 99


def test_bad_pools_are_refused():
    pool = make_pool()
    with pytest.raises(ValueError, match="budget 5"):
        bon_search(pool, [5])
    with pytest.raises(ValueError, match="missing columns"):
        bon_search(pool.drop("answer"), [1])
    with pytest.raises(ValueError, match="lacks samples"):
        bon_search(pool.filter(pl.col("sample_id") != 0), [1])
    with pytest.raises(ValueError, match="duplicate"):
        bon_search(pl.concat([pool, pool.head(1)]), [1])
    with pytest.raises(ValueError, match="NaN"):
        bon_search(pool.with_columns(score=pl.lit(float("nan"))), [1])


def test_aggregate_prm():
    v = np.array([0.5, 0.2, 0.8])
    assert aggregate_prm(v, "last") == pytest.approx(0.8)
    assert aggregate_prm(v, "min") == pytest.approx(0.2)
    assert aggregate_prm(v, "prod") == pytest.approx(0.08)
    assert aggregate_prm(v, "mean") == pytest.approx(0.5)
    assert aggregate_prm([0.3], "prod") == pytest.approx(0.3)
    for how in ("last", "min", "prod", "mean"):
        assert aggregate_prm(np.array([]), how) == -math.inf
    with pytest.raises(ValueError, match="unknown how"):
        aggregate_prm(v, "max")
