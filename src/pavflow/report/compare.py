"""Comparisons at equal compute: a search configuration minus another on the same problems, paired
bootstrap CIs over problems (schemas HEADLINE and PAIRED in pavflow.data). A configuration is a dict
{method, verifier, prover, alpha} as tables.config_label names it."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy.stats import ttest_ind

from pavflow.data import HEADLINE, ORACLE_K, PAIRED, RL_COMPARE, RL_EFFICIENCIES, Schema
from pavflow.names import Arm
from pavflow.oracle import MC_VERIFIER
from pavflow.report.power import mde, n_for_half_width, se_from_ci, t_ci, unpaired_se
from pavflow.report.tables import (config_label, curve_labels, missing, prover_rows, rl_efficiency, rl_final,
                                   rl_metric)
from pavflow.search.select import choose_on_val
from pavflow.stats import compute_efficiency, compute_efficiency_ci, matched_difference, paired_bootstrap_ci

def _is(c: dict) -> pl.Expr:
    """The rows of configuration `c` in a SEARCH table."""
    f = (pl.col("method") == c["method"]) & (pl.col("verifier") == c.get("verifier", ""))
    if "prover" in c:
        f &= pl.col("prover") == c["prover"]
    if c.get("alpha") is not None:
        f &= (pl.col("alpha") - c["alpha"]).abs() < 1e-12
    return f


def _rows_of(search: pl.DataFrame, c: dict) -> pl.DataFrame:
    return (search.filter(_is(c)).group_by("problem_id", "budget")
            .agg(pl.col("correct").cast(pl.Float64).mean(), pl.col("gen_tokens").cast(pl.Float64).mean()))


def _matrix(rows: pl.DataFrame, problems: list[str]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(budgets sorted by mean tokens, correct (problems, budgets), mean tokens per budget) on `problems`,
    keeping only budgets every one of them ran."""
    rows = rows.filter(pl.col("problem_id").is_in(problems))
    full = rows.group_by("budget").agg(pl.len()).filter(pl.col("len") == len(problems))["budget"]
    rows = rows.filter(pl.col("budget").is_in(full.implode()))
    if rows.height == 0:
        return [], np.zeros((len(problems), 0)), np.zeros(0)
    tok = rows.group_by("budget").agg(pl.col("gen_tokens").mean()).sort(["gen_tokens", "budget"])
    budgets = tok["budget"].to_list()
    wide = rows.pivot(on="budget", index="problem_id", values="correct").sort("problem_id")
    return budgets, wide.select([str(b) for b in budgets]).to_numpy(), tok["gen_tokens"].to_numpy()


