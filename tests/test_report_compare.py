import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import ttest_ind

from pavflow.data import HEADLINE, PAIRED, RL_COMPARE, SEARCH, conform
from pavflow.report.compare import beam_scorers, headline_comparisons, paired_comparisons, rl_comparisons, val_margin
from pavflow.report.power import mde, n_for_half_width, se_from_ci, unpaired_se
from pavflow.report.tables import search_curves
from pavflow.search.select import choose_on_val
from report_data import BEAM, BON, equal_compute, rl, rl_finals, search  # noqa: F401


def test_headline_comparisons_on_a_hand_made_curve(equal_compute):
    hc = headline_comparisons(equal_compute, BEAM, BON, n_boot=500)
    assert hc.schema == pl.Schema(HEADLINE) and hc["budget"].to_list() == [2, 4]
    r2, r4 = hc.rows(named=True)
    assert r2["n_problems"] == 4  # p9: beam only
    assert (r2["beam_acc"], r2["beam_gen_tokens"], r2["bon_acc_same_n"]) == (0.75, 141.5, 0.5)
    assert r2["gain_same_n"] == pytest.approx(0.25)
    # matched tokens: 141.5 is log2(1.415) of the way from 100 to 200; per problem bon = [1, w, 0, 0]
    w = np.log2(1.415)
    assert r2["gain_at_equal_tokens"] == pytest.approx(0.75 - (1 + w) / 4)
    assert r2["gain_at_equal_tokens_ci_low"] <= r2["gain_at_equal_tokens"] <= r2["gain_at_equal_tokens_ci_high"]
    # bon reaches 75% only at 400 tokens
    assert (r2["compute_efficiency"], r2["compute_efficiency_bound"]) == (pytest.approx(400 / 141.5), "=")
    assert r4["gain_same_n"] == pytest.approx(0.25) and r4["gain_at_equal_tokens"] == pytest.approx(0.5)
    # bon never reaches 100%: more than 400 / 200
    assert (r4["compute_efficiency"], r4["compute_efficiency_bound"]) == (pytest.approx(2.0), ">")
    assert math.isinf(r4["compute_efficiency_ci_high"])
    assert headline_comparisons(None, BEAM, BON).schema == pl.Schema(HEADLINE)
    assert headline_comparisons(equal_compute, {**BEAM, "prover": "nope"}, BON).height == 0


def test_paired_comparisons(equal_compute):
    pqv = {"method": "beam", "verifier": "pqv", "prover": ""}
    pc = paired_comparisons(equal_compute, BEAM, [BON, pqv], n_boot=500)
    assert pc.schema == pl.Schema(PAIRED)
    got = {(r["baseline"], r["budget"]): r for r in pc.iter_rows(named=True)}
    assert sorted(got) == [("beam/pqv", 4), ("bon/orm", 2), ("bon/orm", 4)]
    r = got[("beam/pqv", 4)]
    assert (r["method"], r["diff"], r["n_problems"]) == ("beam/pqv+pav/base_k4 α=0.5", 0.5, 4)
    assert r["ci_low"] <= 0.5 <= r["ci_high"]
    assert paired_comparisons(None, BEAM, [BON]).schema == pl.Schema(PAIRED)


def test_beam_scorers_pairs_every_scorer_with_the_reference(equal_compute):
    curves = search_curves(equal_compute)
    s = beam_scorers(curves, equal_compute, 4, BEAM)
    # best first
    assert s["label"].to_list() == ["beam/pqv+pav/base_k4 α=0.5", "beam/pqv+pav/base_k4 α=2", "beam/pqv"]
    ref, a2, pqv = s.rows(named=True)
    assert (ref["diff"], ref["diff_ci_low"]) == (None, None)  # the reference itself
    assert a2["diff"] == pytest.approx(-0.25) and pqv["diff"] == pytest.approx(-0.5)  # on p0..p3, not p9
    assert pqv["diff_ci_low"] <= pqv["diff"] <= pqv["diff_ci_high"]
    assert beam_scorers(curves, None, 4, BEAM)["diff"].to_list() == [None] * 3  # no search rows: no pairing
    assert beam_scorers(curves, equal_compute, 99, BEAM).height == 0
    assert beam_scorers(None, equal_compute, 4, BEAM).height == 0


