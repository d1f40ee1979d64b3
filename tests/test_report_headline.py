import json
import math

import numpy as np
import polars as pl
import pytest

from pavflow.data import HEADLINE, METRICS, PAIRED, RL_CURVE, SAMPLES, SEARCH, conform
from pavflow.report.claims import PROVER
from pavflow.report.headline import BestProver, Comparison, Headline, headline
from pavflow.report.tables import StudyTables, search_curves
from report_data import (EQUAL_CHOICE, N_MC, N_SEED, POOL_CORRECT, rl_finals, equal_compute, equal_compute_val, metrics, pool,  # noqa: F401
                         quality, quality_with_analytic, rl, search, search_rows)


def test_headline_numbers(search, pool, rl, metrics, quality):
    study = StudyTables("toy", pool=pool, curves=search_curves(search), rl=rl, verifier_metrics=metrics,
                        quality=quality, prover="base_k4", k_budget=4)
    head = headline(study).as_dict()
    assert head["search/bon/orm/acc@4"] == 0.5 and head["search/beam/pqv+pav/base_k4/acc@4"] == 0.75
    assert head["search/beam/pqv+pav/base_k4/acc_gain_vs_bon/orm@4"] == pytest.approx(0.25)
    # Beam reaches bon's N=4 accuracy (50%) at N=1 with 150 tokens vs 400.
    assert head["search/beam/pqv+pav/base_k4/compute_efficiency_vs_bon/orm"] == pytest.approx(400 / 150)
    # Base policy on the test split only (val problems always solved are excluded).
    assert head["pool/base/acc"] == 0.5
    assert head["pool/base/pass@2"] == pytest.approx(np.mean(
        [1 - (10 - c) * (9 - c) / 90 if c < 9 else 1.0 for c in POOL_CORRECT]))
    assert head["pool/base/never_solved"] == 2 and head["pool/base/always_solved"] == 2
    assert head["rl/pav/final_acc_sampled"] == pytest.approx(0.415)
    assert head["rl/pav/final_acc_greedy"] == pytest.approx(0.465)
    # outcome ends at 36.5%; pav's seed mean passes it halfway between 0 and 256 samples: 768 / 128
    assert head["rl/sample_efficiency"] == pytest.approx(6.0)
    assert head["rl/sample_efficiency_ci_low"] <= 6.0 <= head["rl/sample_efficiency_ci_high"]
    assert all(isinstance(v, (int, float, str)) for v in head.values())
    assert head["prover_k/beam/pqv+pav/big_k4/acc@4"] == 1.0
    assert head["verifier/orm/bon@16"] == 0.40 and "verifier/pav_base_k4/bon@16" not in head
    assert head["quality/pqv/brier"] == 0.15 and head["quality/best/brier"] == "pav_base_k4"
    # no search or val table: no comparisons at equal compute, no claims
    assert not any(k.startswith(("headline/", "paired/", "beam_scorers/")) for k in head)
    json.dumps(head)  # headline.json


def test_headline_missing():
    assert headline(StudyTables("empty", prover="base_k4", k_budget=4)).as_dict() == {"experiment": "empty"}
    h = headline(StudyTables("empty", curves=search_curves(None), pool=pl.DataFrame(schema=SAMPLES),
                             rl=pl.DataFrame(schema=RL_CURVE), verifier_metrics=pl.DataFrame(schema=METRICS),
                             quality=pl.DataFrame(schema=METRICS), prover="base_k4", k_budget=4))
    assert h.as_dict() == {"experiment": "empty"}
    assert (h.pool, h.search, h.prover_k, h.comparison, h.rl_final, h.quality) == (None,) * 6


def test_headline_quality_names_the_best():
    head = headline(StudyTables("q", quality=quality_with_analytic(), prover="base_k4", k_budget=4)).as_dict()
    # the oracle (MC labels) is a reference, never "best"
    assert head["quality/best/brier"] == "pav_base_k4" and head["quality/best/outcome_auroc"] == "pav_analytic_k4"
    assert head["quality/pav_base_k4/label_rollouts"] == 4096.0 and head["quality/oracle/brier"] == 0.01


