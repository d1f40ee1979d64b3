import numpy as np
import polars as pl
import pytest

from pavflow.data import CURVES, DATA_SCALING, GAINS, PASS_AT, POOL, RL_ARMS, RL_METRICS
from pavflow.report.tables import (alpha_rows, analytic_minus_trained, at_alpha, best_verifiers, config_label,
                                   curve_labels, data_scaling, gains_vs_bon, headline_curves, metric_cells, parse_prover,
                                   pool_accuracy, prover_rows, rl_arms, rl_final, rl_seed_bands, rl_stopped,
                                   search_curves, success_histogram, success_rates)
from report_data import (N_MC, N_SEED, POOL_CORRECT, SCALING, equal_compute, metrics, pool,  # noqa: F401
                         quality_rows, quality_with_analytic, rl, row, search)


def test_search_curves(search):
    curves = search_curves(search)
    assert curves.schema == pl.Schema(CURVES)
    assert curves.height == 10
    r = row(curves, method="bon", budget=4)
    assert (r["acc"], r["gen_tokens"], r["verifier_tokens"], r["n_problems"]) == (0.5, 400.0, 800.0, 4)
    assert r["ci_low"] <= r["acc"] <= r["ci_high"]
    r = row(curves, method="beam", prover="base_k4", budget=4)
    assert (r["acc"], r["gen_tokens"], r["k"], r["alpha"]) == (0.75, 200.0, 4, 0.5)
    assert row(curves, method="beam", prover="big_k4")["acc"] == 1.0
    # Order of rows does not matter; repeated rows of one problem are averaged before the bootstrap.
    shuffled = search.sample(fraction=1.0, shuffle=True, seed=1)
    assert search_curves(shuffled).equals(curves)
    dup = pl.concat([search, search.filter(pl.col("problem_id") == "p0")])
    assert search_curves(dup).equals(curves)


def test_search_curves_splits(search):
    both = pl.concat([search, search.with_columns(split=pl.lit("val"))])
    with pytest.raises(ValueError, match="split"):
        search_curves(both)
    assert search_curves(both, split="test").equals(search_curves(search))
    assert search_curves(None).height == 0
    assert search_curves(search.clear()).schema == pl.Schema(CURVES)


def test_success_histogram(pool):
    rates = success_rates(pool.filter(pl.col("split") == "test"))
    assert rates["success_rate"].to_list() == [c / 10 for c in POOL_CORRECT]
    hist = success_histogram(rates)
    assert hist["count"].to_list() == [2, 1, 0, 1, 0, 2, 0, 1, 0, 3] + [2, 2]
    assert hist["bin"][0] == "[0.0, 0.1)" and hist["bin"][9] == "[0.9, 1.0]"
    assert hist["bin"][10].startswith("= 0") and hist["bin"][11].startswith("= 1")
    # Grouped per (policy, split).
    assert success_histogram(success_rates(pool)).height == 2 * 12
    assert success_histogram(success_rates(None)).height == 0


def test_pool_accuracy_and_pass_at_n(pool):
    acc, passes = pool_accuracy(success_rates(pool.filter(pl.col("split") == "test")))
    assert acc.schema == pl.Schema(POOL) and passes.schema == pl.Schema(PASS_AT)
    r = acc.row(0, named=True)
    assert (r["policy"], r["n_problems"], r["min_samples"], r["max_samples"], r["acc"]) == ("base", 10, 10, 10, 0.5)
    assert r["ci_low"] <= 0.5 <= r["ci_high"]
    assert passes["n"].to_list() == [2, 4, 8, 10]  # powers of 2 below the fewest samples, and that number
    assert passes["pass_at"][0] == pytest.approx(np.mean([1 - (10 - c) * (9 - c) / 90 for c in POOL_CORRECT]))
    assert passes["pass_at"][-1] == pytest.approx(0.8)  # pass@10 of 10 samples: problems solved at least once
    # a second policy with 3 samples per problem gets pass@2 only, the first keeps pass@4.. (its own n)
    few = pool.filter(pl.col("split") == "test", pl.col("sample_id") < 3).with_columns(policy=pl.lit("weak"))
    acc, passes = pool_accuracy(success_rates(pl.concat([pool.filter(pl.col("split") == "test"), few])))
    assert acc["policy"].to_list() == ["base", "weak"]
    assert passes.filter(pl.col("policy") == "weak")["n"].to_list() == [2]
    assert passes.filter(pl.col("policy") == "base")["n"].to_list() == [2, 4, 8, 10]
    assert pool_accuracy(success_rates(pool.filter(pl.col("sample_id") == 0)))[1].height == 0  # 1 sample: no pass@N


def test_rl_final(rl):
    final = rl_final(rl)
    assert final.height == 4 and set(final["update"]) == {3}