def test_rl_comparisons_are_welch_over_seeds_against_the_outcome_arm():
    outcome, pav = [0.40, 0.42, 0.44], [0.50, 0.55, 0.53]
    c = rl_comparisons(rl_finals({"outcome": outcome, "pav": pav, "pav_mc_base_k4": [0.3]}))
    assert c.schema == pl.Schema(RL_COMPARE) and c["arm"].to_list() == ["pav", "pav_mc_base_k4"]
    r, one = c.rows(named=True)
    test = ttest_ind(pav, outcome, equal_var=False)
    assert (r["diff"], r["ci_low"], r["ci_high"]) == pytest.approx((np.mean(pav) - np.mean(outcome),
                                                                     *test.confidence_interval(0.95)))
    assert r["mde"] == pytest.approx(mde(unpaired_se(pav, outcome), df=test.df)) and r["mde"] > r["ci_high"] - r["diff"]
    assert (r["n_seeds"], r["n_seeds_baseline"], r["metric"]) == (3, 3, "test_acc_sampled")
    # the outcome arm ends at 0.42 (mean); pav's mean curve crosses it between 0 and 512 samples
    assert r["sample_efficiency"] > 1
    assert one["n_seeds"] == 1 and math.isnan(one["ci_low"]) and math.isnan(one["mde"])  # one seed: no CI


def test_rl_arms_tied_at_0_get_no_ci():
    c = rl_comparisons(rl_finals({"outcome": [0.0, 0.0], "pav": [0.0, 0.0]}))
    assert c["diff"].to_list() == [0.0] and math.isnan(c["ci_low"][0])


def _val(solved: dict[str, int], n: int = 40) -> pl.DataFrame:
    """A val grid at N=16, α=1: prover -> how many of the n problems it solves (the first ones: nested)."""
    rows = [dict(problem_id=f"v{i:02d}", split="val", method="beam", verifier="pqv+pav", prover=p,
                 k=int(p.rsplit("_k", 1)[1]), alpha=1.0, budget=16, correct=int(i < c), gen_tokens=100,
                 prompt_tokens=50, verifier_tokens=200) for p, c in solved.items() for i in range(n)]
    return conform(pl.DataFrame(rows), SEARCH, "val")


def test_val_margin_is_the_choice_minus_the_runner_up_and_the_val_size_it_needs():
    val = _val({"base_k4": 30, "base_k1": 24, "base_k16": 10})
    choice = choose_on_val(val)
    m = val_margin(val, choice)
    assert (choice["prover"], m["runner_prover"], m["runner_alpha"], m["n_problems"]) == ("base_k4", "base_k1", 1.0, 40)
    assert m["diff"] == pytest.approx(0.15) and m["ci_low"] > 0  # nested successes: every difference is 0 or 1
    sd = se_from_ci(m["ci_low"], m["ci_high"]) * math.sqrt(40)
    assert m["n_needed"] == max(2, n_for_half_width(sd, 0.15))


def test_a_val_tie_needs_no_size():
    val = _val({"base_k4": 30, "base_k1": 30})
    m = val_margin(val, choose_on_val(val))
    assert m["diff"] == 0 and m["n_needed"] is None