def test_headline_data_scaling(quality):
    h = headline(StudyTables("q", quality=quality, prover="base_k4", k_budget=4, n_seed=N_SEED, n_mc=N_MC))
    assert h.data_scaling["verifier"].unique().len() == 5
    head = h.as_dict()
    # the full-data pqv under its own point, s<rollouts.n_seed>m<rollouts.n_mc>
    assert head["data_scaling/pqv/s2m4/outcome_auroc_within"] == 0.80
    assert (head["data_scaling/pqv/s2m4/outcome_auroc_within_ci_low"],
            head["data_scaling/pqv/s2m4/outcome_auroc_within_ci_high"]) == (0.70, 0.90)
    assert head["data_scaling/pqv/s1m2/brier"] == 0.25 and head["data_scaling/pqv/s2m1/brier"] == 0.22
    assert head["data_scaling/pav_base_k4.first_pit/s1m4/outcome_auroc_within"] == 0.75
    assert "data_scaling/pqv/s2m4/outcome_auroc_ci_low" not in head  # no CI: no key
    assert not any(k.startswith(("data_scaling/orm/", "data_scaling/pav_base_k4/", "data_scaling/oracle")) for k in head)
    no_variants = quality.filter(~pl.col("subject").str.contains(".s", literal=True))
    assert headline(StudyTables("q", quality=no_variants, n_seed=N_SEED, n_mc=N_MC)).data_scaling is None


def test_headline_at_equal_compute(equal_compute):
    study = StudyTables("toy", curves=search_curves(equal_compute), search=equal_compute,
                        val=equal_compute_val(equal_compute), choice=EQUAL_CHOICE, prover="base_k4", k_budget=4,
                        alpha=2.0)
    h = headline(study)
    head = h.as_dict()
    # beam at N=4 is never reached by best-of-N: the CI's upper end is unbounded
    assert math.isinf(head["headline/compute_efficiency_ci_high@4"])
    assert head["headline/beam"] == "beam/pqv+pav/base_k4 α=0.5"
    assert head["headline/gain_at_equal_tokens@4"] == pytest.approx(0.5)
    assert head["headline/compute_efficiency_bound@4"] == ">"
    assert head["headline/val_choice/prover"] == "base_k4" and head["headline/val_choice/alpha"] == 0.5
    assert head["headline/alpha/0/acc"] == 0.5 and head["headline/alpha/2/acc"] == 0.75
    # the configured alpha (2.0) differs from the val choice: its comparison is kept for reference
    assert "configured/gain_same_n@4" in head and head["configured/beam"] == "beam/pqv+pav/base_k4 α=2"
    # structured: the comparison is a HEADLINE table and PAIRED rows, not keys
    assert isinstance(h.comparison, Comparison) and h.comparison.rows.schema == pl.Schema(HEADLINE)
    assert h.comparison.paired.schema == pl.Schema(PAIRED)
    assert set(h.comparison.paired["baseline"]) == {"bon/orm", "beam/pqv", "beam/pqv+pav/base_k4 α=2"}
    assert head["paired/beam/pqv@4/diff"] == pytest.approx(0.5)
    assert h.comparison.rows["budget"].to_list() == [2, 4]
    assert head["headline/gain_at_equal_tokens@2"] == pytest.approx(h.comparison.rows["gain_at_equal_tokens"][0])
    assert h.val_curves is not None and h.best_prover is None  # one prover K: no sweep
    assert set(h.scorers["label"]) == {"beam/pqv+pav/base_k4 α=0.5", "beam/pqv+pav/base_k4 α=2", "beam/pqv"}
    assert head["beam_scorers/beam/pqv/acc@4"] == 0.5
    # judged against the strongest baseline as cheap: best-of-N at N=2 (200 tokens, 50%) for beam's N=4 (200)
    assert head["headline/strongest_baseline/generated/baseline@4"] == "bon/orm"
    assert head["headline/strongest_baseline/generated/baseline_budget@4"] == 2
    assert head["headline/strongest_baseline/generated/diff@4"] == pytest.approx(0.5)
    assert head["headline/strongest_baseline/generated_plus_verifier/baseline_budget@2"] == 1
    # sized for +-4 points? from that comparison's CI on its 4 problems
    lo, hi = head["headline/strongest_baseline/generated/ci_low@4"], head["headline/strongest_baseline/generated/ci_high@4"]
    assert (head["power/search/n"], head["power/search/half_width"]) == (4, pytest.approx((hi - lo) / 2))
    assert head["power/search/n_needed"] == math.ceil(4 * ((hi - lo) / 2 / 0.04) ** 2) > 4