def test_rl_arms_seed_bands_and_stops(rl):
    arms = rl_arms(rl_final(rl))
    assert arms.schema == pl.Schema(RL_ARMS) and arms["arm"].to_list() == ["outcome", "pav"]
    pav = arms.row(1, named=True)
    assert pav["test_acc_sampled"] == pytest.approx(0.415) and pav["kl_ref"] == pytest.approx(0.3)
    # nan is missing: the mean is over the seeds that have the metric, null when none has it
    gone = rl.with_columns(newly_solved=pl.when(pl.col("seed") == 0).then(float("nan")).otherwise("newly_solved"),
                           kl_ref=pl.lit(float("nan")))
    arms = rl_arms(rl_final(gone))
    assert arms["newly_solved"][0] == pytest.approx(0.3) and arms["kl_ref"].to_list() == [None, None]
    bands = rl_seed_bands(rl)
    assert bands.height == 8 and set(bands["n_seeds"]) == {2}
    first = bands.filter(pl.col("arm") == "outcome", pl.col("update") == 1).row(0, named=True)
    assert (first["test_acc_sampled_min"], first["test_acc_sampled_max"]) == pytest.approx((0.32, 0.33))
    assert first["test_acc_sampled_mean"] == pytest.approx(0.325)
    assert {f"{m}_{s}" for m in RL_METRICS for s in ("mean", "min", "max")} <= set(bands.columns)
    assert rl_seed_bands(None) is None
    stopped = rl.with_columns(stop_reason=pl.when((pl.col("arm") == "pav") & (pl.col("update") == 2))
                              .then(pl.lit("kl")).otherwise(None))
    assert rl_stopped(stopped).rows() == [("pav", 0, 2, "kl"), ("pav", 1, 2, "kl")]
    assert rl_stopped(rl).height == 0


def test_parse_prover():
    assert parse_prover("base_k4") == ("base", 4)
    assert parse_prover("gemma_9b_k16") == ("gemma_9b", 16)
    assert parse_prover("oracle") == ("oracle", None)


def test_labels_and_prover_rows(search):
    curves = search_curves(search)
    labels = set(curve_labels(curves)["label"])
    assert {"bon/orm", "beam/pqv+pav/base_k4", "majority", "pass"} <= labels  # k and α do not vary: no k=, α=
    both = pl.concat([curves, curves.with_columns(alpha=pl.col("alpha") * 2)])
    assert "beam/pqv+pav/base_k4 α=1" in set(curve_labels(both)["label"])
    assert config_label({"method": "beam", "verifier": "pqv+pav", "prover": "base_k4", "alpha": 0.5}) == \
        "beam/pqv+pav/base_k4 α=0.5"
    assert config_label({"method": "beam", "verifier": "pqv", "prover": "", "alpha": 0.5}) == "beam/pqv"
    rows = prover_rows(curves, 4)
    assert sorted(zip(rows["policy"], rows["K"])) == [("base", 1), ("base", 4), ("base", 16), ("big", 4)]
    assert prover_rows(curves, 999).height == 0


def test_headline_curves_and_gains_vs_bon(search):
    curves = search_curves(search)
    sel = headline_curves(curves, "base_k4")
    assert sel["label"].unique(maintain_order=True).to_list() == ["bon/orm", "beam/pqv+pav/base_k4"]
    assert headline_curves(curves, "nope")["label"].unique().to_list() == ["bon/orm"]
    assert headline_curves(curves.filter(pl.col("method") == "pass"), "base_k4") is None
    assert headline_curves(None, "base_k4") is None
    gains = gains_vs_bon(sel)
    assert gains.schema == pl.Schema(GAINS) and gains.height == 1
    g = gains.row(0, named=True)
    assert (g["beam"], g["bon"], g["bon_budget"], g["bon_best_budget"]) == ("beam/pqv+pav/base_k4", "bon/orm", 4, 4)
    assert g["gain"] == pytest.approx(0.25)
    # beam reaches bon's best (50% at N=4, 400 tokens) at N=1 with 150 tokens
    assert (g["beam_tokens"], g["compute_efficiency"]) == (150.0, pytest.approx(400 / 150))
    # a beam curve that never reaches best-of-N's best, at budgets best-of-N did not run
    weak = sel.with_columns(acc=pl.when(pl.col("method") == "beam").then(0.0).otherwise("acc"),
                            budget=pl.when(pl.col("method") == "beam").then(pl.col("budget") + 1).otherwise("budget"))
    g = gains_vs_bon(weak).row(0, named=True)
    assert g["gain"] is None and g["compute_efficiency"] is None and g["beam_tokens"] is None


def test_at_alpha_keeps_other_configurations(search):
    curves = search_curves(pl.concat([search, search.filter(pl.col("method") == "beam").with_columns(alpha=2.0)]))
    kept = at_alpha(curves, 2.0)
    assert set(kept.filter(pl.col("method") == "beam")["alpha"]) == {2.0}
    assert kept.filter(pl.col("method") != "beam").height == curves.filter(pl.col("method") != "beam").height
    assert at_alpha(curves, None) is curves and at_alpha(None, 1.0) is None


