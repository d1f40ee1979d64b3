"""Figures: each function takes tables (schemas in pavflow.data, statistics from report.tables) and
returns a matplotlib Figure labelled with its file stem, or None when its table is missing or empty;
`save` writes it as PNG + SVG. Accuracies are drawn in percent."""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Iterable

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from pavflow.data import N_BINS, ORACLE_K, atomic_file
from pavflow.report.fmt import num, ok, range_str
from pavflow.report.tables import QUALITY_PANELS, alpha_rows, config_label, curve_labels, missing, prover_rows
from pavflow.names import ANALYTIC, data_variant

STYLE = {
    "figure.figsize": (6.4, 4.2), "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.6, "lines.markersize": 4, "svg.hashsalt": "pavflow",
}
_LINESTYLE = {"pass": "--", "majority": ":"}  # oracle and voting baselines drawn apart from verifiers
_MARKERS = "osD^vP*Xh<>p"
RL_PANELS = {  # RL_CURVE column -> (y label, title, scale to display, why it can be empty)
    "test_acc_sampled": ("test accuracy (%)", "Sampled test accuracy (T = 1)", 100, "no sampled evaluation (rl.eval_samples)"),
    "test_acc_greedy": ("test accuracy (%)", "Greedy test accuracy", 100, "no greedy evaluation logged"),
    "pass_at_n": ("pass@N (%)", "Test pass@N (N = rl.eval_samples)", 100, "no sampled evaluation (rl.eval_samples)"),
    "newly_solved": ("% of unsolved at start", "Test problems unsolved at start, now solved", 100,
                     "every test problem was solved at the start"),
    "kl_ref": ("nats per response", "KL to the initial policy\n(one-sample estimate: signed, can be < 0)", 1,
               "kl_ref not logged"),
    "response_tokens": ("tokens", "Mean response length", 1, "no evaluation logged"),
}
PERCENT = {"test_acc_sampled", "test_acc_greedy", "pass_at_n", "newly_solved"}
# why a verifier-quality cell is nan (pavflow.verifiers.metrics): shown instead of a bar
QUALITY_NA = {"brier": "no states", "spearman_progress": "progress constant",
              "outcome_auroc": "one outcome only", "first_error_f1": "no first-error threshold"}

DATA_SCALING_PANELS = {  # DATA_SCALING metric -> title
    "outcome_auroc_within": "Within-problem outcome AUROC of v(s_H)\n(what search needs)",
    "brier": "Brier score vs fresh MC values\n(lower is better)",
}


def _empty(ax, why: str) -> None:
    """Say in the panel why it has nothing to draw."""
    ax.text(0.5, 0.5, f"nothing to draw:\n{why}", transform=ax.transAxes, ha="center", va="center",
            fontsize=9, color="0.35", wrap=True)


def _percent_axis(ax, values) -> None:
    """y limits for accuracies in percent: inside [0, 100], at least 10 points tall."""
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x)], dtype=np.float64)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    pad = max(2.0, 0.08 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
    if hi - lo < 10:
        lo, hi = (max(0.0, hi - 10), max(10.0, hi)) if lo > 0 else (0.0, max(10.0, hi))
    ax.set_ylim(lo, hi)


def _log2_ticks(ax, values=None) -> None:
    """A log2 x axis labelled with plain numbers (1, 2, 4 or 12, 25, 79), at `values` when given."""
    if values is not None:
        ax.set_xticks(sorted(set(values)))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}"))


def _coinciding(ys: dict[str, np.ndarray]) -> list[list[str]]:
    """Groups of labels whose curves are identical (same points), each of two or more."""
    groups: dict[tuple, list[str]] = {}
    for label, y in ys.items():
        groups.setdefault(tuple(np.round(y, 9)), []).append(label)
    return [g for g in groups.values() if len(g) > 1]


