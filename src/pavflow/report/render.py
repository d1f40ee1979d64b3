"""summary.md and summary.html: the Headline's numbers as markdown sections (percentages, 95% CIs) and
the same as a standalone HTML page. Nothing here computes a statistic. A part of the study that did
not run (a missing or empty table) is a section saying "not run"."""
from __future__ import annotations

import base64
import html
import math
import os
import re
from pathlib import Path
from typing import Iterable

import polars as pl

from pavflow.data import N_BINS, RL_METRICS, write_text
from pavflow.report.claims import ACCURACY, EFFICIENCY, PROVER, RL_ACCURACY, RL_EFFICIENCY, at_bound
from pavflow.report.power import ALPHA, POWER, TARGET_HALF_WIDTH, mde, se_from_ci
from pavflow.report.fmt import acc_ci, fmt_diff, fmt_eff, num, ok, pct, range_str, tok
from pavflow.report.headline import (EQUAL_COMPUTE_BASELINES, BestProver, Comparison, Headline, chosen_prover,
                                    largest_matched, strongest_rows_of)
from pavflow.names import data_variant
from pavflow.report.tables import (DATA_SCALING_METRICS, QUALITY_COLUMNS, StudyTables, beam_config, config_label,
                                   curve_labels, missing, parse_prover)

NOT_RUN = ["_not run_", ""]


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(str(x) for x in r) + " |" for r in rows] + [""]


def write_summary(out_dir: str | os.PathLike, study: StudyTables, head: Headline,
                  figures: Iterable[str | os.PathLike] | None = None, config: str | None = None) -> None:
    """Write out_dir/summary.md and the same as a standalone page, out_dir/summary.html.

    `figures` defaults to the PNGs already in out_dir. `config` (the resolved configuration as YAML
    text) ends the summary when given."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = summary_markdown(out_dir, study, head, figures, config)
    write_text(out_dir / "summary.md", md)
    write_text(out_dir / "landing.rst", landing_rst(head, study.experiment))
    write_text(out_dir / "summary.html", markdown_html(md, title=f"pavflow: {study.experiment}", images=out_dir))


def summary_markdown(out_dir: Path, t: StudyTables, h: Headline, figures: Iterable[str | os.PathLike] | None = None,
                     config: str | None = None) -> str:
    md = [f"# {t.experiment}", "",
          "Accuracies are % of test problems; 95% CIs are BCa bootstraps over problems (percentile "
          "bootstraps for the efficiency ratios and the quality table).", ""]
    md += _answer_section(h, out_dir)
    md += _pool_sections(h) + _search_section(t, h) + _diagnosis_section(h) + _prover_k_section(t, h)
    if h.comparison is not None:
        md += _comparisons_sections(t, h)
    if h.scorers is not None:
        md += _beam_scorers_section(t, h)
    md += _rl_section(h) + _oracle_k_section(h) + _quality_section(h) + _data_scaling_section(h) + _metrics_section(h)
    md += _figures_section(out_dir, figures)
    if config is not None:
        md += ["## Resolved configuration", "", "```yaml", config.rstrip("\n"), "```", ""]
    return "\n".join(md)


def claim_rows(h: Headline) -> list[list[str]]:
    """One row per claim of the paper (claims.py) and arm: [claim, this study's number, the smallest
    effect this study could detect (MDE: 80% power, 5% two-sided), verdict]; the details and rules are
    in the claims section."""
    out = []
    rows = list(h.comparison.rows.iter_rows(named=True)) if h.comparison is not None else []
    r = largest_matched(h.comparison)
    if r is not None:
        g, lo, hi = r["gain_at_equal_tokens"], r["gain_at_equal_tokens_ci_low"], r["gain_at_equal_tokens_ci_high"]
        out.append([ACCURACY.statement, f"gain at equal tokens, N={r['budget']}: {fmt_diff(g, lo, hi)} points",
                    _mde_points(lo, hi), ACCURACY.verdict(g, lo, hi, r["beam_acc"], r["beam_acc"] - g)])
    elif rows:
        out.append([ACCURACY.statement, "not measurable: no beam budget inside best-of-N's token range", "–",
                    "inconclusive"])
    for r in strongest_rows_of(h.comparison):
        out.append([f"{ACCURACY.statement}: against the strongest baseline at equal {r['cost']} tokens",
                    f"N={r['budget']} ({pct(r['beam_acc'])}%) vs {r['baseline']} at N={r['baseline_budget']} "
                    f"({pct(r['baseline_acc'])}%): {fmt_diff(r['diff'], r['ci_low'], r['ci_high'])} points",
                    _mde_points(r["ci_low"], r["ci_high"]),
                    ACCURACY.verdict(r["diff"], r["ci_low"], r["ci_high"], r["beam_acc"], r["baseline_acc"])])
    if rows:
        r = rows[-1]
        ratio, bound, lo, hi = (r[f"compute_efficiency{s}"] for s in ("", "_bound", "_ci_low", "_ci_high"))
        if ok(ratio):
            out.append([EFFICIENCY.statement, f"compute efficiency, N={r['budget']}: {fmt_eff(ratio, bound, lo, hi)}",
                        "– (a ratio: see its CI)", EFFICIENCY.verdict(ratio, bound, lo, hi)])
        else:
            out.append([EFFICIENCY.statement, f"not computed: beam search at {pct(r['beam_acc'])}% (N={r['budget']}), "
                        "a ratio of zeros", "–", "inconclusive"])
    for where, b in (("search, trained PAVs", h.best_prover), ("search, oracle provers", h.best_mc_prover)):
        if b is not None:
            out.append(_prover_row(where, b, f"at N={b.budget}"))
    for r in h.rl_compare.iter_rows(named=True) if h.rl_compare is not None else ():
        arm, seeds, floor = r["arm"], f"{r['n_seeds']} vs {r['n_seeds_baseline']} seeds", at_bound(r["acc"], r["baseline_acc"])
        diff = (f"{fmt_diff(r['diff'], r['ci_low'], r['ci_high'])} points" if ok(r["ci_low"]) else
                f"{100 * r['diff']:+.1f} points, no CI (it needs 2 seeds per arm and some spread)")
        out.append([RL_ACCURACY.statement, f"{arm}: {diff} ({seeds})", _points(r["mde"]),
                    RL_ACCURACY.verdict(r["diff"], r["ci_low"], r["ci_high"], r["acc"], r["baseline_acc"])])
        eff, elo, ehi = r["sample_efficiency"], r["sample_efficiency_ci_low"], r["sample_efficiency_ci_high"]
        out.append([RL_EFFICIENCY.statement,
                    f"{arm}: not computed: both arms end at {pct(r['acc'])}%" if floor else
                    f"{arm}: not computed: the initial policy is already at the outcome arm's final "
                    f"{pct(r['baseline_acc'])}% (outcome RL did not improve on it)" if not ok(eff) else
                    f"{arm}: {fmt_eff(eff, '=', elo, ehi)} per policy sample" + (" (never reaches the outcome arm's final accuracy)" if eff == 0 else "")
                    + (f"; {fmt_eff(r['token_efficiency'], '=', r['token_efficiency_ci_low'], r['token_efficiency_ci_high'])} "
                       "per token (generated + verifier and rollout tokens)" if ok(r["token_efficiency"]) and eff > 0 else ""),
                    "– (a ratio: see its CI)", "inconclusive" if floor else RL_EFFICIENCY.verdict(eff, "=", elo, ehi)])
    if h.rl_best_prover is not None:
        out.append(_prover_row("RL, pav_mc arms", h.rl_best_prover, "final accuracy"))
    return out


def _points(effect) -> str:
    return f"{100 * effect:.1f} points" if ok(effect) else "–"


def _mde_points(ci_low, ci_high) -> str:
    """From a bootstrap CI's width; '–' when it has none (every paired difference equal: no information)."""
    return _points(mde(se_from_ci(ci_low, ci_high))) if ok(ci_low) and ok(ci_high) and ci_high > ci_low else "–"


