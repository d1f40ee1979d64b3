"""Stage `search_prm`: best-of-N and verifier-weighted majority vote with a process verifier
(job.verifier: registry.prm_verifiers, e.g. the pqv or the headline prover's pav) on the sampled pool, its step values
aggregated by each of last | min | prod | mean (verifier column "<verifier>:<aggregation>")."""
import numpy as np
import polars as pl

from pavflow.data import SAMPLES, SEARCH, read_table, write_table
from pavflow.search.bon import aggregate_prm, bon_search
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.scoring import verifiers
from pavflow.tasks import make_task

AGGREGATIONS = ("last", "min", "prod", "mean")
METHODS = ("bon", "weighted_majority")


@stage_main("search_prm")
def main(cfg, job, tracker) -> dict:
    task, s, name = make_task(cfg.task, cfg.seed, cfg.policy), cfg.search, job.wildcards["verifier"]
    problems = {p.problem_id: p for p in load_problems(job.input.problems, [s.split])}
    pool = read_table(job.input.pool, SAMPLES).sort("problem_id", "sample_id")
    values, v_tokens = verifiers(cfg, job.input.verifier, job.input.policy)[name].score(
        [task.prompt(problems[p].question) for p in pool["problem_id"]], [task.split_steps(r) for r in pool["response"]])
    pool = pool.with_columns(verifier_tokens=pl.Series(v_tokens, dtype=pl.Int64), prompt_len=pl.col("prompt_tokens"),
                             answer=pl.Series([task.extract_answer(r) for r in pool["response"]], dtype=pl.String))
    vt = pl.concat([pool.filter(pl.col("sample_id") < n).group_by("problem_id")
                    .agg(pl.col("verifier_tokens").sum()).with_columns(budget=pl.lit(n, pl.Int32))
                    for n in s.budgets])
    tables = []
    for how in AGGREGATIONS:  # PRM step values are v(s_h) at h = 1..H
        scored = pool.with_columns(score=pl.Series([aggregate_prm(np.asarray(v)[1:], how) for v in values],
                                                   dtype=pl.Float64))
        res = bon_search(scored, list(s.budgets)).filter(pl.col("method").is_in(list(METHODS)))
        tables.append(res.with_columns(verifier=pl.lit(f"{name}:{how}")))
    res = (pl.concat(tables).join(vt, on=["problem_id", "budget"], how="left")
           .with_columns(split=pl.lit(s.split), prover=pl.lit(""), k=pl.lit(0), alpha=pl.lit(0.0)))
    write_table(res, job.output.search, SEARCH)
    acc = (res.group_by("method", "verifier", "budget")
           .agg(acc=pl.col("correct").cast(pl.Float64).mean(), gen_tokens=pl.col("gen_tokens").mean(),
                verifier_tokens=pl.col("verifier_tokens").mean()).sort("method", "verifier", "budget"))
    tracker.table("search/per_budget", acc)
    top = acc.filter(pl.col("budget") == max(s.budgets))
    return {f"{m}_{v}_acc@{max(s.budgets)}": x for m, v, x in zip(top["method"], top["verifier"], top["acc"])}


if __name__ == "__main__":
    main()
