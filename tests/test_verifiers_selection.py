"""Label variants: hard targets and prefix selection (all, random, first_pit) with rollout cost."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pavflow.data import MC, conform
from pavflow.labels import make_labels
from pavflow.names import Prover
from pavflow.verifiers.selection import first_pit_probes, hard_targets, select_states
from pavflow.verifiers.targets import state_targets

KEY = ["problem_id", "split", "sample_id", "h"]
RESPONSE = ["problem_id", "split", "sample_id"]


def make_pool(responses: dict[tuple[str, int], list[int]], n_mc: int = 4) -> pl.DataFrame:
    """An MC table: responses[(problem, sample)] = c at h = 0..H; h < H sampled with n_mc rollouts,
    the terminal h = H (H >= 1) graded with n = 1 (its c must be 0/1). A single entry is an empty
    response: only s_0, sampled."""
    rows = []
    for (pid, sid), cs in responses.items():
        H = len(cs) - 1
        for h, c in enumerate(cs):
            terminal = h == H and H >= 1
            rows.append((pid, "train", sid, "base", h, 1 if terminal else n_mc, c, 0 if terminal else 9))
    return conform(pl.DataFrame(rows, schema=MC, orient="row"), MC)


def test_selection_module_is_numpy_polars_only():
    code = "import sys; import pavflow.verifiers.selection; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={"PYTHONPATH": str(Path(__file__).parents[1] / "src")})


# --- hard targets --------------------------------------------------------------------------------

POOL = make_pool({("p0", 0): [2, 1, 0, 0], ("p0", 1): [4, 3, 1], ("p1", 0): [0, 1], ("p2", 0): [0]})


def test_hard_targets_hand_computed():
    soft = state_targets("pqv", None, mc_pi=POOL).reverse().with_columns(extra=pl.lit("x"))
    hard = hard_targets(soft, POOL)
    assert hard.columns == soft.columns and hard.schema == soft.schema
    assert hard.select(KEY).rows() == soft.select(KEY).rows()  # row order kept
    want = {("p0", 0, 0): 1.0, ("p0", 0, 1): 1.0, ("p0", 0, 2): 0.0, ("p0", 0, 3): 0.0,
            ("p0", 1, 0): 1.0, ("p0", 1, 1): 1.0, ("p0", 1, 2): 1.0,
            ("p1", 0, 0): 0.0, ("p1", 0, 1): 1.0, ("p2", 0, 0): 0.0}
    assert {(p, i, h): t for p, _, i, h, t, _ in hard.rows()} == want
    # soft targets were c/n: 0.5, 0.25, ... ; only the c > 0 indicator survives
    assert soft.filter(pl.col("problem_id") == "p0", pl.col("sample_id") == 0, pl.col("h") == 1)["target"].item() == 0.25


@pytest.mark.parametrize("k", [1, 2, 4, 9])
def test_hard_targets_of_pav_are_the_bok_support(k):
    labels = make_labels(POOL, POOL, Prover("base", k))
    soft = state_targets("pav", None, labels=labels)
    hard = hard_targets(soft, POOL)
    assert hard["target"].to_list() == (soft["target"] > 0).cast(pl.Float64).to_list()


def test_hard_targets_missing_states_are_named():
    soft = state_targets("pqv", None, mc_pi=POOL)
    pool = POOL.filter(~((pl.col("problem_id") == "p0") & (pl.col("sample_id") == 1) & (pl.col("h") == 2)))
    with pytest.raises(ValueError, match=r"1 target states: p0/train/sample 1/h=2"):
        hard_targets(soft, pool)


# --- first_pit_probes ----------------------------------------------------------------------------

@pytest.mark.parametrize("values, pit, probed", [
    ([0.5, 0.25, 0.0, 0.0, 0.0], 2, [2, 1]),
    ([1.0, 0.5, 0.5, 0.25, 0.5], None, [2, 4]),
    ([0.0], 0, [0]),
    ([0.3], None, [0]),
    ([0.0, 0.0, 0.0, 0.0], 0, [2, 1, 0]),
    ([0.2, 0.0], 1, [1, 0]),
])
def test_first_pit_probes_hand_cases(values, pit, probed):
    assert first_pit_probes(values) == (pit, probed)


def test_first_pit_probes_rejects_empty():
    with pytest.raises(ValueError, match="no states"):
        first_pit_probes([])


def bound(H: int) -> int:
    """Worst-case probes over h = 0..H: floor(log2(H + 1)) + 1."""
    return (H + 1).bit_length()


@settings(max_examples=400, deadline=None)
@given(data=st.data(), length=st.integers(1, 64))
def test_first_pit_probes_finds_planted_pit(data, length):
    pit = data.draw(st.none() | st.integers(0, length - 1), label="pit")
    stop = length if pit is None else pit
    pos = data.draw(st.lists(st.floats(1e-6, 1.0), min_size=stop, max_size=stop), label="positive")
    values = pos + [0.0] * (length - stop)
    found, probed = first_pit_probes(values)
    H = length - 1
    assert found == pit
    assert len(probed) == len(set(probed)) and all(0 <= h <= H for h in probed)
    assert len(probed) <= bound(H) == math.floor(math.log2(H + 1)) + 1
    assert len(probed) <= math.ceil(math.log2(H + 1)) + 1
    if pit is not None:  # the pit and (if any) its predecessor were read
        assert pit in probed and (pit == 0 or pit - 1 in probed)
    if pit == 0:  # the worst case: every probe takes the left half
        assert len(probed) == bound(H)


@pytest.mark.parametrize("H", [0, 1, 2, 3, 7, 8, 63, 64, 1000])
def test_first_pit_probes_bound_is_attained(H):
    assert len(first_pit_probes([0.0] * (H + 1))[1]) == bound(H)
    worst = max(len(first_pit_probes([1.0] * p + [0.0] * (H + 1 - p))[1]) for p in range(H + 2))
    assert worst == bound(H)


# --- select_states -------------------------------------------------------------------------------

def nonterminal_n(pool: pl.DataFrame) -> pl.DataFrame:
    """Per response: states and the sum of n over non-terminal states."""
    return pool.with_columns(H=pl.col("h").max().over(RESPONSE)).group_by(RESPONSE).agg(
        states=pl.len(), rollouts=pl.when((pl.col("h") == pl.col("H")) & (pl.col("H") >= 1))
        .then(0).otherwise(pl.col("n")).sum()).sort(RESPONSE)


def test_all_returns_every_state_at_full_cost():
    sel, cost = select_states(POOL.sample(fraction=1.0, shuffle=True, seed=0), "all")
    assert sel.columns == POOL.columns + ["inferred"]
    assert sel.drop("inferred").equals(POOL.sort(KEY)) and not sel["inferred"].any()
    ref = nonterminal_n(POOL)
    assert cost.columns == RESPONSE + ["probes", "rollouts"]
    assert cost.sort(RESPONSE).rows() == ref.rows()
    # by hand: p0/0 has H = 3: 3 sampled states x 4; p0/1: 2 x 4; p1/0: 1 x 4; p2/0 (empty): s_0 sampled
    assert dict(zip(cost["problem_id"] + "/" + cost["sample_id"].cast(str), cost["rollouts"])) == {
        "p0/0": 12, "p0/1": 8, "p1/0": 4, "p2/0": 4}


def long_pool(n_resp: int = 30, seed: int = 0) -> pl.DataFrame:
    """Responses of 1..40 steps with monotone-ish MC counts: positive up to a random pit, then 0."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_resp):
        H = int(rng.integers(0, 41))
        pit = int(rng.integers(0, H + 2))  # H + 1: no pit
        cs = [int(rng.integers(1, 9)) if h < pit else 0 for h in range(H + 1)]
        if H >= 1:
            cs[H] = int(pit > H)
        out[(f"q{i % 7}", i)] = cs
    return make_pool(out, n_mc=8)