def _prover_row(where: str, b: BestProver, at: str) -> list[str]:
    ci = f" [{pct(b.best['ci_low'])}, {pct(b.best['ci_high'])}]" if ok(b.best.get("ci_low")) else ""
    mdes = [_points(r["mde"]) if ok(r.get("mde")) else _mde_points(r["ci_low"], r["ci_high"]) for r in b.minus.values()]
    return [f"{PROVER.statement} ({where})", f"best K = {b.best['K']} of {{{', '.join(str(k) for k in b.sweep)}}} "
            f"({pct(b.best['acc'])}{ci}% {at})", ", ".join(f"vs K={k}: {m}" for k, m in zip(b.minus, mdes)) or "–",
            PROVER.verdict(b)]


def answer_lines(h: Headline) -> list[str]:
    """What the headline compares, in one sentence."""
    c = h.comparison
    if c is None or c.rows.height == 0:
        return ["No headline comparison: it needs per-problem test results of both beam search and best-of-N (ORM)."]
    chosen = "chosen on the validation split" if h.val_choice is not None else "as configured"
    return [f"Beam search **{config_label(c.beam)}** ({chosen}) against best-of-N **{config_label(c.bon)}** on "
            f"{c.rows['n_problems'][0]} test problems; numbers in accuracy points with 95% paired bootstrap CIs."]


def _answer_section(h: Headline, out_dir: Path) -> list[str]:
    md = ["## Answer: the paper's claims at this scale", "", *answer_lines(h), ""]
    rows = claim_rows(h)
    if rows:
        md += _table(["claim (Setlur et al. 2024)", "this study (95% CI)", "smallest detectable effect", "verdict"],
                     [[a, b, m, f"**{v}**"] for a, b, m, v in rows])
        md += [f"Smallest detectable effect: the true difference this study detects with {100 * POWER:g}% power at a "
               f"{100 * ALPHA:g}% two-sided level (MDE); a claimed effect below it cannot be resolved here, which is "
               "not evidence that it is absent. A comparison whose sides are all at 0% (or all at 100%) is inconclusive.", ""]
        md += _sizing_lines(h)
    if (out_dir / "headline_search.png").exists():
        md += ["![headline](headline_search.png)", ""]
    return md + ["Rules and details: *The paper's claims at this scale* below.", ""]


def _sizing_lines(h: Headline) -> list[str]:
    """Is the study sized for a 95% CI of +-TARGET_HALF_WIDTH on an accuracy difference (headline.sizing)?"""
    where = {"search": ("test problems", "`task.n_test`"), "rl": ("seeds per arm", "`rl.seeds`")}
    out = []
    for kind, p in h.power.items():
        items, key = where[kind]
        need = (f"±{100 * TARGET_HALF_WIDTH:g} needs about {p['n_needed']:,} ({key})" if p["n_needed"] else "no CI width to scale")
        out.append(f"{p['what']}: 95% CI ±{100 * p['half_width']:.1f} points on {p['n']} {items}; " + need
                   + (", so this study is sized for it" if p["n_needed"] and p["n_needed"] <= p["n"] else ""))
    if not out:
        return []
    return [f"**Sized for ±{100 * TARGET_HALF_WIDTH:g} points?** " + "; ".join(out) + " (the width shrinks as "
            "1/√n).", ""]


def landing_rst(h: Headline, experiment: str) -> str:
    """The Snakemake report's landing text (workflow/report/workflow.rst includes it): the answer and
    the claim table, as reStructuredText."""
    def cell(x: str) -> str:
        return x.replace("*", "\\*").replace("|", "\\|").replace("`", "\\`")
    out = [f"**{cell(experiment)}: the paper's claims at this scale**", "",
           *[re.sub(r"\*\*(.+?)\*\*", lambda m: f"**{cell(m.group(1))}**", x) for x in answer_lines(h)], ""]
    rows = claim_rows(h)
    if rows:
        out += [".. list-table::", "   :header-rows: 1", "   :widths: 38 32 15 15", "",
                "   * - claim (Setlur et al. 2024)", "     - this study (95% CI)", "     - smallest detectable effect",
                "     - verdict"]
        for a, b, m, v in rows:
            out += [f"   * - {cell(a)}", f"     - {cell(b)}", f"     - {cell(m)}", f"     - **{cell(v)}**"]
        out.append("")
    return "\n".join(out) + "\n"


