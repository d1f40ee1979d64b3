from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from pavflow.data import METRICS, TRAIN_LOG
from pavflow.report.figures import (DATA_SCALING_PANELS, RL_PANELS, plot_accuracy_vs_budget, plot_accuracy_vs_tokens,
                                    plot_alpha, plot_data_scaling, plot_headline,
                                    plot_prover_k, plot_rl_curves, plot_success_histogram, plot_train_logs,
                                    plot_verifier_quality, save)
from pavflow.report.headline import headline
from pavflow.report.tables import StudyTables, beam_config, data_scaling, rl_seed_bands, search_curves
from report_data import N_MC, N_SEED, equal_compute, pool, quality, rl, search, train_log  # noqa: F401


def _is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000


def _pool_tables(pool):
    h = headline(StudyTables("x", pool=pool))
    return h.pool, h.histogram


def test_figures(tmp_path, search, pool, rl, train_log, quality):
    curves = search_curves(search)
    figs = [plot_accuracy_vs_tokens(curves), plot_accuracy_vs_budget(curves), plot_prover_k(curves, 4),
            plot_rl_curves(rl_seed_bands(rl)), plot_success_histogram(*_pool_tables(pool)), plot_train_logs(train_log),
            plot_verifier_quality(quality)]
    paths = [p for f in figs for p in save(f, tmp_path)]
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
    assert plot_accuracy_vs_tokens(None) is None
    assert plot_accuracy_vs_budget(empty) is None
    assert plot_prover_k(empty, 4) is None
    assert plot_prover_k(search_curves(search), 999) is None  # no such budget
    assert plot_rl_curves(rl_seed_bands(None)) is None
    assert plot_success_histogram(None, None) is None
    assert plot_train_logs(pl.DataFrame(schema=TRAIN_LOG)) is None
    assert plot_verifier_quality(None) is None
    assert plot_verifier_quality(pl.DataFrame(schema=METRICS)) is None
    assert list(tmp_path.iterdir()) == []


def test_plot_alpha(equal_compute, tmp_path):
    curves = search_curves(equal_compute)
    fig = plot_alpha(curves, "base_k4", 4)
    assert {p.name for p in save(fig, tmp_path)} == {"alpha_N4.png", "alpha_N4.svg"}
    assert plot_alpha(curves, "base_k4", 99) is None
    (ax,) = fig.axes
    (bars,) = ax.containers  # one errorbar series: x = alpha, y = accuracy in %
    assert list(bars.lines[0].get_xdata()) == [0.0, 0.5, 2.0]
    assert list(bars.lines[0].get_ydata()) == [50.0, 80.0, 75.0]


def test_curve_figures_draw_one_line_per_configuration(search):
    fig = plot_accuracy_vs_budget(search_curves(search))
    assert isinstance(fig, Figure) and fig.get_label() == "acc_vs_budget"
    (ax,) = fig.axes
    # configurations run at a single budget (prover sweeps, pass) are no curves
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"bon/orm", "beam/pqv+pav/base_k4", "majority"}
    assert list(lines["bon/orm"].get_ydata()) == [25.0, 50.0]
    assert np.allclose(np.log2(lines["bon/orm"].get_xdata()), [0, 2], atol=0.3)  # offset when curves coincide
    assert lines["majority"].get_linestyle() == ":"
    ys = {k: tuple(v.get_ydata()) for k, v in lines.items()}
    same = [k for k in lines if list(ys.values()).count(ys[k]) > 1]
    if same:  # identical curves: apart along x, and a note says so
        assert len({tuple(lines[k].get_xdata()) for k in same}) == len(same)
        assert any("coincide" in t.get_text() for t in ax.texts)
    assert ax.get_ylim()[0] >= 0 and ax.get_ylim()[1] <= 100
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "test accuracy (%)"
    tokens = plot_accuracy_vs_tokens(search_curves(search)).axes[0]
    xs = [line.get_xdata() for line in tokens.get_lines()]
    for want in ((100, 400), (150, 200)):  # coinciding curves (bon/orm, majority) are offset along x
        assert any(len(x) == 2 and np.allclose(np.log2(x), np.log2(want), atol=0.1) for x in xs)


