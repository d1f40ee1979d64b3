import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pavflow.data import METRICS, RL_CURVE, SAMPLES, SEARCH, TRAIN_LOG, conform
from pavflow.report import (
    CURVES, parse_prover, plot_accuracy_vs_budget, plot_accuracy_vs_tokens, plot_prover_k,
    markdown_html, plot_rl_curves, plot_success_histogram, plot_train_logs, plot_verifier_quality, rl_final,
    search_curves, success_histogram, success_rates, write_summary,
)

PROBLEMS = ["p0", "p1", "p2", "p3"]


def _search_rows(method, verifier, prover, k, alpha, budget, correct, tokens, split="test"):
    return [dict(problem_id=p, split=split, method=method, verifier=verifier, prover=prover, k=k,
                 alpha=alpha, budget=budget, correct=c, gen_tokens=t, prompt_tokens=50,
                 verifier_tokens=2 * t) for p, c, t in zip(PROBLEMS, correct, tokens)]


@pytest.fixture
def search() -> pl.DataFrame:
    rows = (
        _search_rows("bon", "orm", "", None, None, 1, [1, 0, 0, 0], [100, 120, 80, 100])
        + _search_rows("bon", "orm", "", None, None, 4, [1, 1, 0, 0], [400, 480, 320, 400])
        + _search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 1, [1, 1, 0, 0], [150, 150, 150, 150])
        + _search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 4, [1, 1, 1, 0], [200, 220, 180, 200])
        + _search_rows("beam", "pqv+pav", "base_k1", 1, 0.5, 4, [1, 0, 1, 0], [210, 210, 210, 210])
        + _search_rows("beam", "pqv+pav", "base_k16", 16, 0.5, 4, [1, 0, 0, 0], [190] * 4)
        + _search_rows("beam", "pqv+pav", "big_k4", 4, 0.5, 4, [1, 1, 1, 1], [230] * 4)
        + _search_rows("majority", "", "", None, None, 1, [1, 0, 0, 0], [100, 120, 80, 100])
        + _search_rows("majority", "", "", None, None, 4, [1, 0, 1, 0], [400, 480, 320, 400])
        + _search_rows("pass", "", "", None, None, 4, [1, 1, 1, 0], [400, 480, 320, 400])
    )
    return conform(pl.DataFrame(rows, infer_schema_length=None), SEARCH, "search")


# Success counts out of 10 samples for 10 test problems, plus 2 val problems that must be ignored.
POOL_CORRECT = [0, 0, 1, 3, 5, 5, 7, 9, 10, 10]


@pytest.fixture
def pool() -> pl.DataFrame:
    rows = []
    for split, counts in (("test", POOL_CORRECT), ("val", [10, 10])):
        for i, c in enumerate(counts):
            for s in range(10):
                rows.append(dict(problem_id=f"{split}{i}", split=split, policy="base", sample_id=s,
                                 response="...", n_steps=3, correct=int(s < c), prompt_tokens=50,
                                 gen_tokens=100))
    return conform(pl.DataFrame(rows), SAMPLES, "pool")


@pytest.fixture
def rl() -> pl.DataFrame:
    rows = []
    for arm, prover, alpha, base in (("outcome", "", 0.0, 0.30), ("pav", "base_k4", 3.0, 0.35)):
        for seed in (0, 1):
            for u in range(4):
                acc = base + 0.02 * u + 0.01 * seed
                rows.append(dict(arm=arm, prover=prover, alpha=alpha, seed=seed, update=u,
                                 samples_seen=256 * u, train_reward=acc, test_acc_greedy=acc + 0.05,
                                 test_acc_sampled=acc, pass_at_n=acc + 0.2, response_tokens=20.0,
                                 n_steps=4.0, kl_ref=0.1 * u, newly_solved=0.1 * u, gen_tokens=5000 * u,
                                 verifier_tokens=0, stop_reason=None))
    return conform(pl.DataFrame(rows), RL_CURVE, "rl")


@pytest.fixture
def train_log() -> pl.DataFrame:
    rows = [dict(model=m, step=s, tokens_seen=1000 * s, loss=scale * np.exp(-s / 10) + 0.1,
                 val_metric="auroc" if s % 5 == 0 else None, val_value=0.5 + s / 50 if s % 5 == 0 else None)
            for m, scale in (("sft", 2.0), ("pav_base_k4", 0.7)) for s in range(20)]
    return conform(pl.DataFrame(rows), TRAIN_LOG, "train_log")


