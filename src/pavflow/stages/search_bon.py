"""Stage `search_bon`: best-of-N with the ORM, ORM-weighted and plain majority vote, and pass@N,
on the sampled pool, at every budget."""
import polars as pl

from pavflow.data import SAMPLES, SCORES, SEARCH, read_table, write_table
from pavflow.search.bon import bon_search
from pavflow.stages.common import load_problems, log_search, search_axes, stage_main
from pavflow.stages.scoring import load_verifier
from pavflow.tasks import make_task

USES_ORM = {"bon": "orm", "weighted_majority": "orm", "majority": "", "pass": ""}  # method -> verifier


@stage_main("search_bon")
def main(cfg, job, tracker) -> dict:
    task, s = make_task(cfg.task, cfg.seed, cfg.policy), cfg.search
    problems = {p.problem_id: p for p in load_problems(job.input.problems, [s.split])}
    pool = read_table(job.input.pool, SAMPLES).sort("problem_id", "sample_id")
    orm = load_verifier(cfg, "orm", job.input.orm, None)
    values, v_tokens = orm.score([task.prompt(problems[p].question) for p in pool["problem_id"]],
                                 [task.split_steps(r) for r in pool["response"]])
    pool = pool.with_columns(score=pl.Series([float(v[-1]) for v in values]),
                             verifier_tokens=pl.Series(v_tokens, dtype=pl.Int64),
                             answer=pl.Series([task.extract_answer(r) for r in pool["response"]], dtype=pl.String),
                             prompt_len=pl.col("prompt_tokens"))
    res = bon_search(pool, list(s.budgets))
    # verifier tokens of the first N samples: the cost of scoring them
    vt = pl.concat([pool.filter(pl.col("sample_id") < n).group_by("problem_id")
                    .agg(pl.col("verifier_tokens").sum()).with_columns(budget=pl.lit(n, pl.Int32))
                    for n in s.budgets])
    res = res.join(vt, on=["problem_id", "budget"], how="left")
    verifier = pl.col("method").replace_strict(USES_ORM)
    res = res.with_columns(verifier=verifier, split=pl.lit(s.split), prover=pl.lit(""),
                           k=pl.lit(0), alpha=pl.lit(0.0),
                           verifier_tokens=pl.when(verifier == "").then(0).otherwise(pl.col("verifier_tokens")))
    write_table(res, job.output.search, SEARCH)
    write_table(pool.select("problem_id", "sample_id", verifier=pl.lit("orm"), score="score"), job.output.scores, SCORES)
    acc = (res.group_by("method", "budget").agg(acc=pl.col("correct").mean(), gen_tokens=pl.col("gen_tokens").mean(),
                                                verifier_tokens=pl.col("verifier_tokens").mean())
           .sort("method", "budget"))
    search_axes(tracker)
    for n in s.budgets:  # every method reads the same first n samples: one gen_tokens per budget
        a = acc.filter(pl.col("budget") == n)
        log_search(tracker, n, float(a["gen_tokens"].max()), dict(zip(a["method"], a["acc"])))
    tracker.table("search/per_budget", acc)
    top = acc.filter(pl.col("budget") == max(s.budgets))
    return {f"{m}_acc@{max(s.budgets)}": x for m, x in zip(top["method"], top["acc"])}


if __name__ == "__main__":
    main()