def _pool_sections(h: Headline) -> list[str]:
    md = ["## Base policy (sampled responses)", ""]
    if h.pool is None:
        return md + NOT_RUN + ["## Per-problem success rate", ""] + NOT_RUN
    ns = sorted(h.pass_at["n"].unique())
    passes = {(r["policy"], r["split"], r["n"]): r["pass_at"] for r in h.pass_at.iter_rows(named=True)}
    rows = [[r["policy"], r["split"], r["n_problems"], range_str(r["min_samples"], r["max_samples"]),
             acc_ci(r["acc"], r["ci_low"], r["ci_high"]), *[pct(passes.get((r["policy"], r["split"], n))) for n in ns]]
            for r in h.pool.iter_rows(named=True)]
    md += _table(["policy", "split", "problems", "samples/problem", "accuracy % [95% CI]",
                  *[f"pass@{N} %" for N in ns]], rows)
    md += ["pass@N: unbiased estimator from the pool, mean over problems.", ""]

    md += ["## Per-problem success rate", ""]
    hist = h.histogram
    groups = hist.select("policy", "split").unique(maintain_order=True).rows()
    cols = {g: hist.filter((pl.col("policy") == g[0]) & (pl.col("split") == g[1])) for g in groups}
    rows = []
    for i, name in enumerate(hist["bin"][: N_BINS + 2]):
        row = [name]
        for g, c in cols.items():
            cnt, tot = c["count"][i], c["count"][:N_BINS].sum()
            row.append(f"{cnt} ({100 * cnt / tot:.1f}%)")
        rows.append(row)
    md += _table(["success rate", *[f"{p} ({s}) problems" for p, s in groups]], rows)
    md += ["Bins are [lo, hi); the last is closed. '= 0' and '= 1' are also counted in the first "
           "and last bins.", ""]
    return md


def _search_section(t: StudyTables, h: Headline) -> list[str]:
    md = [f"## Best-of-N (ORM) vs beam search (PAV, prover={t.prover})", ""]
    sel = h.search
    if sel is None:
        return md + NOT_RUN
    labels = sel["label"].unique(maintain_order=True).to_list()
    cell = {(r["label"], r["budget"]): r for r in sel.iter_rows(named=True)}
    rows = []
    for N in sorted(sel["budget"].unique()):
        row = [N]
        for lab in labels:
            r = cell.get((lab, N))
            row += [acc_ci(r["acc"], r["ci_low"], r["ci_high"]), tok(r["gen_tokens"])] if r else ["–", "–"]
        rows.append(row)
    md += _table(["N", *[c for lab in labels for c in (f"{lab} acc % [95% CI]", f"{lab} gen tokens")]], rows)
    if sel["n_problems"].n_unique() > 1:
        md += [f"**Warning:** cells cover different numbers of problems "
               f"({range_str(sel['n_problems'].min(), sel['n_problems'].max())}).", ""]
    for g in h.gains.iter_rows(named=True):
        best = f"{g['bon']}'s best accuracy ({pct(g['bon_best_acc'])}% at N={g['bon_best_budget']})"
        if g["gain"] is not None:
            md.append(f"- At N={g['bon_budget']}: {g['beam']} − {g['bon']} = {100 * g['gain']:+.1f} points.")
        if g["bon_best_acc"] == 0:
            md.append(f"- Compute efficiency not computed: {g['bon']} solves no problem at any budget (0%), so any "
                      "method 'reaches' it at no cost.")
        elif g["compute_efficiency"] is not None:
            md.append(f"- {g['beam']} reaches {best} with {tok(g['beam_tokens'])} mean generated tokens vs "
                      f"{tok(g['bon_best_tokens'])}: {g['compute_efficiency']:.2f}× compute efficiency "
                      "(point estimates; see the CIs above).")
        else:
            md.append(f"- {g['beam']} does not reach {best} at any budget run.")
    return md + ["", "Tokens are mean generated (policy) tokens per problem; verifier tokens not included.", ""]


def _diagnosis_section(h: Headline) -> list[str]:
    md = ["## Why best-of-N (ORM) falls or rises with N", "",
          "What best-of-N picks at each N: the top-scored response of each test problem, correct or its first "
          "error (the task's own step checker). 'pool': every sampled response, what a random pick is drawn "
          "from.", ""]
    if h.top_picks is None:
        return md + NOT_RUN
    t = h.top_picks
    budgets = [b for b in t["budget"].unique(maintain_order=True).to_list() if b is not None]
    share = {(r["budget"], r["kind"]): r["fraction"] for r in t.iter_rows(named=True)}
    kinds = t["kind"].unique(maintain_order=True).to_list()
    md += _table(["top pick %", "pool", *[f"N={n}" for n in budgets]],
                 [[k, pct(share[(None, k)]), *[pct(share[(n, k)]) for n in budgets]] for k in kinds])
    top, errors = budgets[-1], [k for k in kinds if k != "correct"]
    worst = max(errors, key=lambda k: share[(top, k)], default=None)
    if worst is not None and share[(top, worst)] > 0:
        md += [f"At N = {top} the top pick is correct {pct(share[(top, 'correct')])}% of the time, against "
               f"{pct(share[(None, 'correct')])}% for a random response; its most common error is "
               f"{worst} ({pct(share[(top, worst)])}% of problems, {pct(share[(None, worst)])}% of the pool).", ""]
    d = h.deciles
    md += ["ORM accuracy by score decile (10 = highest scores), across the pool and within each problem "
           "(responses ranked against the other responses to the same problem). Best-of-N needs the "
           "within-problem deciles to rise: a verifier that only ranks problems by difficulty rises "
           "across and stays flat within. 95% CIs: bootstrap over problems.", ""]
    cell = {(r["scope"], r["decile"]): r for r in d.iter_rows(named=True)}
    rows = [[j, *[acc_ci(c["acc"], c["ci_low"], c["ci_high"]) if (c := cell.get((s, j))) else "–"
                  for s in ("across", "within")]] for j in sorted({k[1] for k in cell})]
    return md + _table(["decile", "accuracy % across problems", "accuracy % within a problem"], rows) + [""]