@pytest.fixture
def metrics() -> pl.DataFrame:
    rows = [dict(subject="orm", metric="auroc", value=0.71, ci_low=0.68, ci_high=0.74, n=500),
            dict(subject="orm", metric="bon@16", value=0.40, ci_low=None, ci_high=None, n=500),
            dict(subject="pav_base_k4", metric="auroc", value=0.78, ci_low=0.75, ci_high=0.81, n=500)]
    return conform(pl.DataFrame(rows), METRICS, "metrics")


@pytest.fixture
def quality() -> pl.DataFrame:
    rows = [dict(subject=v, metric=m, value=x, ci_low=lo, ci_high=hi, n=40)
            for v, b, a in (("orm", 0.20, 0.71), ("pqv", 0.15, 0.66), ("pav_base_k4", 0.12, 0.78))
            for m, x, lo, hi in (("brier", b, b - 0.02, b + 0.03), ("outcome_auroc", a, None, None))]
    return conform(pl.DataFrame(rows), METRICS, "metrics")


def _row(curves: pl.DataFrame, **keys) -> dict:
    df = curves.filter(*[pl.col(k) == v for k, v in keys.items()])
    assert df.height == 1, keys
    return df.row(0, named=True)


def _is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000


def test_search_curves(search):
    curves = search_curves(search)
    assert curves.schema == pl.Schema(CURVES)
    assert curves.height == 10
    r = _row(curves, method="bon", budget=4)
    assert (r["acc"], r["gen_tokens"], r["verifier_tokens"], r["n_problems"]) == (0.5, 400.0, 800.0, 4)
    assert r["ci_low"] <= r["acc"] <= r["ci_high"]
    r = _row(curves, method="beam", prover="base_k4", budget=4)
    assert (r["acc"], r["gen_tokens"], r["k"], r["alpha"]) == (0.75, 200.0, 4, 0.5)
    assert _row(curves, method="beam", prover="big_k4")["acc"] == 1.0
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


def test_rl_final(rl):
    final = rl_final(rl)
    assert final.height == 4 and set(final["update"]) == {3}


def test_parse_prover():
    assert parse_prover("base_k4") == ("base", 4)
    assert parse_prover("gemma_9b_k16") == ("gemma_9b", 16)
    assert parse_prover("oracle") == ("oracle", None)


