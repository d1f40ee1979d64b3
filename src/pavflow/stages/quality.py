"""Stage `quality`: every verifier of the study (trained, analytic, implicit, label variants) and the
MC labels themselves (`oracle` rows) scored on the held-out val seeds against fresh MC pools
(pavflow.verifiers.quality), one table per experiment plus calibration curves."""
import numpy as np
import polars as pl

from pavflow.config import provers
from pavflow.data import CALIBRATION, MC, METRICS, SAMPLES, read_table, write_table
from pavflow.labels import bok_value
from pavflow.names import Verifier
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.scoring import load_verifier
from pavflow.tasks import make_task
from pavflow.verifiers.quality import Scored, fit_first_error_threshold, quality_rows


def state_values(pool: pl.DataFrame, seeds: pl.DataFrame, k: int | None = None) -> list[np.ndarray]:
    """Per seed response (in `seeds` order) the pool's value at s_0..s_H: c/n, or V^{BoK} if k is given."""
    v = pool["c"].to_numpy() / pool["n"].to_numpy() if k is None else \
        bok_value(pool["n"].to_numpy(), pool["c"].to_numpy(), k)
    pool = pool.select("problem_id", "sample_id", "h").with_columns(v=pl.Series(v))
    by = {key: g.sort("h")["v"].to_numpy() for key, g in pool.group_by(["problem_id", "sample_id"])}
    out = []
    for pid, sid, n_steps in seeds.select("problem_id", "sample_id", "n_steps").iter_rows():
        vals = by.get((pid, sid))
        if vals is None or len(vals) != n_steps + 1:
            raise ValueError(f"MC pool lacks states of seed ({pid}, sample {sid}): expected "
                             f"{n_steps + 1}, found {0 if vals is None else len(vals)}")
        out.append(vals)
    return out


@stage_main("quality")
def main(cfg, job, tracker) -> dict:
    task, base = make_task(cfg.task, cfg.seed, cfg.policy), cfg.sweep.policy
    problems = {p.problem_id: p for p in load_problems(job.input.problems, ["train", "val"])}
    seeds = read_table(job.input.seeds, SAMPLES).sort("split", "problem_id", "sample_id")
    split = {s: seeds.filter(pl.col("split") == s) for s in ("train", "val")}
    text = {s: ([task.prompt(problems[p].question) for p in d["problem_id"]],
                [task.split_steps(r) for r in d["response"]]) for s, d in split.items()}
    pools = {rho: read_table(path, MC) for rho, path in job.input.mc.items()}
    fresh = {rho: read_table(path, MC) for rho, path in job.input.mc_fresh.items()}
    outcomes = split["val"]["correct"].to_numpy().astype(np.float64)
    groups = split["val"]["problem_id"].to_list()
    q_pi_train = state_values(pools[base].filter(pl.col("split") == "train"), split["train"])
    q_pi_fresh = state_values(fresh[base], split["val"])

    def truth_of(rho: str, k: int | None) -> list[np.ndarray]:
        return state_values(fresh[rho], split["val"], k)

    def score(name: str, s: str) -> Scored:
        v = load_verifier(cfg, name, job.input.verifiers[name], job.input.policy)
        values, _ = v.score(*text[s])
        q = v.q(*text[s])[0] if hasattr(v, "q") else values  # implicit PRMs: progress is q_h - q_{h-1}
        return Scored([np.asarray(x, dtype=np.float64) for x in values], [np.diff(x) for x in q])

    def rows(name: str, val: Scored, train: Scored, truth: list[np.ndarray]):
        thr = fit_first_error_threshold(train, q_pi_train)
        return quality_rows(name, val, truth, [np.diff(t) for t in truth], q_pi_fresh, outcomes, thr, groups,
                            n_bins=cfg.verifier.quality_bins)

    tables = []
    for name in job.input.verifiers:
        spec = Verifier.parse(name)
        if spec.kind in ("pav", "pav_analytic"):
            truth = truth_of(base if spec.prover.analytic else spec.prover.policy, spec.prover.k)
        else:
            truth = truth_of(base, None)
        tables.append(rows(name, score(name, "val"), score(name, "train"), truth))
    # the labels themselves: the first pool's estimates, judged by the fresh pool (MC noise, no model)
    for name, rho, k in [("oracle", base, None)] + [(f"oracle_{p}", p.policy, p.k) for p in provers(cfg)]:
        val = state_values(pools[rho].filter(pl.col("split") == "val"), split["val"], k)
        train = state_values(pools[rho].filter(pl.col("split") == "train"), split["train"], k)
        tables.append(rows(name, Scored(val, [np.diff(v) for v in val]), Scored(train, [np.diff(v) for v in train]),
                           truth_of(rho, k)))
    cost = pl.concat([read_table(path, METRICS) for path in job.input.metrics.values()]) \
        .filter(pl.col("metric").is_in(["label_rollouts", "label_states"]))
    metrics = pl.concat([t[0] for t in tables] + [cost])
    calib = pl.concat([t[1] for t in tables])
    write_table(metrics, job.output.quality, METRICS)
    write_table(calib, job.output.calibration, CALIBRATION)
    tracker.table("verifiers/quality", metrics)
    best = {}
    for m, higher in (("brier", False), ("spearman_progress", True), ("outcome_auroc", True), ("first_error_f1", True)):
        d = metrics.filter((pl.col("metric") == m) & ~pl.col("subject").str.starts_with("oracle")).drop_nulls("value") \
            .filter(pl.col("value").is_not_nan()).sort("value", descending=higher)
        if d.height:
            best[f"best_{m}"] = f"{d['subject'][0]} ({d['value'][0]:.3f})"
    return {"n_verifiers": len(tables), **best}


if __name__ == "__main__":
    main()