def _prover_k_section(t: StudyTables, h: Headline) -> list[str]:
    md = [f"## Beam search accuracy vs prover K (N={t.k_budget})", ""]
    if h.prover_k is None:
        return md + NOT_RUN
    return md + _table(["prover", "policy", "K", "verifier", "α", "accuracy % [95% CI]", "gen tokens", "problems"],
                       [[r["prover"], r["policy"], r["K"], r["verifier"], num(r["alpha"]),
                         acc_ci(r["acc"], r["ci_low"], r["ci_high"]), tok(r["gen_tokens"]), r["n_problems"]]
                        for r in h.prover_k.iter_rows(named=True)])


def _comparisons_sections(t: StudyTables, h: Headline) -> list[str]:
    chosen_by = ("α and prover chosen on the validation split" if t.choice is not None else
                 "the configured search.prover and search.alpha; no validation choice was run")
    md = _comparison_section(h.comparison, chosen_by)
    if h.configured is not None:
        md += _comparison_section(h.configured, "the configured search.prover and search.alpha, for reference: "
                                  "not chosen on validation",
                                  title="For reference: the configured beam search (PAV) vs best-of-N (ORM)")
    md += _alpha_section(t, h) + _val_section(h) + _claims_section(h) + all_configurations_section(t.curves)
    return md


def _comparison_section(c: Comparison, chosen_by: str,
                        title: str = "Headline: beam search (PAV) vs best-of-N (ORM) at equal compute") -> list[str]:
    md = [f"## {title}", ""]
    if c.rows.height == 0:
        return md + NOT_RUN
    md += [f"Beam search: **{config_label(c.beam)}** ({chosen_by}); baseline: **{config_label(c.bon)}**. "
           "Differences are in accuracy points with 95% paired bootstrap CIs over the same problems. "
           "`gain_at_equal_tokens`: beam minus best-of-N interpolated (log2 tokens) at beam's mean generated "
           "tokens. `compute_efficiency`: tokens best-of-N needs to reach beam's accuracy (interpolated on its "
           "measured curve) over beam's tokens; '>' when it never reaches it (lower bound), '≤' when it is "
           "already there at N=1; its CI resamples problems, ∞ when best-of-N often never gets there.", ""]
    rows = [[r["budget"], pct(r["beam_acc"]), tok(r["beam_gen_tokens"]), pct(r["bon_acc_same_n"]),
             tok(r["bon_gen_tokens_same_n"]),
             fmt_diff(r["gain_same_n"], r["gain_same_n_ci_low"], r["gain_same_n_ci_high"]),
             fmt_diff(r["gain_at_equal_tokens"], r["gain_at_equal_tokens_ci_low"], r["gain_at_equal_tokens_ci_high"]),
             fmt_eff(r["compute_efficiency"], r["compute_efficiency_bound"], r["compute_efficiency_ci_low"],
                     r["compute_efficiency_ci_high"])] for r in c.rows.iter_rows(named=True)]
    md += _table(["N", "beam acc %", "beam gen tokens", "BoN acc % (same N)", "BoN gen tokens", "gain same N (points) "
                  "[95% CI]", "gain_at_equal_tokens [95% CI]", "compute_efficiency [95% CI]"], rows)
    md += [f"Problems: {c.rows['n_problems'][0]}.", ""]
    return md + _paired_section(c) + _strongest_section(c)


def _paired_section(c: Comparison) -> list[str]:
    if c.paired is None:
        return []
    md = ["### Paired comparisons", ""]
    if c.paired.height == 0:
        return md + NOT_RUN
    md += _table(["method − baseline", "N", "method acc %", "baseline acc %", "difference (points) [95% CI]",
                  "problems"],
                 [[f"{r['method']} − {r['baseline']}", r["budget"], pct(r["method_acc"]), pct(r["baseline_acc"]),
                   fmt_diff(r["diff"], r["ci_low"], r["ci_high"]), r["n_problems"]]
                  for r in c.paired.iter_rows(named=True)])
    return md + ["Same budget N, same problems; the pqv alone (α = 0) is run at the prover-K budget only.", ""]


def _baselines() -> str:
    """The configurations a search claim is judged against at equal compute, as the tables label them."""
    return ", ".join(config_label(b) for b in EQUAL_COMPUTE_BASELINES)


def _strongest_section(c: Comparison) -> list[str]:
    if c.strongest is None or c.strongest.height == 0:
        return []
    md = ["### Against the strongest baseline at equal compute", "",
          f"At each N, beam search minus the most accurate of {_baselines()} at any budget whose mean tokens are at "
          "most beam search's: a baseline whose accuracy falls with N is judged by its best point. Tokens are the "
          "policy's generated tokens, or those plus the verifier's. The strongest is picked on the same test "
          "problems, which if anything favours the baseline.", ""]
    rows = [[r["cost"], r["budget"], pct(r["beam_acc"]), tok(r["beam_tokens"]),
             f"{r['baseline']} N={r['baseline_budget']}" if r["baseline"] else "none as cheap",
             pct(r["baseline_acc"]) if r["baseline"] else "–", tok(r["baseline_tokens"]) if r["baseline"] else "–",
             fmt_diff(r["diff"], r["ci_low"], r["ci_high"]) if r["baseline"] else "–", r["n_candidates"]]
            for r in c.strongest.iter_rows(named=True)]
    return md + _table(["tokens counted", "N", "beam acc %", "beam tokens", "strongest baseline", "its acc %",
                        "its tokens", "beam − it (points) [95% CI]", "baselines as cheap"], rows)