def save(fig: Figure, out_dir: str | os.PathLike) -> list[Path]:
    """out_dir/<label>.png and .svg (the SVG without a date: reproducible)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{fig.get_label()}.png", out_dir / f"{fig.get_label()}.svg"]
    with matplotlib.rc_context(STYLE):  # savefig.* and svg.hashsalt are read at save time
        for path, fmt, meta in ((paths[0], "png", None), (paths[1], "svg", {"Date": None})):
            with atomic_file(path) as tmp:
                fig.savefig(tmp, format=fmt, metadata=meta)
    return paths


def _figure(name: str, nrows: int = 1, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    w, h = STYLE["figure.figsize"]
    fig = Figure(figsize=(w * (1 + 0.75 * (ncols - 1)), h * (1 + 0.8 * (nrows - 1))), layout="constrained")
    fig.set_label(name)
    FigureCanvasAgg(fig)
    return fig, np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())


def _colors(labels: Iterable[str]) -> dict[str, tuple]:
    labels = sorted(set(labels))
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _curve_plot(curves: pl.DataFrame | None, x: str, xlabel: str, title: str, name: str) -> Figure | None:
    if missing(curves):
        return None
    c = curves if "label" in curves.columns else curve_labels(curves)  # labelled by the caller (headline)
    lines = c.group_by("label").agg(pl.len()).filter(pl.col("len") > 1)["label"]
    if lines.len():  # single-budget configurations (e.g. prover sweeps) are not curves
        c = c.filter(pl.col("label").is_in(lines.implode()))
    colors = _colors(c["label"])
    data = {lab: c.filter(pl.col("label") == lab).sort(x) for lab in colors}
    # identical curves (e.g. every method at 0%) would hide each other: each gets its own marker and a
    # small horizontal offset (log2 axis), and the figure says so
    shift = {}
    same = _coinciding({lab: np.concatenate([g[x].to_numpy(), 100 * g["acc"].to_numpy()]) for lab, g in data.items()})
    for group in same:
        step = min(0.08, 0.5 / (len(group) - 1))  # in log2 units; neighbouring budgets are >= 1 apart
        for i, lab in enumerate(group):
            shift[lab] = 2 ** (step * (i - (len(group) - 1) / 2))
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = _figure(name)
        for i, (label, g) in enumerate(data.items()):
            xs, method = g[x].to_numpy() * shift.get(label, 1.0), g["method"][0]
            ax.plot(xs, 100 * g["acc"].to_numpy(), marker=_MARKERS[i % len(_MARKERS)], color=colors[label],
                    ls=_LINESTYLE.get(method, "-"), label=label, alpha=0.9, clip_on=False, zorder=3)
            ax.fill_between(xs, 100 * g["ci_low"].to_numpy(), 100 * g["ci_high"].to_numpy(),
                            color=colors[label], alpha=0.12, lw=0)
        ax.set_xscale("log", base=2)
        _log2_ticks(ax, c[x].to_list() if x == "budget" else None)
        _percent_axis(ax, np.concatenate([100 * c["ci_low"].to_numpy(), 100 * c["ci_high"].to_numpy()]))
        # wrapped to the axes' width: a long title (the headline's labels) ran into the legend beside them
        ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title="\n".join(textwrap.wrap(title, 40)))
        if same:
            n = sum(len(g) for g in same)
            ax.annotate(f"{n} curves coincide (groups: {', '.join(str(len(g)) for g in same)}); drawn side by "
                        "side, offset along x, to stay visible", (0, -0.2), xycoords="axes fraction", fontsize=7,
                        color="0.3", va="top")
        fig.legend(loc="outside right upper", title="method/verifier/prover\n(band: 95% CI)",
                   title_fontsize=8)
    return fig


def plot_headline(curves: pl.DataFrame | None, beam: dict | str | None, bon_label: str = "bon/orm") -> Figure | None:
    """The headline comparison: the chosen beam search vs best-of-N (`bon_label`) and pass@N, accuracy vs
    mean generated tokens, 95% CI bands. `beam` is its configuration {method, verifier, prover, alpha}
    (matched on the columns: curve labels carry α only where it varies) or a curve label; None when
    there is no such beam search."""
    if missing(curves) or not beam:
        return None
    c = curve_labels(curves)
    if isinstance(beam, dict):
        beam_label = config_label(beam)
        hit = ((pl.col("method") == beam["method"]) & (pl.col("verifier") == (beam.get("verifier") or ""))
               & (pl.col("prover") == (beam.get("prover") or "")))
        if beam.get("alpha") is not None:
            hit = hit & ((pl.col("alpha") - float(beam["alpha"])).abs() < 1e-9)
        c = c.with_columns(label=pl.when(hit).then(pl.lit(beam_label)).otherwise(pl.col("label")))
    else:
        beam_label = beam
    if beam_label not in c["label"].to_list():
        return None
    c = c.filter(pl.col("label").is_in([beam_label, bon_label, "pass"]))
    return _curve_plot(c, "gen_tokens", "mean generated tokens per problem (log2 scale)",
                       f"Headline: {beam_label} vs {bon_label}", "headline_search")


def plot_accuracy_vs_tokens(curves: pl.DataFrame | None) -> Figure | None:
    """Accuracy vs mean generated tokens per problem (log2), one line per configuration of CURVES, CI band.
    Configurations run at a single budget are left out when any has several."""
    return _curve_plot(curves, "gen_tokens", "mean generated tokens per problem (log2 scale)",
                       "Accuracy vs test-time compute", "acc_vs_tokens")


def plot_accuracy_vs_budget(curves: pl.DataFrame | None) -> Figure | None:
    """Accuracy vs search budget N (log2), one line per configuration, CI band (as above)."""
    return _curve_plot(curves, "budget", "budget N (responses or beams per problem, log2 scale)",
                       "Accuracy vs search budget", "acc_vs_budget")


def _base_policy(rows: pl.DataFrame) -> str:
    """The policy of prover_rows with the most provers (ties: alphabetical)."""
    counts = rows.group_by("policy").agg(pl.col("K").n_unique()).sort(["K", "policy"], descending=[True, False])
    return counts["policy"][0]


def plot_prover_k(curves: pl.DataFrame | None, budget: int, *, base_policy: str | None = None,
                  method: str = "beam") -> Figure | None:
    """Beam-search accuracy vs prover K at a fixed budget, 95% CI error bars.

    Provers BoK(base_policy) form one line per (verifier, alpha); provers over other policies are
    separate markers. `base_policy` defaults to the policy with the most provers.
    """
    if missing(curves):
        return None
    rows = prover_rows(curves, budget, method)
    if rows.height == 0:
        return None
    base_policy = base_policy or _base_policy(rows)
    multi_alpha = rows.group_by("verifier", "prover").agg(pl.col("alpha").n_unique())["alpha"].max() > 1
    series = [f"{v}, prover BoK({base_policy})" if pol == base_policy else
              f"{v}, analytic BoK({base_policy}) from pqv" if pol == ANALYTIC else f"{v}, prover {p}"
              for v, p, pol in rows.select("verifier", "prover", "policy").iter_rows()]
    if multi_alpha:
        series = [f"{s} α={num(a)}" for s, a in zip(series, rows["alpha"])]
    rows = rows.with_columns(series=pl.Series(series, dtype=pl.String))
    colors = _colors(rows["series"])
    markers, offsets = iter("sD^vP*Xh" * 4), iter(range(1, 100))
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = _figure(f"prover_k_N{budget}")
        for series, color in colors.items():
            g = rows.filter(pl.col("series") == series).sort("K")
            acc = 100 * g["acc"].to_numpy()
            yerr = np.vstack([acc - 100 * g["ci_low"].to_numpy(), 100 * g["ci_high"].to_numpy() - acc])
            is_base = g["policy"][0] in (base_policy, ANALYTIC)  # K sweeps: lines; other policies: markers
            shift = 1.0 if is_base else 2 ** (0.08 * next(offsets))  # keep markers off the line
            ax.errorbar(g["K"].to_numpy() * shift, acc, yerr=yerr, color=color, capsize=3, label=series, clip_on=False,
                        marker="o" if is_base else next(markers), ms=5 if is_base else 8,
                        ls="-" if is_base else "none")
        ks = sorted(rows["K"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        _percent_axis(ax, 100 * np.concatenate([rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy()]))
        ax.set(xlabel="prover K (prover = best-of-K of a policy, log2 scale)",
               ylabel="test accuracy (%)", title=f"Beam search accuracy vs prover K at N={budget}")
        ax.legend(loc="best", title="verifier, prover (bars: 95% CI)", title_fontsize=8)
    return fig


def plot_alpha(curves: pl.DataFrame | None, prover: str, budget: int) -> Figure | None:
    """Beam-search test accuracy vs α of the effective reward Q^π + α·A^μ (prover fixed, budget fixed),
    95% CI error bars; α = 0 is the pqv alone."""
    rows = alpha_rows(curves, prover, budget)
    if rows.height == 0:
        return None
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = _figure(f"alpha_N{budget}")
        acc = 100 * rows["acc"].to_numpy()
        yerr = np.vstack([acc - 100 * rows["ci_low"].to_numpy(), 100 * rows["ci_high"].to_numpy() - acc])
        ax.errorbar(rows["alpha"].to_numpy(), acc, yerr=yerr, marker="o", capsize=3, color="C0", clip_on=False,
                    label=f"beam, Q^π + α·A^μ, prover {prover}")
        _percent_axis(ax, 100 * np.concatenate([rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy()]))
        ax.set_xticks(rows["alpha"].unique().sort().to_list())
        ax.set(xlabel="α (α = 0: pqv alone)", ylabel="test accuracy (%)",
               title=f"Beam search accuracy vs α at N={budget}")
        ax.legend(loc="best", title="bars: 95% CI", title_fontsize=8)
    return fig


def plot_rl_curves(bands: pl.DataFrame | None) -> Figure | None:
    """RL_PANELS of tables.rl_seed_bands vs training samples seen, one line per arm; line = mean over
    seeds, band = min..max."""
    if missing(bands):
        return None
    colors = _colors(bands["arm"])
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure("rl_curves", 2, 3)
        for ax, (m, (ylabel, title, scale, why)) in zip(axes.flat, RL_PANELS.items()):
            drawn = {}
            for arm in colors:
                g = bands.filter((pl.col("arm") == arm) & pl.col(f"{m}_mean").is_not_null())
                if g.height:
                    drawn[arm] = g
            # arms with identical curves get their own marker and a small x offset, so none hides another
            span = float(bands["samples_seen"].max() or 1)
            same = _coinciding({a: scale * g[f"{m}_mean"].to_numpy() for a, g in drawn.items()
                                if g.height == max(x.height for x in drawn.values())})
            shift = {a: 0.02 * span * (i - (len(grp) - 1) / 2) for grp in same for i, a in enumerate(grp)}
            for i, (arm, g) in enumerate(drawn.items()):
                xs = g["samples_seen"].to_numpy() + shift.get(arm, 0.0)
                ax.plot(xs, scale * g[f"{m}_mean"].to_numpy(), color=colors[arm], marker=_MARKERS[i % len(_MARKERS)],
                        label=f"{arm} ({g['n_seeds'].max()} seed{'s' if g['n_seeds'].max() > 1 else ''})", alpha=0.9,
                        clip_on=False, zorder=3)
                ax.fill_between(xs, scale * g[f"{m}_min"].to_numpy(), scale * g[f"{m}_max"].to_numpy(),
                                color=colors[arm], alpha=0.15, lw=0)
            ax.set(xlabel="training samples seen (responses)", ylabel=ylabel, title=title)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if m in PERCENT:
                _percent_axis(ax, [scale * v for a, g in drawn.items() for c in ("min", "max")
                                   for v in g[f"{m}_{c}"].to_list()])
            if m == "kl_ref":  # rl.pg logs the mean of log π/π_init over sampled tokens: it can be < 0
                ax.axhline(0, color="k", lw=0.6, ls=":")
            if not drawn:
                _empty(ax, why)
            elif same:
                ax.annotate(f"identical curves offset along x: {', '.join('/'.join(g) for g in same)}",
                            (0.02, 0.94), xycoords="axes fraction", fontsize=6.5, color="0.3", va="top")
            if ax.lines and drawn:
                ax.legend(loc="best", title="arm (band: min..max over seeds)", title_fontsize=8)
        fig.suptitle("Online RL: mean over seeds")
    return fig


def plot_success_histogram(pool: pl.DataFrame | None, hist: pl.DataFrame | None) -> Figure | None:
    """HISTOGRAM of per-problem success rates of sampled responses, one bar series per POOL row (policy,
    split); hatched overlays count problems never (= 0) and always (= 1) solved."""
    if missing(pool) or missing(hist):
        return None
    groups = hist.select("policy", "split").unique(maintain_order=True).rows()
    colors = _colors(p for p, _ in groups)
    width = 0.1 / len(groups)
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = _figure("success_histogram")
        for j, (policy, split) in enumerate(groups):
            g = hist.filter((pl.col("policy") == policy) & (pl.col("split") == split))
            bins, exact = g.head(N_BINS), g.tail(2)["count"].to_list()
            x = bins["lo"].to_numpy() + width * (j + 0.5)
            r = pool.filter((pl.col("policy") == policy) & (pl.col("split") == split)).row(0, named=True)
            spp = range_str(r["min_samples"], r["max_samples"])
            ax.bar(x, bins["count"].to_numpy(), width=width * 0.95, color=colors[policy],
                   label=f"{policy} ({split}, {r['n_problems']} problems, {spp} samples each)")
            ax.bar([x[0], x[-1]], exact, width=width * 0.95, fill=False, hatch="///",
                   edgecolor="k", lw=0.6, label="exactly 0 / exactly 1" if j == 0 else None)
            for xi, n in zip((x[0], x[-1]), exact):
                ax.annotate(f"{n}", (xi, n), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(np.linspace(0, 1, N_BINS + 1))
        ax.set_xlim(-0.02, 1.02)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="per-problem success rate (fraction of sampled responses correct)",
               ylabel="problems (count)", title="Per-problem success rate of sampled responses")
        ax.legend(loc="best")
    return fig


def plot_train_logs(train_log: pl.DataFrame | None) -> Figure | None:
    """Training loss vs step, one panel per model of TRAIN_LOG; validation metric (if logged) on a right axis."""
    if missing(train_log):
        return None
    models = train_log["model"].unique(maintain_order=True).to_list()
    ncols = min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure("train_logs", nrows, ncols)
        for ax, model in zip(axes, models):
            g = train_log.filter(pl.col("model") == model).sort("step")
            loss = g.filter(pl.col("loss").is_not_null())
            ax.plot(loss["step"].to_numpy(), loss["loss"].to_numpy(), color="C0", label="train loss",
                    marker="o" if loss.height <= 12 else None)  # a one-step log is a point, not an empty panel
            ax.set(xlabel="optimizer step", ylabel="training loss", title=model)
            steps = sorted(set(g["step"].to_list()))
            if len(steps) <= 2:
                ax.set_xticks(steps)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            val = g.filter(pl.col("val_value").is_not_null())
            handles = ax.get_lines()
            if val.height:
                metric = val["val_metric"][0] or "validation metric"
                ax2 = ax.twinx()
                handles += ax2.plot(val["step"].to_numpy(), val["val_value"].to_numpy(), color="C1",
                                    marker="o", ls="--", label=f"val {metric}")
                ax2.set_ylabel(f"validation {metric}")
                if "acc" in metric:  # a fraction of problems: inside [0, 1]
                    top = float(val["val_value"].max())
                    ax2.set_ylim(0, min(1.0, max(0.1, 1.1 * top)))
                ax2.spines["right"].set_visible(True)
                ax2.grid(False)
            ax.legend(handles=handles, loc="best")
        for ax in axes[len(models):]:
            ax.set_visible(False)
        fig.suptitle("Training logs")
    return fig


def plot_verifier_quality(quality: pl.DataFrame | None) -> Figure | None:
    """The quality table (stages/quality) as four bar panels, one bar per verifier (oracle rows: the MC
    labels themselves), 95% CI error bars."""
    if missing(quality) or not quality["metric"].is_in(list(QUALITY_PANELS)).any():
        return None
    names = quality.filter(pl.col("metric").is_in(list(QUALITY_PANELS)))["subject"].unique(maintain_order=True).to_list()
    colors = _colors(names)
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure("verifier_quality", 2, 2)
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, max(h, 0.22 * len(names) * 2 + 2))
        for ax, (m, (title, _)) in zip(axes.ravel(), QUALITY_PANELS.items()):
            rows = {r["subject"]: r for r in quality.filter(pl.col("metric") == m).iter_rows(named=True)}
            for i, v in enumerate(names):
                r = rows.get(v)
                if r is None or not ok(r["value"]):
                    why = "not computed" if r is None else QUALITY_NA.get(m, "undefined")
                    ax.annotate(f"n/a: {why}", (0.01, i), xycoords=("axes fraction", "data"), va="center",
                                fontsize=7, color="0.35")
                    continue
                err = None
                if ok(r["ci_low"]) and ok(r["ci_high"]):
                    err = [[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]]
                ax.barh(i, r["value"], color=colors[v], xerr=err, capsize=2, hatch="//" if v.startswith("oracle") else None)
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.set_ylim(len(names) - 0.5, -0.5)  # first verifier on top, every row inside the panel
            ax.set(title=title)
            if m == "outcome_auroc":
                ax.axvline(0.5, color="k", lw=0.8, ls=":")
        fig.suptitle("Verifier quality on held-out val responses vs fresh MC labels (bars: 95% CI)")
    return fig


def plot_calibration(calib: pl.DataFrame | None) -> Figure | None:
    """Reliability curves of CALIBRATION: mean fresh-MC value per bin of predicted value. Left: verifiers of
    Q^pi (orm, pqv and variants, implicit PRMs, the oracle); right: of V^mu (pav, pav_analytic, their oracles)."""
    if missing(calib):
        return None
    is_mu = pl.col("subject").str.starts_with("pav") | pl.col("subject").str.starts_with("oracle_")
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure("calibration", 1, 2)
        for ax, (title, rows) in zip(axes, (("targets Q^π", calib.filter(~is_mu)), ("targets V^μ", calib.filter(is_mu)))):
            names = rows["subject"].unique(maintain_order=True).to_list()
            colors = _colors(names)
            ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls=":")
            for v in names:
                g = rows.filter(pl.col("subject") == v).sort("bin_mid")
                ax.plot(g["mean_pred"].to_numpy(), g["mean_target"].to_numpy(), marker="o", ms=3, lw=1,
                        color=colors[v], label=v, ls="--" if v.startswith("oracle") else "-")
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted value (bin mean)", ylabel="fresh MC value (bin mean)",
                   title=f"Calibration, {title}")
            if names:
                ax.legend(fontsize=6, loc="upper left")
            else:
                _empty(ax, "no verifier of this kind in the study")
    return fig


def plot_bon_diagnosis(top_picks: pl.DataFrame | None, deciles: pl.DataFrame | None) -> Figure | None:
    """Left: the kind of best-of-N's top pick (report.diagnosis.TOP_PICK_KINDS) vs N, stacked, with every
    response of the pool as the first bar. Right: the ORM's accuracy by score decile across problems
    and within a problem (DECILES), 95% CI bars."""
    if missing(top_picks) or missing(deciles):
        return None
    kinds = top_picks["kind"].unique(maintain_order=True).to_list()
    colors = {k: c for k, c in zip(kinds, ([(0.2, 0.6, 0.3, 1.0)] + [matplotlib.colormaps["tab10"](i) for i in (3, 1, 4, 5, 7, 8, 9, 0)]))}
    groups = [None] + [b for b in top_picks["budget"].unique(maintain_order=True).to_list() if b is not None]
    with matplotlib.rc_context(STYLE):
        fig, (left, right) = _figure("bon_diagnosis", 1, 2)
        bottom = np.zeros(len(groups))
        for k in kinds:
            share = {r["budget"]: 100 * r["fraction"] for r in top_picks.filter(pl.col("kind") == k).iter_rows(named=True)}
            y = np.array([share.get(b, 0.0) for b in groups])
            left.bar(range(len(groups)), y, bottom=bottom, color=colors[k], label=k, width=0.8)
            bottom += y
        left.set_xticks(range(len(groups)), ["pool"] + [f"N={b}" for b in groups[1:]], fontsize=8)
        left.set_ylim(0, 100)
        left.set(ylabel="% of test problems (pool: of responses)", title="What best-of-N (ORM) picks")
        left.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        for scope, marker in (("across", "o"), ("within", "s")):
            d = deciles.filter(pl.col("scope") == scope).sort("decile")
            x, y = d["decile"].to_numpy(), 100 * d["acc"].to_numpy()
            err = [y - 100 * d["ci_low"].to_numpy(), 100 * d["ci_high"].to_numpy() - y]
            right.errorbar(x, y, yerr=err, marker=marker, capsize=2,
                           label="across problems" if scope == "across" else "within a problem")
        right.set_xticks(range(1, 11))
        _percent_axis(right, 100 * deciles.select("ci_low", "ci_high").to_numpy())
        right.set(xlabel="ORM score decile (10 = highest)", ylabel="accuracy (%)", title="ORM accuracy by score decile")
        right.legend(loc="best")
        fig.suptitle("Why best-of-N (ORM) falls or rises with N")
    return fig


def plot_oracle_k(rows: pl.DataFrame | None, base_policy: str, budget: int) -> Figure:
    """The oracle provers' K curve (ORACLE_K), free of verifier error: beam-search accuracy at N=`budget`,
    the pav_mc arms' final RL accuracy against the outcome arm, and their sample efficiency per policy
    sample and per token (generated + rollout). BoK(base_policy) is a line over K; provers over other
    policies are markers. 95% CI bars. Panels with nothing to draw say why (the report always has it)."""
    rows = pl.DataFrame(schema=ORACLE_K) if rows is None else rows
    with matplotlib.rc_context(STYLE):
        fig, (beam_ax, acc_ax, eff_ax) = _figure("oracle_k", 1, 3)

        def series(ax, g: pl.DataFrame, y: str, lo: str, hi: str, scale: float, label: str, color, marker="o") -> None:
            for own, part in ((True, g.filter(pl.col("policy") == base_policy)), (False, g.filter(pl.col("policy") != base_policy))):
                for i, (prover, h) in enumerate(part.sort("K").group_by("policy" if own else "prover", maintain_order=True)):
                    h = h.filter(pl.col(y).is_not_null() & pl.col(y).is_not_nan())
                    if not h.height:
                        continue
                    v = scale * h[y].to_numpy()
                    err = np.vstack([v - scale * h[lo].fill_null(np.nan).to_numpy(), scale * h[hi].fill_null(np.nan).to_numpy() - v])
                    err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
                    x = h["K"].to_numpy() * (1.0 if own else 2 ** (0.1 * (i + 1)))  # other policies: off the line
                    ax.errorbar(x, v, yerr=err, color=color, capsize=3, clip_on=False, ls="-" if own else "none",
                                marker=marker if own else _MARKERS[(i + 2) % len(_MARKERS)], ms=5 if own else 8,
                                label=label if own else f"{label}, prover {prover[0]}")

        beam, rl = rows.filter(pl.col("source") == "beam"), rows.filter(pl.col("source") == "rl")
        series(beam_ax, beam, "acc", "ci_low", "ci_high", 100, f"beam, prover BoK({base_policy})", "C0")
        beam_ax.set(ylabel="test accuracy (%)", title=f"Beam search on MC Q^π + α·A^μ, N={budget}")
        series(acc_ax, rl, "acc", "ci_low", "ci_high", 100, f"pav_mc, prover BoK({base_policy})", "C1")
        if rl.height and rl["baseline_acc"].drop_nulls().len():
            acc_ax.axhline(100 * rl["baseline_acc"].drop_nulls()[0], color="0.3", ls="--", lw=1, label="outcome arm (final)")
        acc_ax.set(ylabel="final test accuracy (%, mean over seeds)", title="Online RL with the prover's MC advantages")
        series(eff_ax, rl, "sample_efficiency", "sample_efficiency_ci_low", "sample_efficiency_ci_high", 1,
               "per policy sample", "C2")
        series(eff_ax, rl, "token_efficiency", "token_efficiency_ci_low", "token_efficiency_ci_high", 1,
               "per token (generated + rollout)", "C3", marker="s")
        if eff_ax.containers:
            eff_ax.axhline(1, color="0.3", ls="--", lw=1)
        eff_ax.set(ylabel="× fewer than the outcome arm", title="RL sample efficiency vs the outcome arm")
        for ax, g, why in ((beam_ax, beam, "no beam search with the oracle provers (search.oracle: false)"),
                           (acc_ax, rl, "no pav_mc arm (rl.arms)"), (eff_ax, rl, "no pav_mc arm, or no outcome arm")):
            ks = sorted(set(g["K"].to_list()))
            if not ax.containers:
                _empty(ax, why)
                continue
            ax.set_xscale("log", base=2)
            _log2_ticks(ax, ks)
            ax.set_xlabel("prover K (best-of-K of a policy, log2 scale)")
            ax.legend(loc="best", fontsize=7, title="bars: 95% CI", title_fontsize=7)
        for ax, g in ((beam_ax, beam), (acc_ax, rl)):
            if ax.containers:
                _percent_axis(ax, 100 * np.concatenate([g[c].drop_nulls().drop_nans().to_numpy() for c in ("acc", "ci_low", "ci_high")]
                                                       + [g["baseline_acc"].drop_nulls().to_numpy()]))
        fig.suptitle("Oracle provers: the prover-K curve without verifier error")
    return fig


def plot_data_scaling(table: pl.DataFrame | None) -> Figure | None:
    """Verifier quality vs training data (report.tables.data_scaling): DATA_SCALING_PANELS against the
    budget n·m (seeds × rollouts per state, log2), one colour and line per base verifier; marker by
    rollouts per state m, every point labelled s<n>m<m>; points of equal budget side by side, fewer
    seeds to the left; 95% CI bars."""
    if missing(table):
        return None
    bases = table["base"].unique(maintain_order=True).to_list()
    colors = _colors(bases)
    marker = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(sorted(table["n_mc"].unique().to_list()))}
    # the x of each (base, n, m): equal-budget points of a base spread along log2 x, in order of seeds, and
    # each base a little apart from the others, so no point hides another's bars
    points = table.select("base", "n_seed", "n_mc", "budget").unique().sort("base", "budget", "n_seed")
    points = points.with_columns(i=pl.int_range(pl.len()).over("base", "budget"), k=pl.len().over("base", "budget"))
    shift = {b: 0.04 * (j - (len(bases) - 1) / 2) for j, b in enumerate(bases)}
    x_of = {(b, n, m): budget * 2 ** (0.15 * (i - (k - 1) / 2) + shift[b])
            for b, n, m, budget, i, k in points.iter_rows()}
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure("data_scaling", 1, len(DATA_SCALING_PANELS))
        for ax, (metric, title) in zip(axes, DATA_SCALING_PANELS.items()):
            d = table.filter(pl.col("metric") == metric)
            ax.set(title=title, xlabel="n·m: seeds per problem × rollouts per state (log2 scale)", ylabel=metric)
            if d.height == 0:
                _empty(ax, f"{metric} not computed")
                continue
            for base in bases:
                g = d.filter(pl.col("base") == base).sort("budget", "n_seed")
                xs = [x_of[(base, n, m)] for n, m in g.select("n_seed", "n_mc").iter_rows()]
                ax.plot(xs, g["value"].to_numpy(), color=colors[base], lw=1, alpha=0.6)
                for x, r in zip(xs, g.iter_rows(named=True)):
                    err = None
                    if ok(r["value"]) and ok(r["ci_low"]) and ok(r["ci_high"]):
                        err = [[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]]
                    ax.errorbar([x], [r["value"]], yerr=err, marker=marker[r["n_mc"]], ms=6, ls="none", capsize=2,
                                color=colors[base], clip_on=False)
                    if ok(r["value"]):
                        all_data = " (all)" if r["verifier"] == base else ""
                        ax.annotate(data_variant(r["n_seed"], r["n_mc"]) + all_data, (x, r["value"]), xytext=(4, 3),
                                    textcoords="offset points", fontsize=6, color=colors[base])
            ax.set_xscale("log", base=2)
            _log2_ticks(ax, d["budget"].to_list())
            if metric.startswith("outcome_auroc"):
                ax.axhline(0.5, color="k", lw=0.8, ls=":")
        handles = [Line2D([], [], color=c, label=b) for b, c in colors.items()]
        handles += [Line2D([], [], color="0.3", marker=mk, ls="none", label=f"m = {m} rollouts per state")
                    for m, mk in marker.items()]
        fig.legend(handles=handles, loc="outside right upper", title="base verifier; marker: m\n(bars: 95% CI)",
                   title_fontsize=8)
        fig.suptitle("Verifier quality vs training data (held-out val responses, fresh MC labels)")
    return fig