@pytest.mark.parametrize("m", [1, 3, 10])
def test_random_selects_m_per_response_deterministically(m):
    pool = long_pool()
    sel, cost = select_states(pool, "random", m=m, seed=5)
    sizes = nonterminal_n(pool)
    got = sel.group_by(RESPONSE).len().sort(RESPONSE)
    assert got["len"].to_list() == [min(m, s) for s in sizes["states"]]
    assert not sel["inferred"].any() and sel.select(KEY).is_unique().all()
    assert cost.sort(RESPONSE)["probes"].to_list() == got["len"].to_list()
    # cost: n of the selected non-terminal states
    H = pool.group_by(RESPONSE).agg(H=pl.col("h").max())
    paid = sel.join(H, on=RESPONSE).with_columns(
        r=pl.when((pl.col("h") == pl.col("H")) & (pl.col("H") >= 1)).then(0).otherwise(pl.col("n")))
    assert cost["rollouts"].sum() == paid["r"].sum()
    # deterministic, independent of row order, and seed-dependent
    again, cost2 = select_states(pool.sample(fraction=1.0, shuffle=True, seed=9), "random", m=m, seed=5)
    assert again.equals(sel) and cost2.sort(RESPONSE).equals(cost.sort(RESPONSE))
    other, _ = select_states(pool, "random", m=m, seed=6)
    if m < sizes["states"].max():
        assert not other.equals(sel)
    # a response's draw does not depend on the other responses
    one = pool.filter(pl.col("sample_id") == 3)
    assert select_states(one, "random", m=m, seed=5)[0].equals(sel.filter(pl.col("sample_id") == 3))