def _alpha_section(t: StudyTables, h: Headline) -> list[str]:
    md = [f"## Beam search accuracy vs α (prover {t.prover}, N={t.k_budget})", ""]
    if h.alpha.height == 0:
        return md + NOT_RUN
    return md + _table(["α", "test accuracy % [95% CI]", "gen tokens", "verifier tokens", "problems"],
                       [[num(r["alpha"]) + (" (pqv alone)" if r["alpha"] == 0 else ""),
                         acc_ci(r["acc"], r["ci_low"], r["ci_high"]), tok(r["gen_tokens"]),
                         tok(r["verifier_tokens"]), r["n_problems"]] for r in h.alpha.iter_rows(named=True)])


def _val_section(h: Headline) -> list[str]:
    md = ["## Choice of α and prover on the validation split", ""]
    if h.val_curves is None:
        return md + NOT_RUN
    vc, choice = h.val_curves, h.val_choice
    rows = [[p or "– (pqv alone)", num(a), acc_ci(acc, lo, hi), n]
            for p, a, acc, lo, hi, n in vc.sort(["prover", "alpha"]).select(
                "prover", "alpha", "acc", "ci_low", "ci_high", "n_problems").iter_rows()]
    md += _table(["prover", "α", "val accuracy % [95% CI]", "val problems"], rows)
    md += [f"Chosen on val (N={choice['budget']}, highest accuracy; ties to smaller α, then smaller K): "
           f"**prover {chosen_prover(choice)}, α = {num(choice['alpha'])}** ({pct(choice['val_acc'])}% on "
           f"{choice['n_problems']} val problems). Its test numbers are the headline above.", ""]
    m = h.val_margin
    if m is not None:
        runner = f"prover {m['runner_prover'] or 'none (pqv alone)'}, α = {num(m['runner_alpha'])}"
        md += [f"Chosen minus the runner-up ({runner}) on the val problems: "
               f"{fmt_diff(m['diff'], m['ci_low'], m['ci_high'])} points (paired). "
               + (f"A 95% CI as narrow as that margin needs about {m['n_needed']:,} val problems "
                  f"(`search.val_problems`; this study has {m['n_problems']})." if m["n_needed"] else
                  "The two are tied on average: no val set resolves a zero margin."), ""]
    at = vc.filter(((pl.col("alpha") - choice["alpha"]).abs() < 1e-12) & (pl.col("prover") != ""))
    if choice["alpha"] and at.height > 1:  # the prover-K curve at the chosen alpha, where the choice is made
        ks = sorted(((parse_prover(p)[1] or 0, p, acc, lo, hi) for p, acc, lo, hi in
                     at.select("prover", "acc", "ci_low", "ci_high").iter_rows()), key=lambda r: (r[0], r[1]))
        md += [f"Val accuracy by prover at the chosen α = {num(choice['alpha'])}: "
               + ", ".join(f"{p} {acc_ci(acc, lo, hi)}%" for _, p, acc, lo, hi in ks) + ".", ""]
    return md


def _claims_section(h: Headline) -> list[str]:
    """The paper's claims against this study's numbers, with the rule behind each verdict."""
    md = ["## The paper's claims at this scale", ""]
    if h.val_choice is not None and h.val_choice["alpha"] == 0:
        md.append("- Validation chose α = 0: the PAV term did not help beam search on the validation problems, "
                  "so the 'beam search with PAVs' below is beam search on the PQV alone (the configured PAV's "
                  "comparison is in the reference table above).")
    rows = list(h.comparison.rows.iter_rows(named=True))  # by budget
    r = largest_matched(h.comparison)
    if r is not None:
        g, lo, hi = r["gain_at_equal_tokens"], r["gain_at_equal_tokens_ci_low"], r["gain_at_equal_tokens_ci_high"]
        md.append(f"- **{ACCURACY.statement}**: at the largest budget with matched tokens (N={r['budget']}) "
                  f"gain_at_equal_tokens = {fmt_diff(g, lo, hi)} points: **{ACCURACY.verdict(g, lo, hi, r['beam_acc'], r['beam_acc'] - g)}** "
                  f"(rule: {ACCURACY.rule}).")
    else:
        md.append("- Accuracy gain at equal tokens: not measurable (no budget of beam search falls inside "
                  "best-of-N's measured token range).")
    if len(rows) > 1 and rows[-1]["beam_acc"] < rows[0]["beam_acc"]:
        md.append(f"- Caveat: beam search accuracy falls as N grows ({pct(rows[0]['beam_acc'])}% at "
                  f"N={rows[0]['budget']}, {pct(rows[-1]['beam_acc'])}% at N={rows[-1]['budget']}): the verifiers "
                  "lose to plain sampling here, and a gain over best-of-N at large N compares two degrading curves.")
    for r in strongest_rows_of(h.comparison):
        v = ACCURACY.verdict(r["diff"], r["ci_low"], r["ci_high"], r["beam_acc"], r["baseline_acc"])
        md.append(f"- **{ACCURACY.statement}**, judged against the strongest baseline at equal {r['cost']} tokens "
                  f"(the most accurate of {_baselines()} at any budget as cheap as beam search): at N={r['budget']}, "
                  f"beam search {pct(r['beam_acc'])}% minus {r['baseline']} at "
                  f"N={r['baseline_budget']} {pct(r['baseline_acc'])}% = {fmt_diff(r['diff'], r['ci_low'], r['ci_high'])} "
                  f"points: **{v}** (the same rule).")
    if rows:
        r = rows[-1]
        ratio, bound, lo, hi = (r[f"compute_efficiency{s}"] for s in ("", "_bound", "_ci_low", "_ci_high"))
        effs = ", ".join(f"N={x['budget']}: {fmt_eff(x['compute_efficiency'], x['compute_efficiency_bound'])}"
                         for x in rows)
        if not ok(ratio):
            md.append(f"- **{EFFICIENCY.statement}**: not computed at N={r['budget']}: beam search solves no "
                      f"problem there ({pct(r['beam_acc'])}%), and every curve starts at 0: **inconclusive**.")
        else:
            md.append(f"- **{EFFICIENCY.statement}**: at N={r['budget']}, compute_efficiency = "
                      f"{fmt_eff(ratio, bound, lo, hi)} (all budgets: {effs}): "
                      f"**{EFFICIENCY.verdict(ratio, bound, lo, hi)}** (rule: {EFFICIENCY.rule(ok(lo) and ok(hi))}).")
    if h.best_prover is not None:
        b = h.best_prover
        md.append(f"- **{PROVER.statement}**: best K = {b.best['K']}; **{PROVER.verdict(b)}** (rule: {PROVER.rule}).")
        md += _best_prover_lines(b)
    if h.best_mc_prover is not None:
        b = h.best_mc_prover
        md.append(f"- **{PROVER.statement}** (beam search with the oracle provers, fresh MC rollouts, no verifier "
                  f"error): best K = {b.best['K']}; **{PROVER.verdict(b)}**.")
        md += _best_prover_lines(b)
    if h.rl_compare is not None and h.rl_compare.height:
        md += [f"- **{RL_ACCURACY.statement}** (rule: {RL_ACCURACY.rule}; Welch t CI over seeds) and "
               f"**{RL_EFFICIENCY.statement}** (rule: {RL_EFFICIENCY.rule(True)}; bootstrap over seeds): one row "
               "per arm in the table above, the outcome arm as the baseline."]
    if h.rl_best_prover is not None:
        b = h.rl_best_prover
        md.append(f"- **{PROVER.statement}** (RL with the oracle provers, `pav_mc` arms, final accuracy): best K = "
                  f"{b.best['K']}; **{PROVER.verdict(b)}**; "
                  + "; ".join(f"K = {b.best['K']} − K = {k}: {fmt_diff(r['diff'], r['ci_low'], r['ci_high'])} points"
                              for k, r in b.minus.items()) + ".")
    return md + [""]