def test_prover_k_lines_and_markers(search):
    fig = plot_prover_k(search_curves(search), 4)
    assert fig.get_label() == "prover_k_N4"
    (ax,) = fig.axes
    series = {c.get_label(): c for c in ax.containers}
    assert set(series) == {"pqv+pav, prover BoK(base)", "pqv+pav, prover big_k4"}  # base: most provers
    base = series["pqv+pav, prover BoK(base)"].lines[0]
    assert list(base.get_xdata()) == [1, 4, 16] and list(base.get_ydata()) == [50.0, 75.0, 25.0]
    assert series["pqv+pav, prover big_k4"].lines[0].get_linestyle() == "None"  # a marker off the line
    other = plot_prover_k(search_curves(search), 4, base_policy="big").axes[0]
    assert "pqv+pav, prover BoK(big)" in {c.get_label() for c in other.containers}


def test_rl_and_histogram_panels(rl, pool):
    fig = plot_rl_curves(rl_seed_bands(rl))
    assert [ax.get_title() for ax in fig.axes] == [t for _, t, *_ in RL_PANELS.values()]
    sampled = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(sampled) == {"outcome (2 seeds)", "pav (2 seeds)"}
    assert list(sampled["pav (2 seeds)"].get_ydata()) == pytest.approx([35.5, 37.5, 39.5, 41.5])
    ax = plot_success_histogram(*_pool_tables(pool)).axes[0]
    bars, exact = ax.containers
    assert [b.get_height() for b in bars] == [2, 1, 0, 1, 0, 2, 0, 1, 0, 3]
    assert [b.get_height() for b in exact] == [2, 2]
    assert bars.get_label() == "base (test, 10 problems, 10 samples each)"


def test_train_logs_hide_unused_panels(train_log):
    logs = pl.concat([train_log, train_log.filter(pl.col("model") == "sft").with_columns(model=pl.lit("orm")),
                      train_log.filter(pl.col("model") == "sft").with_columns(model=pl.lit("pqv"))])
    fig = plot_train_logs(logs)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles == ["sft", "pav_base_k4", "orm", "pqv"]  # 2 x 3 grid, two panels hidden
    assert sum(not ax.get_visible() for ax in fig.axes) == 2


