"""The report's statistics: pure functions from the stage tables to new DataFrames (schemas in
pavflow.data), and StudyTables, what the report is computed from. Nothing here draws or formats
beyond labels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pavflow.data import (CURVE_KEYS, CURVES, DATA_SCALING, GAINS, HISTOGRAM, N_BINS, PASS_AT, POOL, RATES, RL_ARMS,
                          RL_METRICS)
from pavflow.names import Prover, Verifier
from pavflow.oracle import MC_VERIFIER
from pavflow.report.fmt import num, ok
from pavflow.report.power import t_ci
from pavflow.stats import bootstrap_ci, mean_ci, pass_at_k, sample_efficiency

QUALITY_PANELS = {  # metric -> (title, higher is better)
    "brier": ("Brier score vs fresh MC values (lower is better)", False),
    "spearman_progress": ("Spearman: predicted vs MC progress", True),
    "outcome_auroc": ("Outcome AUROC of v(s_H)", True),
    "first_error_f1": ("First-error detection F1 (ProcessBench)", True),
}
QUALITY_COLUMNS = ("brier", "ece", "spearman_progress", "outcome_auroc", "outcome_auroc_within", "first_error_f1",
                   "label_rollouts")  # outcome_auroc_within: what search needs (ranking one problem's responses)
# quality metrics of the verifier data-scaling curve; the first is what search needs (within-problem ranking)
DATA_SCALING_METRICS = ("outcome_auroc_within", "outcome_auroc", "brier", "spearman_progress", "first_error_f1")


@dataclass(frozen=True)
class StudyTables:
    """The study's tables (None or empty: that part did not run) and the search settings they are read with."""
    experiment: str
    pool: pl.DataFrame | None = None  # SAMPLES of the search pool (stages/search_pool), + `kind` (task.diagnose) if known
    scores: pl.DataFrame | None = None  # SCORES of the ORM on that pool (stages/search_bon)
    curves: pl.DataFrame | None = None  # CURVES of the test split
    search: pl.DataFrame | None = None  # SEARCH rows of the test split
    val: pl.DataFrame | None = None  # SEARCH rows of the validation grid
    choice: dict | None = None  # search.select.choose_on_val(val)
    rl: pl.DataFrame | None = None  # RL_CURVE
    verifier_metrics: pl.DataFrame | None = None  # METRICS of the verifier jobs
    quality: pl.DataFrame | None = None  # METRICS of stages/quality
    prover: str = ""  # search.prover: the configured headline prover
    k_budget: int = 0  # search.k_budget: the budget of the prover, alpha and scorer sweeps
    alpha: float | None = None  # search.alpha
    aggregate: str = "last"  # search.aggregate: the PRM aggregation of the best-of-N baselines
    n_seed: int | None = None  # rollouts.n_seed: the seeds per problem a verifier without .s<n>m<m> trains on
    n_mc: int | None = None  # rollouts.n_mc: its rollouts per state

    @property
    def prover_alpha(self) -> float:
        """The α the prover-K curves are read at: search.alpha, else 1."""
        return self.alpha if self.alpha is not None else 1.0

    @property
    def base_policy(self) -> str:
        return parse_prover(self.prover)[0] if self.prover else "base"


def missing(df: pl.DataFrame | None) -> bool:
    return df is None or df.height == 0


def eval_split(df: pl.DataFrame) -> pl.DataFrame:
    """Keep the test split when the table has one; otherwise keep everything."""
    return df.filter(pl.col("split") == "test") if (df["split"] == "test").any() else df


def parse_prover(prover: str) -> tuple[str, int | None]:
    """'base_k4' -> ('base', 4): prover BoK(policy). Names without a _k<K> suffix -> (name, None)."""
    try:
        p = Prover.parse(prover)
        return p.policy, p.k
    except ValueError:
        return prover, None


# ----------------------------------------------------------------------------- search curves