def _best_prover_lines(b: BestProver) -> list[str]:
    best = b.best
    md = [f"- Best prover at N={b.budget}: BoK({b.policy}) with **K = {best['K']}** "
          f"({acc_ci(best['acc'], best['ci_low'], best['ci_high'])}%)."]
    md += [f"- K = {best['K']} − K = {k}: {fmt_diff(r['diff'], r['ci_low'], r['ci_high'])} points "
           "(paired, same problems)." for k, r in b.minus.items()]
    return md + [""]


def all_configurations_section(curves: pl.DataFrame | None) -> list[str]:
    md = ["## Every search configuration (test)", ""]
    if missing(curves):
        return md + NOT_RUN
    c = curve_labels(curves).sort(["method", "verifier", "prover", "alpha", "budget"])
    return md + _table(["method/verifier/prover", "N", "accuracy % [95% CI]", "gen tokens", "verifier tokens",
                        "problems"],
                       [[r["label"], r["budget"], acc_ci(r["acc"], r["ci_low"], r["ci_high"]), tok(r["gen_tokens"]),
                         tok(r["verifier_tokens"]), r["n_problems"]] for r in c.iter_rows(named=True)]) + [
        "pass = pass@N (the ceiling of sampling); `<verifier>:<agg>` = a PRM's step values aggregated by "
        "last / min / prod / mean; beam/pqv = the pqv alone (α = 0); beam/oracle = fresh MC rollouts per "
        "candidate (upper bound; its rollout tokens are its verifier tokens).", ""]


def _beam_scorers_section(t: StudyTables, h: Headline) -> list[str]:
    """Every beam-search scorer run at N = search.k_budget, paired against the configured headline beam search."""
    md = [f"## Beam search scorers at N={t.k_budget} (test)", ""]
    if h.scorers.height == 0:
        return md + NOT_RUN
    out = [[r["label"], acc_ci(r["acc"], r["ci_low"], r["ci_high"]), tok(r["gen_tokens"]),
            fmt_diff(r["diff"], r["diff_ci_low"], r["diff_ci_high"]), r["n_problems"]]
           for r in h.scorers.iter_rows(named=True)]
    ref = config_label(beam_config(t.prover, t.alpha))
    return md + _table(["scorer", "accuracy % [95% CI]", "gen tokens", f"− {ref} (paired, points)", "problems"], out)


def _rl_section(h: Headline) -> list[str]:
    md = ["## Online RL: final test metrics", ""]
    if h.rl_final is None:
        return md + NOT_RUN
    means = {r["arm"]: r for r in h.rl_arms.iter_rows(named=True)}
    rows = []
    for (arm,), g in h.rl_final.group_by("arm", maintain_order=True):
        row = [arm, ", ".join(sorted({p or "–" for p in g["prover"]})),
               ", ".join(sorted({num(a) for a in g["alpha"]})), g.height,
               range_str(g["samples_seen"].min(), g["samples_seen"].max())]
        for m in RL_METRICS[:4]:  # accuracies, in %, with each seed's
            vals = g[m].fill_nan(None).drop_nulls()
            row.append(pct(means[arm][m]) + (f" ({', '.join(pct(v) for v in vals)})" if vals.len() > 1 else ""))
        rows.append(row + [num(means[arm][m]) for m in RL_METRICS[4:]])
    md += _table(["arm", "prover", "α", "seeds", "samples seen", "sampled acc % (per seed)",
                  "greedy acc %", "pass@N %", "newly solved %", "KL to init (nats)", "response tokens"], rows)
    for r in h.rl_stopped.iter_rows(named=True):
        md += [f"- **{r['arm']} seed {r['seed']} stopped by a guardrail at update {r['update']}**: "
               f"{r['stop_reason']}", ""]
    p = h.rl_plateau
    if p is not None:
        rising = ok(p["ci_low"]) and p["ci_low"] > 0
        change = fmt_diff(p["change"], p["ci_low"], p["ci_high"]) if ok(p["ci_low"]) else f"{100 * p['change']:+.1f}"
        md += [f"**Converged?** The {p['arm']} arm's {p['metric']} changed by {change} "
               f"points over its last {round(100 * p['tail'])}% of samples ({p['from_samples']}→{p['to_samples']}; "
               f"mean over {p['n_seeds']} seeds, t CI): "
               + ("**still rising**: RL stopped before it converged, so the arms are compared mid-training (more "
                  "rl.updates)." if rising else
                  "no rise the seeds resolve." if ok(p["ci_low"]) else "no CI (it needs 2 seeds with some spread)."), ""]
    eff = h.rl_efficiency
    if eff is not None:
        reached = math.isfinite(eff["samples_needed"])
        md += [f"**Sample efficiency** (`{eff['treated']}` over `{eff['baseline']}`, {eff['metric']}): "
               f"the {eff['baseline']} arm ends at {pct(eff['target_acc'])}% (mean of {eff['n_seeds'][0]} seeds); "
               + (f"the {eff['treated']} arm's seed mean is there before any update, so the {eff['baseline']} arm "
                  "did not rise above the initial policy and there is no sample efficiency to measure."
                  if eff["samples_needed"] == 0 else
                  f"the {eff['treated']} arm's seed mean first reaches it after {eff['samples_needed']:.0f} samples: "
                  f"**{eff['sample_efficiency']:.2f}×** fewer [95% CI over seeds {eff['ci_low']:.2f}, "
                  f"{eff['ci_high']:.2f}]." if reached else
                  f"the {eff['treated']} arm's seed mean never reaches it (ratio < 1; CI over seeds "
                  f"[{eff['ci_low']:.2f}, {eff['ci_high']:.2f}])."), ""]
    return md