def test_figures(tmp_path, search, pool, rl, train_log, quality):
    curves = search_curves(search)
    paths = [
        *plot_accuracy_vs_tokens(curves, tmp_path),
        *plot_accuracy_vs_budget(curves, tmp_path),
        *plot_prover_k(curves, 4, tmp_path),
        *plot_rl_curves(rl, tmp_path),
        *plot_success_histogram(pool, tmp_path),
        *plot_train_logs(train_log, tmp_path),
        *plot_verifier_quality(quality, tmp_path),
    ]
    names = {p.name for p in paths}
    for stem in ("acc_vs_tokens", "acc_vs_budget", "prover_k_N4", "rl_curves", "success_histogram",
                 "train_logs", "verifier_quality"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for p in paths:
        assert p.exists()
        if p.suffix == ".png":
            assert _is_png(p), p
        else:
            assert p.read_text().lstrip().startswith("<?xml") and p.stat().st_size > 5_000, p


def test_figures_tolerate_missing(tmp_path, search):
    empty = search_curves(None)
    assert plot_accuracy_vs_tokens(None, tmp_path) == []
    assert plot_accuracy_vs_budget(empty, tmp_path) == []
    assert plot_prover_k(empty, 4, tmp_path) == []
    assert plot_prover_k(search_curves(search), 999, tmp_path) == []  # no such budget
    assert plot_rl_curves(None, tmp_path) == []
    assert plot_success_histogram(None, tmp_path) == []
    assert plot_train_logs(pl.DataFrame(schema=TRAIN_LOG), tmp_path) == []
    assert plot_verifier_quality(None, tmp_path) == []
    assert plot_verifier_quality(pl.DataFrame(schema=METRICS), tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def _section(md: str, title_start: str) -> list[str]:
    """Table rows (cells) of the section whose heading starts with `title_start`."""
    body = md.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in body.splitlines() if line.startswith("|") and not line.startswith("|---")]


def _ci(r: dict) -> str:
    return f"{100 * r['acc']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def test_write_summary(tmp_path, search, pool, rl, metrics, quality):
    curves = search_curves(search)
    figs = plot_accuracy_vs_budget(curves, tmp_path)
    head = write_summary(tmp_path, experiment="toy", pool=pool, curves=curves, rl=rl,
                         verifier_metrics=metrics, headline_prover="base_k4", k_budget=4, quality=quality)
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# toy")

    # Headline table: best-of-N (ORM) vs beam search (PAV) per budget.
    rows = _section(md, "Best-of-N (ORM) vs beam search (PAV, prover=base_k4)")
    assert rows[0] == ["N", "bon/orm acc % [95% CI]", "bon/orm gen tokens",
                       "beam/pqv+pav/base_k4 acc % [95% CI]", "beam/pqv+pav/base_k4 gen tokens"]
    bon4, beam4 = _row(curves, method="bon", budget=4), _row(curves, prover="base_k4", budget=4)
    assert rows[2] == ["4", _ci(bon4), "400", _ci(beam4), "200"]
    assert rows[1][0] == "1" and rows[1][1].startswith("25.0 [") and rows[1][3].startswith("50.0 [")
    assert head["search/bon/orm/acc@4"] == 0.5 and head["search/beam/pqv+pav/base_k4/acc@4"] == 0.75
    assert head["search/beam/pqv+pav/base_k4/acc_gain_vs_bon/orm@4"] == pytest.approx(0.25)
    # Beam reaches bon's N=4 accuracy (50%) at N=1 with 150 tokens vs 400.
    assert head["search/beam/pqv+pav/base_k4/compute_efficiency_vs_bon/orm"] == pytest.approx(400 / 150)
    assert "+25.0 points" in md

    # Base policy on the test split only (val problems always solved are excluded).
    rows = _section(md, "Base policy")
    assert rows[1][:4] == ["base", "test", "10", "10"] and rows[1][4].startswith("50.0 [")
    assert head["pool/base/acc"] == 0.5
    assert head["pool/base/pass@2"] == pytest.approx(np.mean(
        [1 - (10 - c) * (9 - c) / 90 if c < 9 else 1.0 for c in POOL_CORRECT]))
    assert "pass@8 %" in rows[0] and "pass@10 %" in rows[0]

    rows = _section(md, "Per-problem success rate")
    assert [r[1].split()[0] for r in rows[1:]] == ["2", "1", "0", "1", "0", "2", "0", "1", "0", "3", "2", "2"]
    assert head["pool/base/never_solved"] == 2 and head["pool/base/always_solved"] == 2

    rows = _section(md, "Beam search accuracy vs prover K (N=4)")
    assert [r[0] for r in rows[1:]] == ["base_k1", "base_k4", "base_k16", "big_k4"]
    assert rows[4][5].startswith("100.0 [")

    rows = _section(md, "Online RL")
    assert rows[1][0] == "outcome" and rows[1][5] == "36.5 (36.0, 37.0)" and rows[1][6] == "41.5 (41.0, 42.0)"
    assert rows[1][7:] == ["56.5 (56.0, 57.0)", "30.0 (30.0, 30.0)", "0.3", "20"]
    assert head["rl/pav/final_acc_sampled"] == pytest.approx(0.415)
    assert head["rl/pav/final_acc_greedy"] == pytest.approx(0.465)
    # outcome ends at 36.5%; pav's seed mean passes it halfway between 0 and 256 samples: 768 / 128
    assert head["rl/sample_efficiency"] == pytest.approx(6.0)
    assert head["rl/sample_efficiency_ci_low"] <= 6.0 <= head["rl/sample_efficiency_ci_high"]
    assert "**6.00×** fewer" in md

    rows = _section(md, "Verifier training jobs")
    assert rows[0] == ["subject", "auroc", "bon@16"]
    assert rows[1] == ["orm", "0.710 [0.680, 0.740]", "0.400"]
    assert rows[2] == ["pav_base_k4", "0.780 [0.750, 0.810]", "–"]

    figs_md = md.split("## Figures", 1)[1]
    assert "(acc_vs_budget.png)" in figs_md and "(acc_vs_budget.svg)" in figs_md
    assert "not run" not in md
    assert all(isinstance(v, (int, float, str)) for v in head.values())
    assert figs  # written before the summary, listed by default


def test_write_summary_missing(tmp_path):
    head = write_summary(tmp_path, experiment="empty", headline_prover="base_k4", k_budget=4)
    md = (tmp_path / "summary.md").read_text()
    assert md.count("_not run_") == 7
    assert head == {"experiment": "empty"}
    empty = search_curves(None)
    write_summary(tmp_path, experiment="empty", curves=empty, pool=pl.DataFrame(schema=SAMPLES),
                  rl=pl.DataFrame(schema=RL_CURVE), verifier_metrics=pl.DataFrame(schema=METRICS),
                  headline_prover="base_k4", k_budget=4, quality=pl.DataFrame(schema=METRICS))
    assert (tmp_path / "summary.md").read_text().count("_not run_") == 7


def test_quality_section_names_the_best_and_compares_analytic_with_trained(tmp_path):
    rows = [("orm", "brier", 0.20, 0.18, 0.23), ("orm", "outcome_auroc", 0.71, 0.6, 0.8),
            ("pav_base_k4", "brier", 0.12, 0.10, 0.14), ("pav_base_k4", "outcome_auroc", 0.78, 0.7, 0.86),
            ("pav_base_k4", "label_rollouts", 4096.0, None, None),
            ("pav_analytic_k4", "brier", 0.15, 0.13, 0.17), ("pav_analytic_k4", "outcome_auroc", 0.80, 0.7, 0.9),
            ("oracle", "brier", 0.01, 0.0, 0.02), ("oracle", "outcome_auroc", 1.0, 1.0, 1.0)]
    quality = conform(pl.DataFrame([dict(subject=a, metric=m, value=v, ci_low=lo, ci_high=hi, n=10)
                                    for a, m, v, lo, hi in rows]), METRICS, "metrics")
    head = write_summary(tmp_path, experiment="q", headline_prover="base_k4", k_budget=4, quality=quality)
    md = (tmp_path / "summary.md").read_text()
    table = _section(md, "Verifier quality (held-out")
    assert table[0] == ["verifier", "brier", "ece", "spearman_progress", "outcome_auroc", "first_error_f1",
                        "label_rollouts"]
    assert table[2] == ["pav_base_k4", "0.120 [0.100, 0.140]", "–", "–", "0.780 [0.700, 0.860]", "–", "4,096"]
    # the oracle (MC labels) is a reference, never "best"
    assert head["quality/best/brier"] == "pav_base_k4" and head["quality/best/outcome_auroc"] == "pav_analytic_k4"
    assert "Best on brier: **pav_base_k4**" in md
    assert "- pav_analytic_k4 − pav_base_k4: brier +0.030, outcome_auroc +0.020" in md


def test_summary_html_holds_the_tables_and_the_config(tmp_path, search, pool, rl, metrics):
    config = "name: toy\nsearch:\n  budgets: [1, 4]  # <N>\n"
    write_summary(tmp_path, experiment="toy", pool=pool, curves=search_curves(search), rl=rl,
                  verifier_metrics=metrics, headline_prover="base_k4", k_budget=4, config=config)
    md, page = (tmp_path / "summary.md").read_text(), (tmp_path / "summary.html").read_text()
    assert md.rstrip().endswith("```") and "## Resolved configuration" in md and config in md
    assert page.startswith("<!doctype html>") and "<title>pavflow: toy</title>" in page
    assert page.count("<table>") == md.count("\n|---") == 6
    assert "<td>orm</td><td>0.710 [0.680, 0.740]</td><td>0.400</td>" in page
    assert "<h2>Resolved configuration</h2>" in page and "budgets: [1, 4]  # &lt;N&gt;" in page


def test_markdown_html_subset():
    page = markdown_html("# t\n\n_not run_ for pav_base_k4, **warn**\n\n- [f](f.png)\n\n"
                         "| a | b |\n|---|---|\n| 1 | <2> |\n", title="t")
    assert "<h1>t</h1>" in page and "<p><em>not run</em> for pav_base_k4, <strong>warn</strong></p>" in page
    assert '<ul><li><a href="f.png">f</a></li></ul>' in page
    assert "<thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>&lt;2&gt;</td></tr>" in page


# --- comparisons at equal compute -----------------------------------------------------------------

from pavflow.report import (HEADLINE, PAIRED, alpha_rows, headline_comparisons,  # noqa: E402
                            paired_comparisons, plot_alpha)

BON = {"method": "bon", "verifier": "orm", "prover": ""}
BEAM = {"method": "beam", "verifier": "pqv+pav", "prover": "base_k4", "alpha": 0.5}


@pytest.fixture
def equal_compute() -> pl.DataFrame:
    """BoN at 100/200/400 tokens (25/50/75%); beam at N=2 with 141.5 tokens (75%) and N=4 with 200 (100%);
    the pqv alone at N=4; a fifth problem only beam ran (left out of every paired comparison)."""
    rows = (_search_rows("bon", "orm", "", 0, 0.0, 1, [1, 0, 0, 0], [100] * 4)
            + _search_rows("bon", "orm", "", 0, 0.0, 2, [1, 1, 0, 0], [200] * 4)
            + _search_rows("bon", "orm", "", 0, 0.0, 4, [1, 1, 1, 0], [400] * 4)
            + _search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 2, [1, 1, 1, 0], [141, 142, 141, 142])
            + _search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 4, [1, 1, 1, 1], [200] * 4)
            + _search_rows("beam", "pqv+pav", "base_k4", 4, 2.0, 4, [0, 1, 1, 1], [200] * 4)
            + _search_rows("beam", "pqv", "", 0, 0.0, 4, [0, 0, 1, 1], [210] * 4))
    extra = dict(rows[-1], problem_id="p9", method="beam", verifier="pqv+pav", prover="base_k4", k=4, alpha=0.5,
                 budget=4, correct=0)
    return conform(pl.DataFrame(rows + [extra], infer_schema_length=None), SEARCH, "search")


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
    assert headline_comparisons(None, BEAM, BON).schema == pl.Schema(HEADLINE)
    assert headline_comparisons(equal_compute, {**BEAM, "prover": "nope"}, BON).height == 0