def search_curves(search: pl.DataFrame | None, split: str | None = None, n_boot: int = 2000,
                  seed: int = 0) -> pl.DataFrame:
    """SEARCH table -> CURVES: accuracy with bootstrap CI, mean tokens per problem, per configuration.

    `split` filters the table first; without it the table must hold a single split.
    """
    if missing(search):
        return pl.DataFrame(schema=CURVES)
    if split is not None:
        search = search.filter(pl.col("split") == split)
    elif search["split"].n_unique() > 1:
        raise ValueError(f"search table mixes splits {sorted(search['split'].unique())}; pass split=")
    f64 = lambda c: pl.col(c).cast(pl.Float64).mean()  # noqa: E731
    per_problem = (search.group_by(CURVE_KEYS + ["problem_id"])
                   .agg(f64("correct"), f64("gen_tokens"), f64("verifier_tokens"))
                   .sort("problem_id"))
    curves = (per_problem.group_by(CURVE_KEYS, maintain_order=True)
              .agg(pl.col("correct"), f64("gen_tokens"), f64("verifier_tokens"),
                   pl.len().cast(pl.Int64).alias("n_problems")))
    cis = [bootstrap_ci(np.asarray(c), n_boot=n_boot, seed=seed) for c in curves["correct"]]
    return (curves.with_columns(acc=pl.col("correct").list.mean(),
                                ci_low=pl.Series([c[0] for c in cis], dtype=pl.Float64),
                                ci_high=pl.Series([c[1] for c in cis], dtype=pl.Float64))
            .select([pl.col(c).cast(t) for c, t in CURVES.items()])
            .sort(CURVE_KEYS))


def curve_labels(curves: pl.DataFrame) -> pl.DataFrame:
    """Add `label` = method/verifier/prover, plus k= or α= only where they vary within that triple."""
    c = curves.with_columns(pl.col(["method", "verifier", "prover"]).fill_null(""))
    trip = ["method", "verifier", "prover"]
    vary = {tuple(r[:3]): (r[3] > 1, r[4] > 1) for r in
            c.group_by(trip).agg(pl.col("k").n_unique(), pl.col("alpha").n_unique()).iter_rows()}
    labels = []
    for m, v, p, k, a in c.select(trip + ["k", "alpha"]).iter_rows():
        s = "/".join(x for x in (m, v, p) if x)
        vk, va = vary[(m, v, p)]
        s += f" k={k}" if vk else ""
        s += f" α={num(a)}" if va else ""
        labels.append(s)
    return c.with_columns(label=pl.Series(labels, dtype=pl.String))


def config_label(c: dict) -> str:
    """method/verifier/prover of a search configuration {method, verifier, prover, alpha}, plus α= for
    beam search on the effective reward."""
    s = "/".join(x for x in (c["method"], c.get("verifier", ""), c.get("prover", "")) if x)
    return s + (f" α={num(c['alpha'])}" if c.get("alpha") is not None and "pav" in c.get("verifier", "") else "")


def beam_config(prover: str, alpha: float | None) -> dict:
    """Beam search on the effective reward Q^π + α·A^μ under `prover`."""
    return {"method": "beam", "verifier": "pqv+pav", "prover": prover, "alpha": alpha}


def at_alpha(curves: pl.DataFrame | None, alpha: float | None) -> pl.DataFrame | None:
    """Beam rows on the effective reward at `alpha` only (other configurations untouched)."""
    if missing(curves) or alpha is None:
        return curves
    return curves.filter((pl.col("method") != "beam") | (pl.col("verifier") != "pqv+pav")
                         | ((pl.col("alpha") - alpha).abs() < 1e-12))


def headline_curves(curves: pl.DataFrame | None, prover: str) -> pl.DataFrame | None:
    """Labelled CURVES rows of best-of-N with the ORM, then of beam search with `prover` (with a verifier:
    the MC oracle reads true grades and has its own section); None if neither ran."""
    if missing(curves):
        return None
    c = curve_labels(curves)
    sel = pl.concat([c.filter((pl.col("method") == "bon") & (pl.col("verifier") == "orm")),
                     c.filter((pl.col("method") == "beam") & (pl.col("prover") == prover) & (pl.col("verifier") != MC_VERIFIER))])
    return sel if sel.height else None