def test_random_covers_states_uniformly():
    pool = make_pool({("p", i): [1] * 5 + [0] for i in range(2000)})  # H = 5: 6 states
    sel, _ = select_states(pool, "random", m=2, seed=0)
    freq = sel.group_by("h").len().sort("h")["len"].to_numpy() / 2000
    np.testing.assert_allclose(freq, 2 / 6, atol=0.04)


def test_first_pit_hand_case():
    pool = make_pool({("a", 0): [3, 2, 1, 0, 2, 0, 0, 0], ("b", 0): [4, 4, 1]}, n_mc=4)
    sel, cost = select_states(pool, "first_pit")
    # a: H = 7, lo=0 hi=8: probe 4 (c=2 > 0) -> lo=5; probe 6 (0) -> hi=6; probe 5 (0) -> hi=5: pit 5
    # the observed c=2 at h=4 sits before the pit (values not monotone): kept as observed
    a = sel.filter(pl.col("problem_id") == "a")
    assert a.select("h", "c", "inferred").rows() == [(4, 2, False), (5, 0, False), (6, 0, False), (7, 0, True)]
    # b: H = 2, probe 1 (4 > 0) -> lo=2; probe 2 (terminal, correct) -> no pit
    b = sel.filter(pl.col("problem_id") == "b")
    assert b.select("h", "c", "inferred").rows() == [(1, 4, False), (2, 1, False)]
    assert cost.sort(RESPONSE).select("problem_id", "probes", "rollouts").rows() == [("a", 3, 12), ("b", 2, 4)]