def test_paired_comparisons_and_alpha_rows(equal_compute, tmp_path):
    pqv = {"method": "beam", "verifier": "pqv", "prover": ""}
    pc = paired_comparisons(equal_compute, BEAM, [BON, pqv], n_boot=500)
    assert pc.schema == pl.Schema(PAIRED)
    got = {(r["baseline"], r["budget"]): r for r in pc.iter_rows(named=True)}
    assert sorted(got) == [("beam/pqv", 4), ("bon/orm", 2), ("bon/orm", 4)]
    r = got[("beam/pqv", 4)]
    assert (r["method"], r["diff"], r["n_problems"]) == ("beam/pqv+pav/base_k4 α=0.5", 0.5, 4)
    assert r["ci_low"] <= 0.5 <= r["ci_high"]
    curves = search_curves(equal_compute)
    a = alpha_rows(curves, "base_k4", 4)
    assert a["alpha"].to_list() == [0.0, 0.5, 2.0]
    assert a["acc"].to_list() == pytest.approx([0.5, 0.8, 0.75])  # alpha 0.5 includes p9
    assert alpha_rows(curves, "base_k4", 2)["alpha"].to_list() == [0.5]
    assert {p.name for p in plot_alpha(curves, "base_k4", 4, tmp_path)} == {"alpha_N4.png", "alpha_N4.svg"}
    assert plot_alpha(curves, "base_k4", 99, tmp_path) == []


