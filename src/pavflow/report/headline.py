"""The summary's numbers, computed once: `headline(study)` -> Headline (tables and small records) that
render.py formats and claims.py judges; `Headline.as_dict()` is headline.json, a flat dict with keys
like 'pool/base/acc', 'search/beam/pqv+pav/base_k4/acc@64', 'rl/<arm>/final_acc_sampled',
'data_scaling/pqv/s2m8/outcome_auroc_within'."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pavflow.data import N_BINS, RL_EFFICIENCIES, RL_METRICS
from pavflow.names import Arm, data_variant
from pavflow.oracle import MC_VERIFIER
from pavflow.report.compare import (COSTS, GENERATED, beam_scorers, headline_comparisons, oracle_k, paired_comparisons,
                                    rl_comparisons, strongest_baseline, val_margin)
from pavflow.report.diagnosis import score_deciles, scored_pool, top_pick_kinds
from pavflow.report.fmt import num, ok
from pavflow.report.power import n_for_ci
from pavflow.report.tables import (QUALITY_COLUMNS, StudyTables, alpha_rows, analytic_minus_trained, at_alpha,
                                   beam_config, best_verifiers, config_label, data_scaling, eval_split, gains_vs_bon,
                                   headline_curves, metric_cells, missing, pool_accuracy, prover_rows, rl_arms,
                                   rl_efficiency, rl_final, rl_plateau, rl_stopped, search_curves, success_histogram,
                                   success_rates)

BON = {"method": "bon", "verifier": "orm", "prover": ""}  # the paper's baseline: best-of-N with an ORM
# the baselines a search claim is judged against at equal compute (compare.strongest_baseline): the paper's, and
# the two votes that need no verifier search could over-optimise
EQUAL_COMPUTE_BASELINES = (BON, {"method": "weighted_majority", "verifier": "orm", "prover": ""},
                           {"method": "majority", "verifier": "", "prover": ""})


@dataclass
class Comparison:
    """Beam search vs best-of-N with the ORM at equal compute."""
    beam: dict
    bon: dict
    rows: pl.DataFrame  # HEADLINE; empty: nothing to compare
    paired: pl.DataFrame | None = None  # PAIRED, beam minus each baseline; None: no baselines asked
    strongest: pl.DataFrame | None = None  # compare.STRONGEST: beam minus the best baseline at equal compute


@dataclass
class BestProver:
    """The most accurate prover BoK(policy) at `budget` and its paired differences to the others of the
    smallest and the largest K."""
    policy: str
    budget: int | None  # the search budget; None: RL's final accuracy
    best: dict  # {"K", "acc", "ci_low", "ci_high", ...} (a prover_rows row)
    minus: dict[int, dict]  # K -> {"diff", "ci_low", "ci_high", "baseline_acc", ...}: best minus the prover of that K
    ks: tuple[int, ...] = ()  # every K of the sweep; empty: those of `best` and `minus`

    @property
    def sweep(self) -> list[int]:
        return sorted(set(self.ks or (self.best["K"], *self.minus)))


@dataclass
class Headline:
    experiment: str
    pool: pl.DataFrame | None = None  # POOL; None: no pool
    pass_at: pl.DataFrame | None = None  # PASS_AT
    histogram: pl.DataFrame | None = None  # HISTOGRAM
    search: pl.DataFrame | None = None  # headline_curves at search.alpha; None: neither ran
    gains: pl.DataFrame | None = None  # GAINS of search
    prover_k: pl.DataFrame | None = None  # prover_rows at search.k_budget, the base policy first
    comparison: Comparison | None = None  # the headline beam search; None: no search or val table
    configured: Comparison | None = None  # the configured beam search when validation chose another
    alpha: pl.DataFrame | None = None  # alpha_rows of the configured prover
    val_curves: pl.DataFrame | None = None  # CURVES of the val grid the choice was made on
    val_choice: dict | None = None  # that choice
    val_margin: dict | None = None  # compare.val_margin: the choice minus the runner-up on val
    best_prover: BestProver | None = None  # beam search with the trained PAVs
    best_mc_prover: BestProver | None = None  # beam search with the oracle provers (search_beam_mc)
    scorers: pl.DataFrame | None = None  # beam_scorers; None: no search table
    rl_final: pl.DataFrame | None = None  # rl_final; None: no RL
    rl_arms: pl.DataFrame | None = None  # RL_ARMS
    rl_stopped: pl.DataFrame | None = None  # rl_stopped
    rl_efficiency: dict | None = None
    rl_plateau: dict | None = None  # tables.rl_plateau of the outcome arm: did RL run long enough?
    rl_compare: pl.DataFrame | None = None  # RL_COMPARE: every arm against the outcome arm
    rl_best_prover: BestProver | None = None  # among the pav_mc arms of the base policy's provers
    oracle_k: pl.DataFrame | None = None  # ORACLE_K: the oracle provers' K curve (beam, RL); None: neither ran
    quality: dict | None = None  # metric_cells of the quality table; None: no quality table
    best_quality: dict = field(default_factory=dict)  # best_verifiers
    analytic: list = field(default_factory=list)  # analytic_minus_trained
    data_scaling: pl.DataFrame | None = None  # DATA_SCALING; None: no verifier trained on part of the data
    verifiers: dict | None = None  # metric_cells of the verifier jobs' metrics
    power: dict = field(default_factory=dict)  # "search" / "rl" -> sizing(): is the study sized for +-4 points?
    top_picks: pl.DataFrame | None = None  # diagnosis.TOP_PICK_KINDS of best-of-N (ORM); None: no kinds or scores
    deciles: pl.DataFrame | None = None  # diagnosis.DECILES of the ORM on the pool

    def as_dict(self) -> dict:
        """headline.json."""
        head: dict = {"experiment": self.experiment}
        if self.pool is not None:
            for r in self.pool.iter_rows(named=True):
                key = f"pool/{r['policy']}"
                head |= {f"{key}/acc": r["acc"], f"{key}/acc_ci_low": r["ci_low"],
                         f"{key}/acc_ci_high": r["ci_high"], f"{key}/n_problems": r["n_problems"]}
            head |= {f"pool/{r['policy']}/pass@{r['n']}": r["pass_at"] for r in self.pass_at.iter_rows(named=True)}
            for (policy, _), g in self.histogram.group_by(["policy", "split"], maintain_order=True):
                head |= {f"pool/{policy}/never_solved": g["count"][N_BINS],
                         f"pool/{policy}/always_solved": g["count"][N_BINS + 1]}
        for r in self.search.iter_rows(named=True) if self.search is not None else ():
            key, n = f"search/{r['label']}", r["budget"]
            head |= {f"{key}/acc@{n}": r["acc"], f"{key}/acc_ci_low@{n}": r["ci_low"],
                     f"{key}/acc_ci_high@{n}": r["ci_high"], f"{key}/gen_tokens@{n}": r["gen_tokens"]}
        for r in self.gains.iter_rows(named=True) if self.gains is not None else ():
            if r["gain"] is not None:
                head[f"search/{r['beam']}/acc_gain_vs_{r['bon']}@{r['bon_budget']}"] = r["gain"]
            if r["compute_efficiency"] is not None:
                head[f"search/{r['beam']}/compute_efficiency_vs_{r['bon']}"] = r["compute_efficiency"]
        for r in self.prover_k.iter_rows(named=True) if self.prover_k is not None else ():
            head[f"prover_k/{r['label']}/acc@{r['budget']}"] = r["acc"]
        for prefix, c in (("headline", self.comparison), ("configured", self.configured)):
            if c is not None and c.rows.height:
                head |= _comparison_dict(prefix, c)
        for r in self.alpha.iter_rows(named=True) if self.alpha is not None else ():
            key = f"headline/alpha/{num(r['alpha'])}"
            head |= {f"{key}/acc": r["acc"], f"{key}/acc_ci_low": r["ci_low"], f"{key}/acc_ci_high": r["ci_high"]}
        if self.val_choice is not None:
            c = self.val_choice
            head |= {"headline/val_choice/prover": chosen_prover(c), "headline/val_choice/alpha": c["alpha"],
                     "headline/val_choice/val_acc": c["val_acc"], "headline/val_choice/budget": c["budget"]}
        if self.best_prover is not None:
            head["headline/best_prover_k"] = self.best_prover.best["K"]
            for k, r in self.best_prover.minus.items():
                head |= {f"headline/best_k_minus_k{k}": r["diff"], f"headline/best_k_minus_k{k}_ci_low": r["ci_low"],
                         f"headline/best_k_minus_k{k}_ci_high": r["ci_high"]}
        if self.best_mc_prover is not None:
            head["headline/best_mc_prover_k"] = self.best_mc_prover.best["K"]
        for r in self.scorers.iter_rows(named=True) if self.scorers is not None else ():
            head[f"beam_scorers/{r['label']}/acc@{r['budget']}"] = r["acc"]
        for r in self.rl_arms.iter_rows(named=True) if self.rl_arms is not None else ():
            head |= {f"rl/{r['arm']}/final_{m.removeprefix('test_')}": r[m] for m in RL_METRICS}
        if self.rl_efficiency is not None:
            e = self.rl_efficiency
            head |= {k: v for k, v in {"rl/sample_efficiency": e["sample_efficiency"], "rl/sample_efficiency_ci_low": e["ci_low"],
                                       "rl/sample_efficiency_ci_high": e["ci_high"],
                                       "rl/sample_efficiency_target_acc": e["target_acc"]}.items() if ok(v)}
        if self.rl_plateau is not None:
            p = self.rl_plateau
            key = f"rl/{p['arm']}/change_over_last_{round(100 * p['tail'])}pct"
            head |= {k: v for k, v in {key: p["change"], f"{key}_ci_low": p["ci_low"], f"{key}_ci_high": p["ci_high"]}.items() if ok(v)}
        for r in self.rl_compare.iter_rows(named=True) if self.rl_compare is not None else ():
            key = f"rl/{r['arm']}/minus_{r['baseline']}"
            head |= {f"{key}/{m}": r[m] for m in ("diff", "ci_low", "ci_high", "mde", *RL_EFFICIENCIES) if ok(r[m])}
        if self.rl_best_prover is not None:
            head["rl/best_mc_prover_k"] = self.rl_best_prover.best["K"]
        for r in self.oracle_k.iter_rows(named=True) if self.oracle_k is not None else ():
            head |= {f"oracle_k/{r['source']}/{r['prover']}/{m}": r[m]
                     for m in ("acc", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", *RL_EFFICIENCIES) if ok(r[m])}
        head |= {f"quality/{s}/{m}": r["value"] for (s, m), r in (self.quality or {}).items()
                 if m in QUALITY_COLUMNS and ok(r["value"])}
        head |= {f"quality/best/{m}": r["subject"] for m, r in self.best_quality.items()}
        for r in self.data_scaling.iter_rows(named=True) if self.data_scaling is not None else ():
            key = f"data_scaling/{r['base']}/{data_variant(r['n_seed'], r['n_mc'])}/{r['metric']}"
            head |= {f"{key}{s}": r[c] for s, c in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high"))
                     if ok(r[c])}
        head |= {f"verifier/{s}/{m}": r["value"] for (s, m), r in (self.verifiers or {}).items() if ok(r["value"])}
        for kind, p in self.power.items():
            head |= {f"power/{kind}/{m}": p[m] for m in ("half_width", "n", "n_needed")}
        for r in self.top_picks.iter_rows(named=True) if self.top_picks is not None else ():
            head[f"diagnosis/bon_orm/{r['kind']}@{r['budget'] if r['budget'] is not None else 'pool'}"] = r["fraction"]
        for r in self.deciles.iter_rows(named=True) if self.deciles is not None else ():
            head[f"diagnosis/orm_decile_acc/{r['scope']}/{r['decile']}"] = r["acc"]
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in head.items()}


def _comparison_dict(prefix: str, c: Comparison) -> dict:
    head = {f"{prefix}/beam": config_label(c.beam), f"{prefix}/baseline": config_label(c.bon)}
    for r in c.rows.iter_rows(named=True):
        n = r["budget"]
        for key in ("gain_same_n", "gain_at_equal_tokens"):
            if ok(r[key]):  # null where best-of-N did not run this N or these tokens
                head |= {f"{prefix}/{key}{s}@{n}": r[key + s] for s in ("", "_ci_low", "_ci_high")}
        head |= {f"{prefix}/{key}@{n}": r[key] for key in (
            "compute_efficiency", "compute_efficiency_bound", "compute_efficiency_ci_low", "compute_efficiency_ci_high",
            "beam_acc", "beam_gen_tokens")}
    for r in c.paired.iter_rows(named=True) if c.paired is not None else ():
        key = f"paired/{r['baseline']}@{r['budget']}"
        head |= {f"{key}/diff": r["diff"], f"{key}/ci_low": r["ci_low"], f"{key}/ci_high": r["ci_high"]}
    for r in c.strongest.iter_rows(named=True) if c.strongest is not None else ():
        if r["baseline"] is not None:
            key = f"{prefix}/strongest_baseline/{cost_slug(r['cost'])}"
            head |= {f"{key}/{m}@{r['budget']}": r[m] for m in ("baseline", "baseline_budget", "diff", "ci_low", "ci_high")}
    return head


def cost_slug(cost: str) -> str:
    """A compare.COSTS name as a headline.json key part: 'generated', 'generated_plus_verifier'."""
    return cost.replace(" + ", "_plus_")


def sizing(h: Headline) -> dict:
    """Is the study sized for a 95% CI half-width of power.TARGET_HALF_WIDTH? "search": the paired CI of beam
    search against the strongest baseline at equal generated tokens (else best-of-N at equal tokens) at the
    largest budget that has one, over test problems; "rl": the Welch CI of median width among the arms
    against the outcome arm, over seeds per arm. Each {what, half_width, n, n_needed}."""
    out = {}
    c = h.comparison
    rows = [r for r in strongest_rows_of(c) if r["cost"] == GENERATED] if c is not None else []
    if rows:
        r = rows[-1]
        out["search"] = {"what": f"beam search N={r['budget']} − {r['baseline']} N={r['baseline_budget']}",
                         "lo": r["ci_low"], "hi": r["ci_high"], "n": r["n_problems"]}
    elif (m := largest_matched(c)) is not None and ok(m["gain_at_equal_tokens_ci_low"]):
        out["search"] = {"what": f"beam search − best-of-N at equal tokens, N={m['budget']}",
                         "lo": m["gain_at_equal_tokens_ci_low"], "hi": m["gain_at_equal_tokens_ci_high"],
                         "n": m["n_problems"]}
    arms = [r for r in h.rl_compare.iter_rows(named=True) if ok(r["ci_low"]) and ok(r["ci_high"])] \
        if h.rl_compare is not None else []
    if arms:  # the arm of median CI width: a collapsed arm's wide CI says nothing of the others
        r = sorted(arms, key=lambda r: r["ci_high"] - r["ci_low"])[(len(arms) - 1) // 2]
        out["rl"] = {"what": f"RL {r['arm']} − {r['baseline']}", "lo": r["ci_low"], "hi": r["ci_high"],
                     "n": min(r["n_seeds"], r["n_seeds_baseline"])}
    return {k: {"what": v["what"], "half_width": (v["hi"] - v["lo"]) / 2, "n": v["n"],
                "n_needed": n_for_ci(v["lo"], v["hi"], v["n"])} for k, v in out.items()}


def largest_matched(c: Comparison | None) -> dict | None:
    """The HEADLINE row of the largest budget with a gain at equal tokens (beam inside best-of-N's token range)."""
    matched = [r for r in c.rows.iter_rows(named=True) if ok(r["gain_at_equal_tokens"])] if c is not None else []
    return matched[-1] if matched else None


def strongest_rows_of(c: Comparison | None) -> list[dict]:
    """Per cost (compare.COSTS), the STRONGEST row of the largest budget that has a baseline as cheap."""
    if c is None or c.strongest is None:
        return []
    rows = [[r for r in c.strongest.iter_rows(named=True) if r["cost"] == cost and r["baseline"] is not None]
            for cost in COSTS]
    return [g[-1] for g in rows if g]


def chosen_prover(choice: dict) -> str:
    return choice["prover"] or "none (pqv alone)"


def headline(t: StudyTables) -> Headline:
    """Every number of the summary, from the study's tables."""
    h = Headline(t.experiment)
    if not missing(t.pool):
        rates = success_rates(eval_split(t.pool))
        h.pool, h.pass_at = pool_accuracy(rates)
        h.histogram = success_histogram(rates)
    curves = at_alpha(t.curves, t.alpha)
    h.search = headline_curves(curves, t.prover)
    h.gains = gains_vs_bon(h.search) if h.search is not None else None
    rows = None if missing(curves) else prover_rows(curves, t.k_budget)
    if not missing(rows):
        h.prover_k = rows.sort([pl.col("policy") != t.base_policy, "policy", "K", "verifier", "alpha"])
    if t.search is not None or t.val is not None:
        h.comparison, h.configured = _comparisons(t)
        h.alpha = alpha_rows(t.curves, t.prover, t.k_budget)
        if not missing(t.val) and t.choice is not None:
            h.val_curves, h.val_choice = search_curves(t.val, split="val"), t.choice
            h.val_margin = val_margin(t.val, t.choice)
        h.best_prover, h.best_mc_prover = _best_prover(t), _best_prover(t, MC_VERIFIER)
    if t.search is not None:
        h.scorers = beam_scorers(t.curves, t.search, t.k_budget, beam_config(t.prover, t.alpha))
    if not missing(t.rl):
        h.rl_final = rl_final(t.rl)
        h.rl_arms, h.rl_stopped, h.rl_efficiency = rl_arms(h.rl_final), rl_stopped(t.rl), rl_efficiency(t.rl)
        h.rl_compare, h.rl_plateau = rl_comparisons(t.rl), rl_plateau(t.rl)
        h.rl_best_prover = _rl_best_prover(t, h.rl_compare)
    oracle_rows = oracle_k(t.curves, t.rl, h.rl_compare, t.k_budget, t.prover_alpha)
    h.oracle_k = oracle_rows if oracle_rows.height else None
    if not missing(t.quality):
        h.quality = metric_cells(t.quality)
        h.best_quality, h.analytic = best_verifiers(t.quality), analytic_minus_trained(t.quality, t.base_policy)
        scaling = data_scaling(t.quality, t.n_seed, t.n_mc)
        h.data_scaling = scaling if scaling.height else None
    if not missing(t.verifier_metrics):
        h.verifiers = metric_cells(t.verifier_metrics)
    bon = None if missing(t.curves) else t.curves.filter((pl.col("method") == "bon") & (pl.col("verifier") == "orm"))
    if not missing(t.pool) and "kind" in t.pool.columns and not missing(t.scores) and not missing(bon):
        scored = scored_pool(eval_split(t.pool), t.scores)
        h.top_picks = top_pick_kinds(scored, sorted(bon["budget"].unique().to_list()))
        h.deciles = score_deciles(scored)
    h.power = sizing(h)
    return h


def headline_beam(t: StudyTables) -> dict:
    """The beam search of the headline: the configuration chosen on validation, else the configured one."""
    c = t.choice
    if c is None:
        return beam_config(t.prover, t.alpha)
    return {"method": "beam", "verifier": "pqv+pav" if c["alpha"] else "pqv", "prover": c["prover"],
            "alpha": c["alpha"] if c["alpha"] else None}


def _comparisons(t: StudyTables) -> tuple[Comparison, Comparison | None]:
    """The headline beam search against best-of-N (ORM) and its paired baselines; the configured beam
    search against best-of-N, for reference, when validation chose another."""
    beam, configured = headline_beam(t), beam_config(t.prover, t.alpha)
    baselines = [*EQUAL_COMPUTE_BASELINES,
                 {"method": "bon", "verifier": f"pqv:{t.aggregate}", "prover": ""},
                 {"method": "bon", "verifier": f"pav_{t.prover}:{t.aggregate}", "prover": ""},
                 {"method": "beam", "verifier": "pqv", "prover": ""}]
    other = config_label(configured) != config_label(beam)
    baselines = [b for b in baselines + ([configured] if other else []) if config_label(b) != config_label(beam)]
    rows = headline_comparisons(t.search, beam, BON)
    paired = paired_comparisons(t.search, beam, baselines) if rows.height and baselines else None
    strongest = strongest_baseline(t.search, beam, list(EQUAL_COMPUTE_BASELINES)) if rows.height else None
    ref = (Comparison(configured, BON, headline_comparisons(t.search, configured, BON))
           if t.choice is not None and other else None)
    return Comparison(beam, BON, rows, paired, strongest), ref


def _best_prover(t: StudyTables, verifier: str = "pqv+pav") -> BestProver | None:
    """The best K of BoK(base policy) at search.k_budget (α = search.alpha, else 1) for beam search
    scored by `verifier`: "pqv+pav" (the trained PAVs) or "mc" (the oracle provers, fresh rollouts),
    paired against both ends of the sweep (and the best interior K when the best is an end)."""
    if missing(t.curves) or missing(t.search):
        return None
    alpha = t.prover_alpha
    rows = prover_rows(t.curves, t.k_budget)
    rows = rows.filter((pl.col("policy") == t.base_policy) & (pl.col("verifier") == verifier)
                       & ((pl.col("alpha") - alpha).abs() < 1e-12)).sort("K")
    if rows.height < 2:
        return None
    best = _best_row(rows)
    search, minus = t.search.filter(pl.col("budget") == t.k_budget), {}
    config = lambda prover: {**beam_config(prover, alpha), "verifier": verifier}
    for other in _compared_ks(rows, best["K"]):
        prover = rows.filter(pl.col("K") == other)["prover"][0]
        pc = paired_comparisons(search, config(best["prover"]), [config(prover)])
        if pc.height:
            minus[other] = pc.row(0, named=True)
    return BestProver(t.base_policy, t.k_budget, best, minus, tuple(sorted(set(rows["K"].to_list()))))


def _best_row(rows: pl.DataFrame) -> dict:
    """The most accurate of `rows` (one per K, with `acc`); ties go to the smaller K."""
    return rows.sort(["acc", "K"], descending=[True, False]).row(0, named=True)


def _compared_ks(rows: pl.DataFrame, best: int) -> list[int]:
    """The Ks the best one is compared with: both ends of the sweep, and the best interior K when the
    best is an end (rows: one per K, with `acc`)."""
    lo, hi = rows["K"].min(), rows["K"].max()
    out = sorted({lo, hi} - {best})
    inner = rows.filter((pl.col("K") > lo) & (pl.col("K") < hi))
    if best in (lo, hi) and inner.height:
        out.append(_best_row(inner)["K"])
    return out


def _rl_best_prover(t: StudyTables, rl: pl.DataFrame) -> BestProver | None:
    """The best K among the pav_mc arms of the base policy's Best-of-K provers (the oracle provers: no
    verifier error), by final accuracy; its Welch differences (RL_COMPARE rows of best against each)."""
    if missing(t.rl):
        return None
    oracle = [Arm.parse(a) for a in set(t.rl["arm"])]
    arms = {a.prover.k: str(a) for a in oracle if a.kind == "pav_mc" and a.prover.policy == t.base_policy}
    if len(arms) < 2:
        return None
    ranked = rl.filter(pl.col("arm").is_in(list(arms.values())))
    rows = pl.DataFrame({"K": list(arms), "arm": list(arms.values())}).join(
        ranked.select("arm", pl.col("acc")), on="arm").sort("K")
    best = _best_row(rows)
    minus = {}
    for k in _compared_ks(rows, best["K"]):
        c = rl_comparisons(t.rl.filter(pl.col("arm").is_in([best["arm"], arms[k]])), baseline=arms[k])
        if c.height:
            minus[k] = c.row(0, named=True)
    return BestProver(t.base_policy, None, {**best, "ci_low": None, "ci_high": None}, minus, tuple(rows["K"].to_list()))