def gains_vs_bon(sel: pl.DataFrame) -> pl.DataFrame:
    """GAINS of every beam curve of headline_curves over every best-of-N one. Compute is measured to
    best-of-N's best accuracy over budgets, not its largest-budget one, which a weak ORM can push below
    N=1 and so make any method look efficient. No ratio when that best accuracy is 0 (any method is
    already there)."""
    bon, beam, rows = sel.filter(pl.col("method") == "bon"), sel.filter(pl.col("method") == "beam"), []
    for b_lab in bon["label"].unique(maintain_order=True):
        b_rows = bon.filter(pl.col("label") == b_lab)
        b = b_rows.sort("budget")[-1].row(0, named=True)
        b_best = b_rows.sort(["acc", "gen_tokens"], descending=[True, False]).row(0, named=True)
        for p_lab in beam["label"].unique(maintain_order=True):
            p = beam.filter(pl.col("label") == p_lab)
            same = p.filter(pl.col("budget") == b["budget"])
            reach = p.filter(pl.col("acc") >= b_best["acc"]).sort("gen_tokens")
            tokens = reach["gen_tokens"][0] if reach.height else None
            rows.append((p_lab, b_lab, b["budget"], same["acc"][0] - b["acc"] if same.height else None,
                         b_best["acc"], b_best["budget"], b_best["gen_tokens"], tokens,
                         b_best["gen_tokens"] / tokens if reach.height and b_best["acc"] > 0 else None))
    return pl.DataFrame(rows, schema=GAINS, orient="row")


def prover_rows(curves: pl.DataFrame, budget: int, method: str = "beam") -> pl.DataFrame:
    """CURVES rows of `method` with a prover at `budget`, with `label`, parsed `policy` and `K` (k column,
    else from the prover name): the per-K results."""
    c = curve_labels(curves).filter((pl.col("method") == method) & (pl.col("budget") == budget)
                                    & (pl.col("prover") != ""))
    parsed = [parse_prover(p) for p in c["prover"]]
    c = c.with_columns(policy=pl.Series([p for p, _ in parsed], dtype=pl.String),
                       K=pl.coalesce(pl.col("k").cast(pl.Int64),
                                     pl.Series([k for _, k in parsed], dtype=pl.Int64)))
    return c.filter(pl.col("K").is_not_null())


def alpha_rows(curves: pl.DataFrame | None, prover: str, budget: int) -> pl.DataFrame:
    """CURVES rows of the alpha curve: beam search with `prover` at `budget` for every alpha, plus the
    pqv alone (verifier "pqv", no prover) as alpha = 0; sorted by alpha."""
    if missing(curves):
        return pl.DataFrame(schema=CURVES)
    f = ((pl.col("method") == "beam") & (pl.col("budget") == budget)
         & (((pl.col("verifier") == "pqv+pav") & (pl.col("prover") == prover))
            | ((pl.col("verifier") == "pqv") & (pl.col("prover") == ""))))
    rows = curves.filter(f).with_columns(alpha=pl.when(pl.col("verifier") == "pqv").then(0.0).otherwise("alpha"))
    return rows.unique("alpha", keep="first", maintain_order=True).sort("alpha")


# ----------------------------------------------------------------------------- policies

def success_rates(pool: pl.DataFrame | None) -> pl.DataFrame:
    """SAMPLES table -> RATES: per (policy, split, problem) number of samples, correct, success rate."""
    if missing(pool):
        return pl.DataFrame(schema=RATES)
    return (pool.group_by(["policy", "split", "problem_id"])
            .agg(pl.len().cast(pl.Int64).alias("n_samples"),
                 pl.col("correct").cast(pl.Int64).sum().alias("n_correct"))
            .with_columns(success_rate=pl.col("n_correct") / pl.col("n_samples"))
            .select(list(RATES)).sort(["policy", "split", "problem_id"]))