def test_write_summary_states_the_headline_figures(tmp_path, equal_compute):
    val = equal_compute.filter(pl.col("budget") == 4, pl.col("method") == "beam").with_columns(split=pl.lit("val"))
    choice = {"prover": "base_k4", "k": 4, "alpha": 0.5, "verifier": "pqv+pav", "val_acc": 0.8, "n_problems": 5,
              "budget": 4}
    head = write_summary(tmp_path, experiment="toy", curves=search_curves(equal_compute), search=equal_compute,
                         val=val, choice=choice, headline_prover="base_k4", k_budget=4, alpha=2.0)
    md = (tmp_path / "summary.md").read_text()
    rows = _section(md, "Headline: beam search (PAV) vs best-of-N (ORM) at equal compute")
    assert rows[0][-2:] == ["gain_at_equal_tokens [95% CI]", "compute_efficiency [95% CI]"]
    assert rows[2][0] == "4" and rows[2][-1].startswith("> 2.00× [")
    assert rows[1][-1].startswith(f"{400 / 141.5:.2f}× [")
    # beam at N=4 is never reached by best-of-N: the CI's upper end is unbounded
    assert math.isinf(head["headline/compute_efficiency_ci_high@4"]) and rows[2][-1].endswith(", ∞]")
    assert head["headline/beam"] == "beam/pqv+pav/base_k4 α=0.5"
    assert head["headline/gain_at_equal_tokens@4"] == pytest.approx(0.5)
    assert head["headline/compute_efficiency_bound@4"] == ">"
    assert head["headline/val_choice/prover"] == "base_k4" and head["headline/val_choice/alpha"] == 0.5
    assert head["headline/alpha/0/acc"] == 0.5 and head["headline/alpha/2/acc"] == 0.75
    # the configured alpha (2.0) differs from the val choice: its comparison is shown for reference
    assert "For reference: the configured beam search" in md and "configured/gain_same_n@4" in head
    assert "## The paper's search claims at this scale" in md
    assert "gain_at_equal_tokens = +50.0 [" in md