def _oracle_k_section(h: Headline) -> list[str]:
    md = ["## Oracle provers: the prover-K curve without verifier error", "",
          "Beam search scored by fresh MC rollouts (Q^π + α·A^μ, `search_beam_mc`; 95% CI over problems) and RL "
          "with the prover's MC advantages (`pav_mc` arms; final accuracy, t CI over seeds; minus the outcome "
          "arm, Welch CI; sample efficiency over the outcome arm, bootstrap CI over seeds, per policy sample and "
          "per token: generated plus rollout tokens). No learned verifier enters either.", ""]
    if h.oracle_k is None:
        return md + NOT_RUN
    rows = [[r["source"], r["prover"], r["K"], acc_ci(r["acc"], r["ci_low"], r["ci_high"]), r["n"],
             fmt_diff(r["diff"], r["diff_ci_low"], r["diff_ci_high"]),
             fmt_eff(r["sample_efficiency"], "=", r["sample_efficiency_ci_low"], r["sample_efficiency_ci_high"]),
             fmt_eff(r["token_efficiency"], "=", r["token_efficiency_ci_low"], r["token_efficiency_ci_high"]),
             tok(r["gen_tokens"]), tok(r["verifier_tokens"])] for r in h.oracle_k.iter_rows(named=True)]
    md += _table(["source", "prover", "K", "accuracy % [95% CI]", "problems / seeds", "− outcome arm (points)",
                  "sample efficiency", "token efficiency", "gen tokens", "rollout tokens"], rows)
    for source, g in h.oracle_k.group_by("source", maintain_order=True):
        ks = sorted(set(g["K"].to_list()))
        if len(ks) < 3:
            md.append(f"- {source[0]}: {len(ks)} K{'s' if len(ks) > 1 else ''} ({', '.join(map(str, ks))}): a K curve "
                      "needs at least three to show an interior best (the claims section judges it).")
    return md + ([""] if md[-1] else [])


def _metric_rows(cells: dict, columns, counts=()) -> list[list[str]]:
    """One row per subject of metric_cells: value [95% CI] per metric in `columns` ('–' when absent;
    metrics in `counts` as integers)."""
    rows = []
    for s in dict.fromkeys(s for s, _ in cells):
        row = [s]
        for m in columns:
            r = cells.get((s, m))
            row.append(f"{int(r['value']):,}" if m in counts and r is not None and ok(r["value"]) else _value_ci(r))
        rows.append(row)
    return rows


def _value_ci(r: dict | None) -> str:
    """A METRICS-like row's value [95% CI] to 3 decimals; '–' when absent."""
    if r is None or not ok(r["value"]):
        return "–"
    ci = f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if ok(r["ci_low"]) and ok(r["ci_high"]) else ""
    return f"{r['value']:.3f}{ci}"


def _quality_section(h: Headline) -> list[str]:
    md = ["## Verifier quality (held-out val responses, fresh MC labels as ground truth)", "",
          "Brier and ECE against fresh MC values of each verifier's own target (V^μ of its prover for pav, "
          "Q^π otherwise); Spearman of predicted vs MC progress per step; outcome AUROC of the final value; "
          "first-error F1 (ProcessBench: harmonic mean of exact first-error accuracy on erroneous responses "
          "and of no-error accuracy on the others; threshold fitted on train). `oracle` rows are the "
          "training labels themselves (a first MC pool) judged by the fresh pool: the MC-noise floor. "
          "`label_rollouts`: MC rollouts behind the train targets. 95% CIs: bootstrap over responses.", ""]
    if h.quality is None:
        return md + NOT_RUN
    md += _table(["verifier", *QUALITY_COLUMNS], _metric_rows(h.quality, QUALITY_COLUMNS, counts=("label_rollouts",)))
    for m, best in h.best_quality.items():
        md.append(f"- Best on {m.replace('_', ' ')}: **{best['subject']}** ({best['value']:.3f}"
                  + (f", CI [{best['ci_low']:.3f}, {best['ci_high']:.3f}]" if ok(best["ci_low"]) else "") + ").")
    lines = [f"- {a} − {trained}: " + ", ".join(f"{m} {d:+.3f}" for m, d in diffs)
             for a, trained, diffs in h.analytic]
    if lines:
        md += ["", "Analytic PAV (1 − (1 − pqv)^K, untrained) minus the trained pav of the same K "
               "(Brier: negative is better; the others: positive is better):", ""] + lines
    return md + [""]