def success_histogram(rates: pl.DataFrame) -> pl.DataFrame:
    """RATES -> HISTOGRAM per (policy, split): counts in [i/10, (i+1)/10) (last bin closed), then
    'never solved' (= 0) and 'always solved' (= 1), which are also inside the first / last bin."""
    if missing(rates):
        return pl.DataFrame(schema=HISTOGRAM)
    rows = []
    for (policy, split), g in rates.group_by(["policy", "split"], maintain_order=True):
        n, c = g["n_samples"].to_numpy(), g["n_correct"].to_numpy()
        idx = np.minimum(N_BINS * c // n, N_BINS - 1)  # integer arithmetic: exact bin edges
        counts = np.bincount(idx, minlength=N_BINS)
        for i in range(N_BINS):
            lo, hi = i / N_BINS, (i + 1) / N_BINS
            name = f"[{lo:.1f}, {hi:.1f}" + ("]" if i == N_BINS - 1 else ")")
            rows.append((policy, split, name, lo, hi, int(counts[i])))
        rows.append((policy, split, "= 0 (never solved)", 0.0, 0.0, int((c == 0).sum())))
        rows.append((policy, split, "= 1 (always solved)", 1.0, 1.0, int((c == n).sum())))
    return pl.DataFrame(rows, schema=HISTOGRAM, orient="row")


def pool_accuracy(rates: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """RATES -> (POOL, PASS_AT): per (policy, split) accuracy [95% CI], and pass@n for n = 2, 4, 8, ...
    and the largest n every problem of some policy has."""
    n_max = int(rates.group_by("policy").agg(pl.col("n_samples").min())["n_samples"].max())
    ns = sorted({2 ** i for i in range(1, n_max.bit_length())} | ({n_max} if n_max > 1 else set()))
    acc, passes = [], []
    for (policy, split), r in rates.group_by(["policy", "split"], maintain_order=True):
        n, c = r["n_samples"].to_numpy(), r["n_correct"].to_numpy()
        acc.append((policy, split, r.height, int(n.min()), int(n.max()), *mean_ci(r["success_rate"].to_numpy())))
        passes += [(policy, split, N, float(pass_at_k(n, c, N).mean())) for N in ns if N <= n.min()]
    return pl.DataFrame(acc, schema=POOL, orient="row"), pl.DataFrame(passes, schema=PASS_AT, orient="row")


# ----------------------------------------------------------------------------- RL

def rl_final(rl: pl.DataFrame | None) -> pl.DataFrame:
    """RL_CURVE -> one row per (arm, seed): the last evaluation (largest update)."""
    if missing(rl):
        return pl.DataFrame(schema={"arm": pl.String, "seed": pl.Int32})
    return (rl.sort(["arm", "seed", "update"]).group_by(["arm", "seed"], maintain_order=True).last()
            .sort(["arm", "seed"]))


def rl_arms(final: pl.DataFrame) -> pl.DataFrame:
    """rl_final -> RL_ARMS: each metric's mean over the seeds that have it."""
    rows = []
    for (arm,), g in final.group_by("arm", maintain_order=True):
        vals = [g[m].fill_nan(None).drop_nulls() for m in RL_METRICS]
        rows.append((arm, *[v.mean() if v.len() else None for v in vals]))
    return pl.DataFrame(rows, schema=RL_ARMS, orient="row")


def rl_seed_bands(rl: pl.DataFrame | None) -> pl.DataFrame | None:
    """Per (arm, update): mean samples seen, number of seeds, and <m>_mean / _min / _max over seeds of
    each of RL_METRICS (nan as missing)."""
    if missing(rl):
        return None
    return (rl.group_by(["arm", "update"])
            .agg(pl.col("samples_seen").mean(), pl.col("seed").n_unique().alias("n_seeds"),
                 *[e for m in RL_METRICS for e in (pl.col(m).fill_nan(None).mean().alias(f"{m}_mean"),
                                                pl.col(m).fill_nan(None).min().alias(f"{m}_min"),
                                                pl.col(m).fill_nan(None).max().alias(f"{m}_max"))])
            .sort(["arm", "update"]))


def rl_stopped(rl: pl.DataFrame) -> pl.DataFrame:
    """(arm, seed, update, stop_reason) of the runs a guardrail stopped, at their last update."""
    return (rl.filter(pl.col("stop_reason").is_not_null()).group_by(["arm", "seed"])
            .agg(pl.col("update").max(), pl.col("stop_reason").first()).sort(["arm", "seed"]))


def rl_metric(rl: pl.DataFrame) -> str:
    """The accuracy RL arms are compared on: sampled test accuracy, greedy when no samples were drawn."""
    return "test_acc_sampled" if rl["test_acc_sampled"].fill_nan(None).drop_nulls().len() else "test_acc_greedy"


PLATEAU_TAIL = 0.2  # the share of training samples over which a converged RL curve is flat (#18: the outcome arm's)


def rl_plateau(rl: pl.DataFrame | None, arm: str = "outcome", tail: float = PLATEAU_TAIL) -> dict | None:
    """How much `arm` still gains over its last `tail` of training samples: per seed, the accuracy of its
    last evaluation minus that of its first evaluation at or after (1 - tail) of the samples; the seed
    mean with a t CI over seeds (nan with one seed). A CI above 0: the curve is still rising, and RL
    stopped before it converged. None if the arm did not run or has no evaluation inside that window."""
    if missing(rl) or arm not in set(rl["arm"]):
        return None
    metric, g = rl_metric(rl), rl.filter(pl.col("arm") == arm)
    end = float(g["samples_seen"].max())
    start = g.filter(pl.col("samples_seen") >= (1 - tail) * end)["samples_seen"].min()
    if start is None or start >= end:
        return None
    at = lambda x: g.filter(pl.col("samples_seen") == x).select("seed", pl.col(metric).fill_nan(None).alias(str(x)))
    both = at(start).join(at(end), on="seed").drop_nulls()
    d = (both[str(end)] - both[str(start)]).to_numpy()
    if not d.size:
        return None
    lo, hi = t_ci(d)
    return {"arm": arm, "metric": metric, "tail": tail, "change": float(d.mean()), "ci_low": lo, "ci_high": hi,
            "from_samples": int(start), "to_samples": int(end), "n_seeds": int(d.size)}


RL_COSTS = {"samples": None, "tokens": ("gen_tokens", "verifier_tokens")}  # generated + verifier/rollout tokens


def rl_efficiency(rl: pl.DataFrame | None, baseline: str = "outcome", treated: str = "pav",
                  cost: str = "samples") -> dict | None:
    """stats.sample_efficiency of `treated` over `baseline` on sampled test accuracy (greedy when no
    samples were drawn), seeds as rows, in policy samples or in tokens (RL_COSTS: the policy's own
    generated tokens plus what its progress source spent, an oracle prover's MC rollouts included);
    None unless both arms ran."""
    if missing(rl) or not {baseline, treated} <= set(rl["arm"]):
        return None
    metric = rl_metric(rl)
    x = np.array(sorted(set(rl["samples_seen"].to_list())), dtype=np.float64)
    spent = None if RL_COSTS[cost] is None else sum(pl.col(c).cast(pl.Float64) for c in RL_COSTS[cost])

    def matrix(arm: str, value) -> np.ndarray:  # (seeds, points); nan where a seed has no evaluation
        g = rl.filter(pl.col("arm") == arm).with_columns(value=value)
        seeds = sorted(set(g["seed"].to_list()))
        out = np.full((len(seeds), len(x)), np.nan)
        for r in g.iter_rows(named=True):
            out[seeds.index(r["seed"]), np.searchsorted(x, r["samples_seen"])] = r["value"]
        return out

    costs = {} if spent is None else {"baseline_cost": matrix(baseline, spent), "treated_cost": matrix(treated, spent)}
    return {**sample_efficiency(x, matrix(baseline, pl.col(metric)), matrix(treated, pl.col(metric)), **costs),
            "metric": metric, "baseline": baseline, "treated": treated, "cost": cost}


# ----------------------------------------------------------------------------- verifiers

def metric_cells(metrics: pl.DataFrame) -> dict[tuple[str, str], dict]:
    """(subject, metric) -> row of a METRICS table, in the table's order; the first row wins on duplicates."""
    cell = {}
    for r in metrics.iter_rows(named=True):
        cell.setdefault((r["subject"], r["metric"]), r)
    return cell


def best_verifiers(quality: pl.DataFrame) -> dict[str, dict]:
    """QUALITY_PANELS metric -> the quality row of the best verifier on it (oracle rows are references)."""
    best = {}
    for m, (_, higher) in QUALITY_PANELS.items():
        d = (quality.filter((pl.col("metric") == m) & ~pl.col("subject").str.starts_with("oracle"))
             .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
             .sort("value", descending=higher))
        if d.height:
            best[m] = d.row(0, named=True)
    return best


def analytic_minus_trained(quality: pl.DataFrame, base_policy: str) -> list[tuple[str, str, list[tuple[str, float]]]]:
    """(pav_analytic_k<K>, pav_<base_policy>_k<K>, [(metric, analytic − trained)]) for every K both have."""
    cell = {(r["subject"], r["metric"]): r for r in quality.iter_rows(named=True)}
    subjects = quality["subject"].unique(maintain_order=True).to_list()
    out = []
    for a in (v for v in subjects if v.startswith("pav_analytic_k")):
        trained = f"pav_{Prover(base_policy, Verifier.parse(a).prover.k)}"
        if trained not in subjects:
            continue
        diffs = []
        for m in ("brier", "spearman_progress", "outcome_auroc", "first_error_f1"):
            x, y = cell.get((a, m)), cell.get((trained, m))
            if x and y and ok(x["value"]) and ok(y["value"]):
                diffs.append((m, x["value"] - y["value"]))
        if diffs:
            out.append((a, trained, diffs))
    return out


def data_scaling(quality: pl.DataFrame | None, n_seed: int | None, n_mc: int | None) -> pl.DataFrame:
    """Quality METRICS -> DATA_SCALING: DATA_SCALING_METRICS of every verifier trained on part of the data
    (.s<n>m<m>) and of its base trained on all of it, the point (n_seed, n_mc) (left out when either is
    None). Verifiers without a data variant of their own are left out."""
    if missing(quality):
        return pl.DataFrame(schema=DATA_SCALING)
    subjects = quality["subject"].unique(maintain_order=True).to_list()
    points = {}  # subject -> (base, seeds, rollouts per state)
    for s in subjects:
        try:
            v = Verifier.parse(s)
        except ValueError:  # the oracle rows
            continue
        if v.data is not None:
            points[s] = (str(v.all_data), *v.data)
    if n_seed and n_mc:
        points |= {b: (b, int(n_seed), int(n_mc)) for b, _, _ in list(points.values()) if b in subjects}
    cell, rows = metric_cells(quality), []
    for s, (base, n, m) in points.items():
        cost = cell.get((s, "label_rollouts"))
        rows += [(base, s, n, m, n * m, cost["value"] if cost else None, metric, r["value"], r["ci_low"], r["ci_high"],
                  r["n"]) for metric in DATA_SCALING_METRICS if (r := cell.get((s, metric)))]
    return pl.DataFrame(rows, schema=DATA_SCALING, orient="row").sort(["base", "budget", "n_seed", "metric"])