def test_alpha_rows(equal_compute):
    curves = search_curves(equal_compute)
    a = alpha_rows(curves, "base_k4", 4)
    assert a["alpha"].to_list() == [0.0, 0.5, 2.0]
    assert a["acc"].to_list() == pytest.approx([0.5, 0.8, 0.75])  # alpha 0.5 includes p9
    assert alpha_rows(curves, "base_k4", 2)["alpha"].to_list() == [0.5]
    assert alpha_rows(None, "base_k4", 4).schema == pl.Schema(CURVES)


def test_metric_cells_best_verifiers_and_analytic(metrics):
    dup = pl.concat([metrics, metrics.head(1).with_columns(value=pl.lit(0.1))])
    cells = metric_cells(dup)
    assert list(cells) == [("orm", "auroc"), ("orm", "bon@16"), ("pav_base_k4", "auroc")]
    assert cells[("orm", "auroc")]["value"] == 0.71  # the first row wins
    q = quality_with_analytic()
    best = best_verifiers(q)
    # the oracle (MC labels) is a reference, never "best"; Brier: lower is better
    assert best["brier"]["subject"] == "pav_base_k4" and best["outcome_auroc"]["subject"] == "pav_analytic_k4"
    assert set(best) == {"brier", "outcome_auroc"}
    (a, trained, diffs), = analytic_minus_trained(q, "base")
    assert (a, trained) == ("pav_analytic_k4", "pav_base_k4")
    assert [m for m, _ in diffs] == ["brier", "outcome_auroc"]
    assert [d for _, d in diffs] == pytest.approx([0.03, 0.02])
    assert analytic_minus_trained(q, "weak") == []  # no trained pav_weak_k4


def test_rl_plateau_tells_a_rising_curve_from_a_flat_one():
    from pavflow.report.tables import rl_plateau
    from report_data import rl_curve
    rising = rl_curve({0: [0.1 * u for u in range(11)], 1: [0.1 * u + 0.02 for u in range(11)],
                     2: [0.09 * u for u in range(11)]})
    p = rl_plateau(rising)  # samples 0..1000: the last 20% run from 800 to 1000
    assert (p["from_samples"], p["to_samples"], p["n_seeds"]) == (800, 1000, 3)
    assert p["change"] == pytest.approx((0.2 + 0.2 + 0.18) / 3) and p["ci_low"] > 0
    flat = rl_curve({0: [0.5] * 8 + [0.52, 0.5, 0.51], 1: [0.5] * 8 + [0.5, 0.49, 0.50]})
    q = rl_plateau(flat)
    assert q["change"] == pytest.approx(-0.005) and q["ci_low"] < 0 < q["ci_high"]
    assert rl_plateau(rl_curve({0: [0.1, 0.2]})) is None  # no evaluation inside the last 20% but the last one
    assert rl_plateau(rising, arm="pav") is None and rl_plateau(None) is None


def test_data_scaling_places_the_full_data_verifier_at_n_seed_n_mc():
    t = data_scaling(quality_rows(), N_SEED, N_MC)
    assert t.schema == pl.Schema(DATA_SCALING)
    within = t.filter(pl.col("metric") == "outcome_auroc_within")
    # orm, pav_base_k4 and the oracle have no data variant: left out; the pqv is its own s2m4 point
    assert within.select("base", "verifier", "n_seed", "n_mc", "budget").rows() == [
        ("pav_base_k4.first_pit", "pav_base_k4.first_pit.s1m4", 1, 4, 4),
        ("pqv", "pqv.s1m2", 1, 2, 2), ("pqv", "pqv.s2m1", 2, 1, 2), ("pqv", "pqv.s1m4", 1, 4, 4),
        ("pqv", "pqv", 2, 4, 8)]
    full = row(within, verifier="pqv")
    assert (full["value"], full["ci_low"], full["ci_high"], full["label_rollouts"]) == (0.80, 0.70, 0.90, 4096.0)
    # one row per point and metric it has (the pqv's Brier row comes from the original fixture)
    brier = t.filter(pl.col("metric") == "brier")
    assert row(brier, verifier="pqv")["value"] == 0.15 and row(brier, verifier="pqv.s2m1")["value"] == SCALING["pqv.s2m1"][3]
    assert set(t["metric"]) == {"outcome_auroc_within", "brier", "outcome_auroc"}


def test_data_scaling_without_variants_or_rollout_counts():
    q = quality_rows()
    # rollouts.n_seed / n_mc unknown: the full-data points are left out, the variants stay
    assert "pqv" not in data_scaling(q, None, None)["verifier"].to_list()
    assert data_scaling(q.filter(~pl.col("subject").str.contains(r"\.s\d+m\d+$")), N_SEED, N_MC).height == 0
    assert data_scaling(None, N_SEED, N_MC).schema == pl.Schema(DATA_SCALING)