def test_oracle_k_holds_the_mc_beam_and_pav_mc_rows_with_sample_and_token_efficiency(search, rl):
    from pavflow.report.compare import oracle_k
    from report_data import ORACLE_KS, oracle_rl, oracle_search
    rl = oracle_rl(rl)
    curves = search_curves(pl.concat([search, oracle_search()]))
    rows = oracle_k(curves, rl, rl_comparisons(rl), budget=4, alpha=1.0)
    beam, arms = rows.filter(pl.col("source") == "beam"), rows.filter(pl.col("source") == "rl")
    assert beam["K"].to_list() == list(ORACLE_KS) and beam["acc"].to_list() == [0.5, 1.0, 0.75]
    assert beam["n"].to_list() == [4] * 3 and beam["sample_efficiency"].is_null().all()  # no learned pqv+pav row
    assert oracle_k(curves, None, None, budget=4, alpha=0.5).height == 0  # the oracle ran at alpha 1 only
    assert arms["prover"].to_list() == ["base_k1", "base_k4", "base_k16"]
    k1, k4, k16 = arms.rows(named=True)
    # K=1 matches the outcome arm's curve, but spends 10,000 rollout tokens per update beside 5,000 generated
    assert k1["sample_efficiency"] == pytest.approx(1.0) and k1["token_efficiency"] == pytest.approx(15000 / 45000)
    assert k4["sample_efficiency"] == pytest.approx(768 / 640) and k4["token_efficiency"] == pytest.approx(15000 / 37500)
    assert k16["sample_efficiency"] == 0.0 and k16["token_efficiency"] == 0.0
    # final accuracy: seed mean with a t interval over the 2 seeds; minus the outcome arm
    a = np.array([0.31 + 0.06, 0.31 + 0.07])
    assert k4["acc"] == pytest.approx(a.mean()) and k4["n"] == 2
    assert k4["ci_high"] - k4["acc"] == pytest.approx(12.706 * a.std(ddof=1) / math.sqrt(2), rel=1e-3)
    assert k4["diff"] == pytest.approx(0.01) and k4["baseline_acc"] == pytest.approx(0.365)
    assert k4["verifier_tokens"] == 30000 and k4["gen_tokens"] == 15000



def test_strongest_baseline_judges_a_degrading_best_of_n_by_its_best_point_at_equal_compute():
    """Best-of-N falls from 50% (N=1) to 25% (N=4); majority reaches 75% at N=4 with no verifier; beam search
    reaches 100% with few generated tokens but many verifier tokens. At equal generated tokens only best-of-N
    at N=1 is as cheap as beam; counting verifier tokens too, majority at N=4 is, and it is the stronger."""
    from report_data import search_rows
    from pavflow.report.compare import COSTS, STRONGEST, strongest_baseline
    rows = (search_rows("bon", "orm", "", 0, 0.0, 1, [1, 1, 0, 0], [100] * 4)
            + search_rows("bon", "orm", "", 0, 0.0, 4, [1, 0, 0, 0], [400] * 4)
            + search_rows("majority", "", "", 0, 0.0, 4, [1, 1, 1, 0], [400] * 4)
            + search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 4, [1, 1, 1, 1], [200] * 4))
    search = conform(pl.DataFrame(rows, infer_schema_length=None), SEARCH, "search").with_columns(
        verifier_tokens=pl.when(pl.col("method") == "beam").then(1000).when(pl.col("method") == "majority")
        .then(0).otherwise(pl.col("gen_tokens")))
    majority = {"method": "majority", "verifier": "", "prover": ""}
    s = strongest_baseline(search, BEAM, [BON, majority], n_boot=500)
    assert s.schema == pl.Schema(STRONGEST) and s["cost"].to_list() == list(COSTS)
    gen, total = s.rows(named=True)
    assert (gen["baseline"], gen["baseline_budget"], gen["baseline_acc"], gen["n_candidates"]) == ("bon/orm", 1, 0.5, 1)
    assert (gen["beam_tokens"], gen["diff"]) == (200.0, pytest.approx(0.5))
    assert (total["baseline"], total["baseline_budget"], total["beam_tokens"]) == ("majority", 4, 1200.0)
    assert total["diff"] == pytest.approx(0.25) and total["n_candidates"] == 3
    assert total["ci_low"] <= total["diff"] <= total["ci_high"]
    # no baseline as cheap as beam search: the row is kept, its baseline empty
    cheap = strongest_baseline(search.filter(pl.col("method") != "bon"), BEAM, [majority], n_boot=100)
    assert (cheap["baseline"][0], cheap["diff"][0], cheap["n_candidates"][0]) == (None, None, 0)
    assert strongest_baseline(None, BEAM, [BON]).schema == pl.Schema(STRONGEST)
