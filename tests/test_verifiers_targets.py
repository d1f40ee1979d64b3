"""Training targets of orm, pqv and pav at the states of the seed responses."""
from __future__ import annotations

import polars as pl
import pytest

from pavflow.data import LABELS, MC, SAMPLES, conform
from pavflow.labels import make_labels
from pavflow.names import Prover
from pavflow.verifiers.targets import state_targets

KEY = ["problem_id", "split", "sample_id", "h"]


@pytest.fixture
def seeds():
    rows = [  # (problem, split, sample, n_steps, correct); deliberately unsorted
        ("train-00001", "train", 0, 3, 1),
        ("train-00000", "train", 1, 2, 0),
        ("train-00000", "train", 0, 4, 1),
        ("val-00000", "val", 0, 0, 0),  # empty response: its only state is s_0
    ]
    df = pl.DataFrame([{"problem_id": p, "split": s, "policy": "base", "sample_id": i, "response": "x",
                        "n_steps": n, "correct": c, "prompt_tokens": 5, "gen_tokens": 7}
                       for p, s, i, n, c in rows])
    return conform(df, SAMPLES, "seeds")


def pool(seeds: pl.DataFrame, rollout_policy: str, n_mc: int, c_of) -> pl.DataFrame:
    """An MC table on every state of every seed, c from c_of(problem, sample, h)."""
    rows = []
    for r in seeds.iter_rows(named=True):
        H = r["n_steps"]
        for h in range(max(1, H)):
            rows.append({**{k: r[k] for k in ("problem_id", "split", "sample_id")}, "h": h,
                         "rollout_policy": rollout_policy, "n": n_mc,
                         "c": c_of(r["problem_id"], r["sample_id"], h), "gen_tokens": 3})
        if H:
            rows.append({**{k: r[k] for k in ("problem_id", "split", "sample_id")}, "h": H,
                         "rollout_policy": rollout_policy, "n": 1, "c": r["correct"], "gen_tokens": 0})
    return conform(pl.DataFrame(rows), MC, "mc").sort("problem_id", "sample_id", "h")


def test_unknown_kind():
    with pytest.raises(ValueError, match="'prm'"):
        state_targets("prm", pl.DataFrame())


def test_orm_targets_the_outcome_at_the_last_state(seeds):
    t = state_targets("orm", seeds)
    assert t.columns == KEY + ["target"]
    assert t.height == seeds.height
    assert t.schema["h"] == pl.Int32 and t.schema["target"] == pl.Float64
    assert t.rows() == [
        ("train-00000", "train", 0, 4, 1.0), ("train-00000", "train", 1, 2, 0.0),
        ("train-00001", "train", 0, 3, 1.0), ("val-00000", "val", 0, 0, 0.0),
    ]


def test_pqv_targets_mc_success_rate(seeds):
    mc = pool(seeds, "base", 8, lambda p, s, h: (h + 3 * s + len(p)) % 9)
    t = state_targets("pqv", seeds, mc_pi=mc)
    assert t.columns == KEY + ["target"] and t.schema["h"] == pl.Int32
    assert t.height == mc.height
    assert t.select(KEY).rows() == mc.sort(KEY).select(KEY).rows()
    expected = mc.sort(KEY).with_columns(t=pl.col("c") / pl.col("n"))["t"]
    assert t["target"].to_list() == pytest.approx(expected.to_list())
    # terminal states carry the outcome (n = 1, c = correct)
    last = t.join(seeds.select("problem_id", "sample_id", h="n_steps", correct="correct"),
                  on=["problem_id", "sample_id", "h"])
    assert last.filter(pl.col("h") > 0).select((pl.col("target") == pl.col("correct")).all()).item()


def test_pav_targets_prover_value(seeds):
    c_of = lambda p, s, h: (2 * h + s) % 5  # noqa: E731
    mc = pool(seeds, "base", 4, c_of)
    labels = make_labels(mc, mc, Prover("base", 2))
    assert labels.columns == list(LABELS)
    t = state_targets("pav", seeds, labels=labels)
    assert t.columns == KEY + ["target"] and t.schema["h"] == pl.Int32
    assert t["target"].to_list() == pytest.approx(labels.sort(KEY)["v_mu"].to_list())
    # v_mu is the BoK(2) estimate from n = 4 with c correct: 1 - C(4-c, 2) / C(4, 2)
    from math import comb
    row = t.filter((pl.col("problem_id") == "train-00000") & (pl.col("sample_id") == 1) & (pl.col("h") == 1))
    assert row["target"].item() == pytest.approx(1 - comb(4 - c_of("train-00000", 1, 1), 2) / comb(4, 2))
    # labels given unsorted come out sorted by state
    shuffled = labels.sample(fraction=1.0, shuffle=True, seed=1)
    assert state_targets("pav", seeds, labels=shuffled).equals(t)