def _data_scaling_section(h: Headline) -> list[str]:
    md = ["## Verifier quality vs training data (seeds × rollouts per state)", "",
          "Verifiers trained on the first n seeds of each train problem and m of the MC rollouts of each of their "
          "states (`.s<n>m<m>`), beside the same verifier on all the data; n·m: the rollouts per train problem at "
          "each step depth (equal n·m: the same budget spent on more seeds or on more rollouts per state); label "
          "rollouts: the MC rollouts its train targets cost. Quality as in the table above, 95% CIs over the val "
          "responses (over problems for the within-problem AUROC); one training run per point, so training noise "
          "is not in them.", ""]
    d = h.data_scaling
    if d is None:
        return md + NOT_RUN
    shown = DATA_SCALING_METRICS[:3]
    cell = {(r["verifier"], r["metric"]): r for r in d.iter_rows(named=True)}
    points = d.select("base", "verifier", "n_seed", "n_mc", "budget", "label_rollouts").unique(maintain_order=True)
    md += _table(["base", "verifier", "seeds n", "rollouts per state m", "n·m", "label rollouts",
                  *[f"{m} [95% CI]" for m in shown]],
                 [[b, v + (" (all data)" if v == b else ""), n, m, budget, f"{int(cost):,}" if ok(cost) else "–",
                   *[_value_ci(cell.get((v, x))) for x in shown]] for b, v, n, m, budget, cost in points.iter_rows()])
    for base in d["base"].unique(maintain_order=True):
        md += [f"- {line}" for line in _data_scaling_lines(d.filter(pl.col("base") == base), base)]
    return md + [""]


def _data_scaling_lines(d: pl.DataFrame, base: str) -> list[str]:
    """What the curve of one base shows on DATA_SCALING_METRICS[0] (higher is better): its change from the
    smallest to the largest budget, and at each budget run with several points, more seeds against more
    rollouts per state."""
    metric = DATA_SCALING_METRICS[0]
    pts = [r for r in d.filter(pl.col("metric") == metric).sort("budget", "n_seed").iter_rows(named=True)
           if ok(r["value"])]
    name = lambda r: data_variant(r["n_seed"], r["n_mc"])  # noqa: E731
    at = lambda r: f"{r['value']:.3f} at n·m = {r['budget']} ({name(r)})"  # noqa: E731
    if len(pts) < 3:
        return [f"**{base}**: {len(pts)} point(s) with {metric}; the curve needs at least 3 to show how quality "
                "grows with data (more `.s<n>m<m>` variants in `sweep.label_variants`)."]
    lo, hi = pts[0], pts[-1]
    diff = hi["value"] - lo["value"]
    trend = "rises" if diff > 0 else "falls" if diff < 0 else "does not change"
    out = [f"**{base}**: {metric} {trend} from {at(lo)} to {at(hi)} ({diff:+.3f}; {_ci_overlap(lo, hi)})."]
    for budget in dict.fromkeys(r["budget"] for r in pts):
        same = [r for r in pts if r["budget"] == budget]
        if len(same) > 2:  # name every point and the best, not only the two ends
            best, worst = max(same, key=lambda r: r["value"]), min(same, key=lambda r: r["value"])
            out.append(f"{base} at n·m = {budget}: " + ", ".join(f"{name(r)} {r['value']:.3f}" for r in same)
                       + f": {name(best)} ranks best (against {name(worst)}: {_ci_overlap(best, worst)}).")
        elif len(same) == 2:
            rollouts, seeds = same  # fewer and more seeds
            better = ("more seeds" if seeds["value"] > rollouts["value"] else
                      "more rollouts per state" if seeds["value"] < rollouts["value"] else "neither")
            out.append(f"{base} at n·m = {budget}: {name(rollouts)} {rollouts['value']:.3f} vs {name(seeds)} "
                       f"{seeds['value']:.3f}: {better} ranks better ({_ci_overlap(rollouts, seeds)}).")
    return out


def _ci_overlap(a: dict, b: dict) -> str:
    if not all(ok(r[c]) for r in (a, b) for c in ("ci_low", "ci_high")):
        return "no CI"
    return "95% CIs disjoint" if a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"] else "95% CIs overlap"


def _metrics_section(h: Headline) -> list[str]:
    md = ["## Verifier training jobs: val quality against their own targets", ""]
    if h.verifiers is None:
        return md + NOT_RUN
    names = list(dict.fromkeys(m for _, m in h.verifiers))
    return md + _table(["subject", *names], _metric_rows(h.verifiers, names))


def _figures_section(out_dir: Path, figures: Iterable[str | os.PathLike] | None) -> list[str]:
    md = ["## Figures", ""]
    paths = [Path(p) for p in figures] if figures is not None else sorted(out_dir.glob("*.png"))
    stems = list(dict.fromkeys(p.with_suffix("") for p in paths))
    if not stems:
        return md + ["_none_", ""]
    for s in stems:
        rel = os.path.relpath(s, out_dir)
        svg = f" ([svg]({rel}.svg))" if Path(f"{s}.svg").exists() else ""
        md.append(f"- [{Path(rel).name}]({rel}.png){svg}")
    return md + [""]


_CSS = """body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;font-size:14px;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}h2{border-bottom:1px solid #ccc;margin-top:1.4em}
pre{background:#f6f6f6;padding:.6em;font-size:12px;overflow-x:auto}"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w/])_(.+?)_(?![\w/])", r"<em>\1</em>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', text)


def markdown_html(md: str, title: str, images: Path | None = None) -> str:
    """The markdown write_summary emits (headings, pipe tables, lists, paragraphs, images, a code block)
    as a standalone HTML page; images found under `images` are embedded (the Snakemake report shows the
    page from a data URI, where a relative path would not resolve)."""
    out, lines, i = [], md.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = lines.index("```", i + 1)
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j]), quote=False) + "</pre>")
            i = j + 1
            continue
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in lines[i:j]]
            head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[2:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            i = j
            continue
        if line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(r[2:])}</li>" for r in lines[i:j]) + "</ul>")
            i = j
            continue
        img = re.fullmatch(r"!\[([^\]]*)\]\(([^)\s]+)\)", line)
        if img:
            src, f = img.group(2), (images / img.group(2)) if images is not None else None
            if f is not None and f.is_file():
                src = "data:image/png;base64," + base64.b64encode(f.read_bytes()).decode()
            out.append(f'<p><img alt="{html.escape(img.group(1))}" src="{html.escape(src)}" '
                       'style="max-width:100%"></p>')
            i += 1
            continue
        m = re.match(r"(#{1,3}) (.*)", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")
