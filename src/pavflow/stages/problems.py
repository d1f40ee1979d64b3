"""Stage `problems`: the task's train/val/test problems as one table."""
from dataclasses import asdict

import polars as pl

from pavflow.data import PROBLEMS, write_table
from pavflow.stages.common import stage_main
from pavflow.tasks import make_task
from pavflow.tasks.arith import SPLITS


@stage_main("problems")
def main(cfg, job, tracker) -> dict:
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    df = pl.DataFrame([asdict(p) for s in SPLITS for p in task.problems(s)], schema=PROBLEMS)
    write_table(df, job.output.problems, PROBLEMS)
    return {f"n_{s}": df.filter(pl.col("split") == s).height for s in SPLITS}


if __name__ == "__main__":
    main()