def test_headline_without_a_choice_compares_the_configured_beam(equal_compute):
    h = headline(StudyTables("toy", curves=search_curves(equal_compute), search=equal_compute, prover="base_k4",
                             k_budget=4, alpha=0.5))
    assert h.configured is None and h.val_choice is None
    assert h.comparison.beam == {"method": "beam", "verifier": "pqv+pav", "prover": "base_k4", "alpha": 0.5}
    chose_pqv = {**EQUAL_CHOICE, "prover": "", "alpha": 0.0, "verifier": "pqv"}
    h = headline(StudyTables("toy", curves=search_curves(equal_compute), search=equal_compute,
                             val=equal_compute_val(equal_compute), choice=chose_pqv, prover="base_k4", k_budget=4,
                             alpha=0.5))
    assert h.comparison.beam == {"method": "beam", "verifier": "pqv", "prover": "", "alpha": None}
    assert h.as_dict()["headline/val_choice/prover"] == "none (pqv alone)"
    assert h.configured.beam["verifier"] == "pqv+pav" and h.configured.paired is None


def _sweep() -> pl.DataFrame:
    rows = (search_rows("bon", "orm", "", 0, 0.0, 4, [1, 1, 0, 0], [400] * 4)
            + search_rows("beam", "pqv+pav", "base_k1", 1, 1.0, 4, [0, 0, 0, 0], [150] * 4)
            + search_rows("beam", "pqv+pav", "base_k4", 4, 1.0, 4, [1, 1, 1, 1], [150] * 4)
            + search_rows("beam", "pqv+pav", "base_k16", 16, 1.0, 4, [0, 1, 0, 0], [150] * 4))
    return conform(pl.DataFrame(rows, infer_schema_length=None), SEARCH, "search")


def test_headline_best_prover():
    sweep = _sweep()
    h = headline(StudyTables("sw", curves=search_curves(sweep), search=sweep, prover="base_k4", k_budget=4, alpha=1.0))
    b = h.best_prover
    assert isinstance(b, BestProver) and (b.policy, b.budget, b.best["K"]) == ("base", 4, 4)
    assert sorted(b.minus) == [1, 16]
    assert b.minus[1]["diff"] == 1.0 and b.minus[16]["diff"] == 0.75
    head = h.as_dict()
    assert head["headline/best_prover_k"] == 4 and head["headline/best_k_minus_k16"] == 0.75
    assert head["headline/best_k_minus_k1_ci_low"] == 1.0
    assert b.ks == (1, 4, 16)
    # best at the largest K: compared with the smallest and with the best interior K (the verdict's)
    k4_miss = (pl.col("prover") == "base_k4") & (pl.col("problem_id") == "p3")
    strong = sweep.with_columns(correct=pl.when(pl.col("prover") == "base_k16").then(1).when(k4_miss).then(0)
                                .otherwise("correct").cast(pl.Int8))
    h = headline(StudyTables("sw", curves=search_curves(strong), search=strong, prover="base_k4", k_budget=4,
                             alpha=1.0))
    assert h.best_prover.best["K"] == 16 and list(h.best_prover.minus) == [1, 4]


def test_as_dict_converts_numpy_floats():
    h = Headline("x", rl_efficiency={"sample_efficiency": np.float64(2.0), "ci_low": 1.0, "ci_high": np.inf,
                                     "target_acc": 0.5})
    head = h.as_dict()
    assert type(head["rl/sample_efficiency"]) is float and head["rl/sample_efficiency_ci_high"] == math.inf


def test_headline_keys_only_for_measured_gains(equal_compute):
    """Beam at N=2 spends fewer tokens than best-of-N ever does (no matched gain), and beam at N=8 has no
    best-of-N at the same N: no gain key there, but compute efficiency and accuracy keys at every N."""
    fewer = pl.col("method") == "beam"
    search = pl.concat([
        equal_compute.with_columns(gen_tokens=pl.when(fewer & (pl.col("budget") == 2)).then(50)
                                   .otherwise("gen_tokens")),
        equal_compute.filter(fewer & (pl.col("budget") == 4) & (pl.col("alpha") == 0.5)).with_columns(
            budget=pl.lit(8, pl.Int32), gen_tokens=pl.lit(300, pl.Int64))])
    h = headline(StudyTables("toy", curves=search_curves(search), search=search, prover="base_k4", k_budget=4,
                             alpha=0.5))
    rows = {r["budget"]: r for r in h.comparison.rows.iter_rows(named=True)}
    assert rows[2]["gain_at_equal_tokens"] is None and rows[8]["gain_same_n"] is None
    head = h.as_dict()
    assert "headline/gain_at_equal_tokens@2" not in head and "headline/gain_at_equal_tokens_ci_low@2" not in head
    assert "headline/gain_same_n@8" not in head and "headline/gain_at_equal_tokens@8" in head
    assert head["headline/gain_same_n@2"] == pytest.approx(0.25)
    assert {f"headline/{k}@{n}" for k in ("beam_acc", "compute_efficiency", "compute_efficiency_bound")
            for n in (2, 4, 8)} <= set(head)