def _common(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    return sorted(set(a["problem_id"]) & set(b["problem_id"]))


def headline_comparisons(search: pl.DataFrame | None, beam: dict, bon: dict, n_boot: int = 2000,
                         seed: int = 0) -> pl.DataFrame:
    """HEADLINE rows: at each budget N of `beam`, its accuracy and tokens; the paired gain over `bon` at
    the same N and at matched generated tokens (`bon` interpolated in log2 tokens at beam's mean
    tokens; null outside bon's measured range), each with a 95% paired bootstrap CI; and
    compute_efficiency, the tokens bon needs to reach beam's accuracy over beam's tokens (bound ">"
    when bon never reaches it: the ratio is then a lower bound). On the problems both ran."""
    if missing(search):
        return pl.DataFrame(schema=HEADLINE)
    b_rows, o_rows = _rows_of(search, beam), _rows_of(search, bon)
    problems = _common(b_rows, o_rows)
    if not problems:
        return pl.DataFrame(schema=HEADLINE)
    o_budgets, o_mat, o_tok = _matrix(o_rows, problems)
    b_budgets, b_mat, b_tok = _matrix(b_rows, problems)
    if not o_budgets:
        return pl.DataFrame(schema=HEADLINE)
    rows = []
    for j, n in enumerate(b_budgets):
        a, t = b_mat[:, j], float(b_tok[j])
        same = (paired_bootstrap_ci(a, o_mat[:, o_budgets.index(n)], n_boot=n_boot, seed=seed)
                if n in o_budgets else (None, None, None))
        matched = matched_difference(a, t, o_mat, o_tok, n_boot=n_boot, seed=seed) or (None, None, None)
        eff, bound = compute_efficiency(o_tok, o_mat.mean(axis=0), t, float(a.mean()))
        eff_ci = compute_efficiency_ci(o_tok, o_mat, t, a, n_boot=n_boot, seed=seed)
        rows.append((n, float(a.mean()), t,
                     float(o_mat[:, o_budgets.index(n)].mean()) if n in o_budgets else None,
                     float(o_tok[o_budgets.index(n)]) if n in o_budgets else None,
                     *same, *matched, eff, bound, *eff_ci, len(problems)))
    return pl.DataFrame(rows, schema=HEADLINE, orient="row").sort("budget")


def paired_comparisons(search: pl.DataFrame | None, method: dict, baselines: list[dict], n_boot: int = 2000,
                       seed: int = 0) -> pl.DataFrame:
    """PAIRED rows: `method` minus each baseline at every budget both ran, on the problems both ran,
    with a 95% paired bootstrap CI over problems."""
    if missing(search):
        return pl.DataFrame(schema=PAIRED)
    m_rows, rows = _rows_of(search, method), []
    for base in baselines:
        o_rows = _rows_of(search, base)
        problems = _common(m_rows, o_rows)
        if not problems:
            continue
        mb, mm, _ = _matrix(m_rows, problems)
        ob, om, _ = _matrix(o_rows, problems)
        for n in sorted(set(mb) & set(ob)):
            a, b = mm[:, mb.index(n)], om[:, ob.index(n)]
            d, lo, hi = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
            rows.append((config_label(method), config_label(base), n, float(a.mean()), float(b.mean()),
                         d, lo, hi, len(problems)))
    return pl.DataFrame(rows, schema=PAIRED, orient="row")


# What a search spends, as the comparisons at equal compute count it: the policy's generated tokens, or those
# plus the verifier's (for beam search with a verifier as large as the policy, most of its compute).
GENERATED, ALL_TOKENS = "generated", "generated + verifier"
COSTS = {GENERATED: ("gen_tokens",), ALL_TOKENS: ("gen_tokens", "verifier_tokens")}
# `beam` minus the most accurate baseline configuration and budget that spends at most beam's tokens (`cost`,
# one of COSTS) at `budget`; baseline columns null when no baseline is that cheap. On the problems all ran.
STRONGEST: Schema = {
    "cost": pl.String, "budget": pl.Int32, "beam_acc": pl.Float64, "beam_tokens": pl.Float64,
    "baseline": pl.String, "baseline_budget": pl.Int32, "baseline_acc": pl.Float64, "baseline_tokens": pl.Float64,
    "diff": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "n_candidates": pl.Int64, "n_problems": pl.Int64,
}


def strongest_baseline(search: pl.DataFrame | None, beam: dict, baselines: list[dict], n_boot: int = 2000,
                       seed: int = 0) -> pl.DataFrame:
    """STRONGEST rows: at every budget of `beam` and for each cost of COSTS, beam minus the best baseline at
    equal or less compute: the most accurate (configuration, budget) among `baselines` (best-of-N, majority,
    weighted majority) whose mean tokens are at most beam's. So a baseline whose accuracy falls with N is
    judged by its best point, not its degraded one. The pick is made on the problems it is compared on,
    which favours the baseline (the maximum of noisy accuracies is biased up): a gain that survives it is
    not an artefact of a weak baseline. 95% paired bootstrap CI over problems; ties go to the cheaper."""
    if missing(search):
        return pl.DataFrame(schema=STRONGEST)
    per = {config_label(c): (search.filter(_is(c)).group_by("problem_id", "budget")
                             .agg(pl.col("correct").cast(pl.Float64).mean(),
                                  *[pl.col(t).cast(pl.Float64).mean() for t in COSTS[ALL_TOKENS]]))
           for c in [beam, *baselines]}
    label = config_label(beam)
    problems = sorted(set.intersection(*(set(g["problem_id"]) for g in per.values() if g.height)))
    if not per[label].height or not problems:
        return pl.DataFrame(schema=STRONGEST)

    def points(g: pl.DataFrame, cost: tuple[str, ...]) -> dict[int, tuple[np.ndarray, float]]:
        """budget -> (correct per problem in `problems` order, mean tokens), budgets every problem ran."""
        g = g.filter(pl.col("problem_id").is_in(problems)).with_columns(tokens=pl.sum_horizontal(cost))
        return {n: (b.sort("problem_id")["correct"].to_numpy(), float(b["tokens"].mean()))
                for (n,), b in g.group_by("budget") if b.height == len(problems)}

    rows = []
    for cost, cols in COSTS.items():
        candidates = [(name, n, a, t) for name, g in per.items() if name != label
                      for n, (a, t) in points(g, cols).items()]
        for n, (a, t) in sorted(points(per[label], cols).items()):
            cheap = [c for c in candidates if c[3] <= t]
            base = max(cheap, key=lambda c: (c[2].mean(), -c[3]), default=None)
            d = paired_bootstrap_ci(a, base[2], n_boot=n_boot, seed=seed) if base else (None, None, None)
            rows.append((cost, n, float(a.mean()), t, *(base[:2] if base else (None, None)),
                         float(base[2].mean()) if base else None, base[3] if base else None, *d, len(cheap),
                         len(problems)))
    return pl.DataFrame(rows, schema=STRONGEST, orient="row")


def beam_scorers(curves: pl.DataFrame | None, search: pl.DataFrame | None, budget: int,
                 reference: dict) -> pl.DataFrame:
    """Labelled CURVES rows of every beam-search scorer at `budget` (pqv alone, pqv + pav per prover,
    analytic provers, single verifiers), best first, each with its paired `diff` [ci_low, ci_high]
    against the `reference` configuration (null for the reference itself)."""
    if missing(curves):
        return pl.DataFrame()
    rows = curve_labels(curves).filter((pl.col("method") == "beam") & (pl.col("budget") == budget))
    if rows.height == 0:
        return rows
    rows, diffs = rows.sort("acc", descending=True), []
    for r in rows.iter_rows(named=True):
        c = {"method": "beam", "verifier": r["verifier"], "prover": r["prover"], "alpha": r["alpha"]}
        pc = (paired_comparisons(search.filter(pl.col("budget") == budget), c, [reference])
              if not missing(search) and config_label(c) != config_label(reference) else None)
        p = pc.row(0, named=True) if pc is not None and pc.height else {}
        diffs.append((p.get("diff"), p.get("ci_low"), p.get("ci_high")))
    return rows.with_columns(*[pl.Series(name, [d[i] for d in diffs], dtype=pl.Float64)
                               for i, name in enumerate(("diff", "diff_ci_low", "diff_ci_high"))])


def rl_comparisons(rl: pl.DataFrame | None, baseline: str = "outcome") -> pl.DataFrame:
    """RL_COMPARE rows: every other arm against `baseline` on the sampled test accuracy (greedy when no
    samples were drawn). The accuracy CI is Welch's t interval over seeds (scipy), the MDE uses the t
    quantiles at Welch's df; NaN with fewer than 2 seeds on either side. Sample efficiency per policy sample
    and per token (tables.RL_COSTS), bootstrap CIs over seeds."""
    if missing(rl) or baseline not in set(rl["arm"]):
        return pl.DataFrame(schema=RL_COMPARE)
    metric = rl_metric(rl)
    final = rl_final(rl)
    finals = {arm: g[metric].fill_nan(None).drop_nulls().to_numpy() for (arm,), g in final.group_by("arm", maintain_order=True)}
    b, rows = finals[baseline], []
    for arm, a in finals.items():
        if arm == baseline or not (a.size and b.size):
            continue
        lo = hi = width = float("nan")
        if a.size > 1 and b.size > 1 and (a.var() + b.var()) > 0:
            test = ttest_ind(a, b, equal_var=False)
            lo, hi = test.confidence_interval(0.95)
            width = mde(unpaired_se(a, b), df=float(test.df))
        eff = [rl_efficiency(rl, baseline, arm, cost) for cost in ("samples", "tokens")]
        rows.append((arm, baseline, metric, a.size, b.size, float(a.mean()), float(b.mean()), float(a.mean() - b.mean()),
                     float(lo), float(hi), width, *[e[k] for e in eff for k in ("sample_efficiency", "ci_low", "ci_high")]))
    return pl.DataFrame(rows, schema=RL_COMPARE, orient="row")


def oracle_k(curves: pl.DataFrame | None, rl: pl.DataFrame | None, compared: pl.DataFrame | None, budget: int,
             alpha: float) -> pl.DataFrame:
    """ORACLE_K: the oracle provers' beam search (verifier MC_VERIFIER at `budget` and `alpha`) and pav_mc RL arms
    (`compared`: their RL_COMPARE rows against the outcome arm), one row per prover."""
    rows = []
    if not missing(curves):
        beam = prover_rows(curves, budget).filter(_is({"method": "beam", "verifier": MC_VERIFIER, "alpha": alpha}))
        rows += [{"source": "beam", "prover": r["prover"], "policy": r["policy"], "K": r["K"], "acc": r["acc"],
                  "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": r["n_problems"], "gen_tokens": r["gen_tokens"],
                  "verifier_tokens": r["verifier_tokens"]} for r in beam.iter_rows(named=True)]
    if not missing(rl):
        metric, final = rl_metric(rl), rl_final(rl)
        against = {} if missing(compared) else {r["arm"]: r for r in compared.iter_rows(named=True)}
        for arm in sorted(set(rl["arm"])):
            a = Arm.parse(arm)
            if a.kind != "pav_mc":
                continue
            g = final.filter(pl.col("arm") == arm)
            acc = g[metric].fill_nan(None).drop_nulls().to_numpy()
            lo, hi = t_ci(acc)
            c = against.get(arm, {})
            rows.append({"source": "rl", "prover": str(a.prover), "policy": a.prover.policy, "K": a.prover.k,
                         "acc": float(acc.mean()) if acc.size else None, "ci_low": lo, "ci_high": hi,
                         "n": int(acc.size), "gen_tokens": g["gen_tokens"].cast(pl.Float64).mean(),
                         "verifier_tokens": g["verifier_tokens"].cast(pl.Float64).mean(),
                         "baseline_acc": c.get("baseline_acc"), "diff": c.get("diff"), "diff_ci_low": c.get("ci_low"),
                         "diff_ci_high": c.get("ci_high"), **{e: c.get(e) for e in RL_EFFICIENCIES}})
    return pl.DataFrame(rows, schema=ORACLE_K).sort("source", "policy", "K")


def val_margin(val: pl.DataFrame | None, choice: dict | None) -> dict | None:
    """The val choice (search.select.choose_on_val) minus the runner-up, the configuration the same rule
    picks once the choice is removed: PAIRED row on the val problems, plus `n_needed`, the val problems
    a 95% CI as narrow as the observed margin would need (None when the margin is 0)."""
    if missing(val) or choice is None:
        return None
    config = lambda c: {"method": "beam", "verifier": c["verifier"], "prover": c["prover"], "alpha": c["alpha"]}
    rest = val.filter(~_is(config(choice)))
    if rest.height == 0:
        return None
    runner = choose_on_val(rest)
    pc = paired_comparisons(val, config(choice), [config(runner)])
    if pc.height == 0:
        return None
    r = pc.row(0, named=True)
    sd = se_from_ci(r["ci_low"], r["ci_high"]) * math.sqrt(r["n_problems"])
    need = max(2, n_for_half_width(sd, abs(r["diff"]))) if r["diff"] else None
    return {**r, "runner_prover": runner["prover"], "runner_alpha": runner["alpha"], "n_needed": need}