def test_save_is_reproducible(tmp_path, search):
    curves = search_curves(search)
    a = save(plot_accuracy_vs_budget(curves), tmp_path / "a")
    b = save(plot_accuracy_vs_budget(curves), tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_all_zero_curves_stay_in_range_and_visible(search):
    """Every method at 0% (the smoke study): accuracy axes start at 0 and end <= 100, each curve keeps
    its own marker and x offset, and the figure says the curves coincide."""
    zero = search.with_columns(correct=pl.lit(False))
    ax = plot_accuracy_vs_budget(search_curves(zero)).axes[0]
    assert ax.get_ylim() == (0.0, 10.0)
    lines = ax.get_lines()
    assert len({line.get_marker() for line in lines}) == len(lines)
    assert len({tuple(line.get_xdata()) for line in lines}) == len(lines)
    assert any(t.get_text().startswith(f"{len(lines)} curves coincide") for t in ax.texts)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4"]  # budgets, not 2^0 ...


def test_rl_panels_integer_ticks_reasons_and_signed_kl(rl):
    no_samples = rl.with_columns(test_acc_sampled=pl.lit(None, dtype=pl.Float64), pass_at_n=pl.lit(None, dtype=pl.Float64),
                                 kl_ref=-0.003 * pl.col("update"))
    fig = plot_rl_curves(rl_seed_bands(no_samples))
    panels = dict(zip(RL_PANELS, fig.axes))
    for m in ("test_acc_sampled", "pass_at_n"):
        assert not panels[m].get_lines()
        assert "nothing to draw:\nno sampled evaluation (rl.eval_samples)" in [t.get_text() for t in panels[m].texts]
    greedy = panels["test_acc_greedy"]
    assert 0 <= greedy.get_ylim()[0] and greedy.get_ylim()[1] <= 100
    assert all(float(t).is_integer() for t in greedy.get_xticks())
    kl = panels["kl_ref"]
    assert "signed" in kl.get_title() and min(min(line.get_ydata()) for line in kl.get_lines()) < 0  # not clamped


def test_verifier_quality_says_why_a_cell_is_empty(quality):
    q = quality.with_columns(value=pl.when(pl.col("metric") == "outcome_auroc").then(float("nan"))
                             .otherwise(pl.col("value")))
    fig = plot_verifier_quality(q)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "n/a: one outcome only" in texts and "n/a" not in texts


def test_headline_figure_is_the_chosen_beam_against_best_of_n(search):
    # the headline's configuration carries α; the curve labels do not when α does not vary
    fig = plot_headline(search_curves(search), beam_config("base_k4", 0.5))
    assert fig.get_label() == "headline_search"
    assert {line.get_label() for line in fig.axes[0].get_lines()} == {"beam/pqv+pav/base_k4 α=0.5", "bon/orm"}
    assert plot_headline(search_curves(search), "beam/pqv+pav/base_k4").get_label() == "headline_search"
    assert plot_headline(search_curves(search), beam_config("base_k4", 2.0)) is None
    assert plot_headline(search_curves(search), "nothing/like/this", bon_label="neither") is None
    assert plot_headline(search_curves(search), None) is None


def test_oracle_k_draws_each_source_over_k_and_says_why_a_panel_is_empty(search, rl):
    from pavflow.report.compare import oracle_k, rl_comparisons
    from pavflow.report.figures import plot_oracle_k
    from report_data import oracle_rl, oracle_search
    rl = oracle_rl(rl)
    rows = oracle_k(search_curves(pl.concat([search, oracle_search()])), rl, rl_comparisons(rl), 4, 1.0)
    beam, acc, eff = plot_oracle_k(rows, "base", 4).axes
    k, y = beam.lines[0].get_data()
    assert list(k) == [1, 4, 16] and list(y) == [50.0, 100.0, 75.0] and beam.get_xscale() == "log"
    assert [round(v, 1) for v in acc.lines[0].get_data()[1]] == [36.5, 37.5, 34.5]
    assert acc.get_lines()[-1].get_ydata()[0] == pytest.approx(36.5)  # the outcome arm's final accuracy
    per = {c.get_label(): list(np.round(c.lines[0].get_ydata(), 2)) for c in eff.containers}
    assert per == {"per policy sample": [1.0, 1.2, 0.0], "per token (generated + rollout)": [0.33, 0.4, 0.0]}
    # without the oracle runs, the figure still exists (the report lists it) and each panel says why
    empty = plot_oracle_k(None, "base", 4)
    assert isinstance(empty, Figure) and all(not ax.lines and ax.texts[0].get_text().startswith("nothing to draw")
                                             for ax in empty.axes)


def test_plot_data_scaling(tmp_path, quality):
    table = data_scaling(quality, N_SEED, N_MC)
    fig = plot_data_scaling(table)
    assert fig.get_label() == "data_scaling"
    axes = fig.axes
    assert [a.get_title() for a in axes] == list(DATA_SCALING_PANELS.values())
    within = axes[0]
    labels = [t.get_text() for t in within.texts]
    assert sorted(labels) == ["s1m2", "s1m4", "s1m4", "s2m1", "s2m4 (all)"]  # the pqv's 4 points, the pav's 1
    x = {t.get_text(): t.xy[0] for t in within.texts}
    assert x["s1m2"] < 2 < x["s2m1"]  # equal budget side by side, fewer seeds left
    assert x["s2m4 (all)"] == pytest.approx(8, rel=0.05)
    s1m4 = [t.xy[0] for t in within.texts if t.get_text() == "s1m4"]
    assert len(s1m4) == 2 and s1m4[0] != s1m4[1]  # two bases at the same point, drawn apart
    assert within.get_xscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["pav_base_k4.first_pit", "pqv", "m = 1 rollouts per state", "m = 2 rollouts per state",
                      "m = 4 rollouts per state"]
    paths = save(fig, tmp_path)
    assert _is_png(paths[0])


def test_plot_data_scaling_missing(quality):
    assert plot_data_scaling(None) is None
    assert plot_data_scaling(data_scaling(quality.filter(pl.col("subject") == "orm"), N_SEED, N_MC)) is None