def test_the_rl_prover_claim_compares_the_oracle_arms_by_final_accuracy():
    rl = rl_finals({"outcome": [0.40, 0.41, 0.42], "pav_mc_base_k1": [0.42, 0.43, 0.44],
                     "pav_mc_base_k4": [0.55, 0.56, 0.58], "pav_mc_base_k16": [0.45, 0.47, 0.46],
                     "pav_mc_weak_k4": [0.9, 0.91, 0.9]})  # another policy's prover: not in the K sweep
    h = headline(StudyTables("rl", rl=rl, prover="base_k4", k_budget=4))
    b = h.rl_best_prover
    assert (b.best["K"], b.ks, sorted(b.minus)) == (4, (1, 4, 16), [1, 16])
    assert b.minus[16]["diff"] == pytest.approx(np.mean([0.55, 0.56, 0.58]) - 0.46) and b.minus[16]["ci_low"] > 0
    assert PROVER.verdict(b) == "reproduces"
    head = h.as_dict()
    assert head["rl/best_mc_prover_k"] == 4
    assert head["rl/pav_mc_base_k4/minus_outcome/diff"] == pytest.approx(np.mean([0.55, 0.56, 0.58]) - 0.41)
    assert {"rl/pav_mc_base_k4/minus_outcome/mde", "rl/pav_mc_base_k4/minus_outcome/sample_efficiency"} <= set(head)


def test_the_oracle_provers_beam_search_is_its_own_prover_claim():
    """search_beam_mc rows (verifier "mc") at the same Ks as the trained PAVs: each kind gets its best K,
    never a mix of the two."""
    mc = (search_rows("beam", "mc", "base_k1", 1, 1.0, 4, [1, 1, 1, 0], [150] * 4)
          + search_rows("beam", "mc", "base_k4", 4, 1.0, 4, [0, 1, 0, 0], [150] * 4)
          + search_rows("beam", "mc", "base_k16", 16, 1.0, 4, [0, 0, 0, 0], [150] * 4))
    sweep = pl.concat([_sweep(), conform(pl.DataFrame(mc, infer_schema_length=None), SEARCH, "search")])
    h = headline(StudyTables("sw", curves=search_curves(sweep), search=sweep, prover="base_k4", k_budget=4, alpha=1.0))
    assert h.best_prover.best["K"] == 4 and h.best_prover.best["verifier"] == "pqv+pav"
    b = h.best_mc_prover
    assert (b.best["K"], b.best["verifier"], b.ks, sorted(b.minus)) == (1, "mc", (1, 4, 16), [4, 16])
    assert b.minus[4]["diff"] == 0.5 and b.minus[4]["method"] == "beam/mc/base_k1"
    assert h.as_dict()["headline/best_mc_prover_k"] == 1


def test_rl_sizing_reads_the_arm_of_median_ci_width_not_a_collapsed_one():
    from pavflow.data import RL_COMPARE
    from pavflow.report.headline import sizing
    rows = [dict(arm=a, baseline="outcome", metric="test_acc_sampled", n_seeds=3, n_seeds_baseline=3, acc=0.5,
                 baseline_acc=0.5, diff=0.0, ci_low=-w, ci_high=w) for a, w in (("pav", 0.02), ("collapsed", 0.3),
                                                                               ("pav_mc_base_k4", 0.06))]
    h = Headline("x", rl_compare=pl.DataFrame(rows, schema=RL_COMPARE))
    p = sizing(h)["rl"]
    # +-6 points on 3 seeds: +-4 needs 3 * (6/4)^2 = 6.75 -> 7 seeds per arm
    assert (p["what"], p["n"], p["n_needed"]) == ("RL pav_mc_base_k4 − outcome", 3, 7)
    assert p["half_width"] == pytest.approx(0.06) and "search" not in sizing(h)