def test_first_pit_inferred_rows_carry_zero_without_cost():
    pool = make_pool({("a", 0): [3, 0, 2, 1, 0, 1]}, n_mc=4)  # not monotone: h=2..3 recover, h=5 correct
    sel, cost = select_states(pool, "first_pit")
    # lo=0 hi=6: probe 3 (1) -> lo=4; probe 5 (terminal, 1) -> lo=6: no pit
    assert sel.select("h", "c", "inferred").rows() == [(3, 1, False), (5, 1, False)]
    assert cost.select("probes", "rollouts").row(0) == (2, 4)  # the terminal probe is free
    pool = make_pool({("a", 0): [3, 2, 2, 0, 1, 0, 1, 0]}, n_mc=4)
    sel, _ = select_states(pool, "first_pit")
    # probe 4 (1) -> lo=5; probe 6 (1) -> lo=7; probe 7 (0) -> pit 7, nothing after it
    assert sel.select("h", "c", "inferred").rows() == [(4, 1, False), (6, 1, False), (7, 0, False)]
    pool = make_pool({("a", 0): [3, 0, 2, 1, 0, 1, 1, 0]}, n_mc=4)
    sel, _ = select_states(pool, "first_pit")
    # probe 4 (0) -> hi=4; probe 2 (2) -> lo=3; probe 3 (1) -> lo=4: pit 4; h=5, 6 had c=1, inferred 0
    assert sel.select("h", "n", "c", "inferred").rows() == [
        (2, 4, 2, False), (3, 4, 1, False), (4, 4, 0, False), (5, 4, 0, True), (6, 4, 0, True), (7, 1, 0, True)]


def test_first_pit_cost_is_its_probes_and_below_all():
    pool = long_pool(n_resp=40, seed=3)
    sel, cost = select_states(pool, "first_pit")
    _, cost_all = select_states(pool, "all")
    cost, cost_all = cost.sort(RESPONSE), cost_all.sort(RESPONSE)
    for r in pool.partition_by(RESPONSE):
        r = r.sort("h")
        H = r.height - 1
        pit, probed = first_pit_probes(r["c"].to_list())
        key = r.row(0, named=True)
        got = cost.filter(pl.col("problem_id") == key["problem_id"], pl.col("sample_id") == key["sample_id"])
        n = r["n"].to_list()
        assert got["probes"].item() == len(probed) <= bound(H)
        assert got["rollouts"].item() == sum(0 if (h == H and H >= 1) else n[h] for h in probed)
        mine = sel.filter(pl.col("problem_id") == key["problem_id"], pl.col("sample_id") == key["sample_id"])
        after = [] if pit is None else [h for h in range(pit + 1, H + 1) if h not in probed]
        assert sorted(mine["h"]) == sorted(probed + after)
        assert mine.filter("inferred")["h"].to_list() == after
        assert (mine.filter("inferred")["c"] == 0).all()
    long = cost_all["rollouts"] >= 8 * 16  # responses of 17+ steps
    assert long.sum() >= 5
    assert (cost["rollouts"].filter(long) < cost_all["rollouts"].filter(long)).all()
    assert cost["rollouts"].sum() < cost_all["rollouts"].sum() / 2


@pytest.mark.parametrize("how, m, match", [
    ("some", None, "how='some'"), ("First_pit", 1, "how='First_pit'"),
    ("random", None, "m=None"), ("random", 0, "m=0"), ("random", -2, "m=-2"), ("random", 2.5, "m=2.5"),
    ("random", True, "m=True"), ("all", 0, "m=0"), ("first_pit", "3", "m='3'"),
])
def test_select_states_validates(how, m, match):
    with pytest.raises(ValueError, match=match):
        select_states(POOL, how, m=m)
    assert select_states(POOL, "random", m=np.int64(2))[0].height == 7  # numpy integers are fine


def test_select_states_rejects_gaps_and_duplicates():
    gap = POOL.filter(~((pl.col("problem_id") == "p0") & (pl.col("sample_id") == 0) & (pl.col("h") == 1)))
    with pytest.raises(ValueError, match="gap at p0/train/sample 0/h=2"):
        select_states(gap, "all")
    with pytest.raises(ValueError, match="duplicate states: p1/train/sample 0/h=1"):
        select_states(pl.concat([POOL, POOL.filter(pl.col("problem_id") == "p1", pl.col("h") == 1)]), "all")
