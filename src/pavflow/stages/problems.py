"""Stage `problems`: the task's train/val/test problems as one table."""
from dataclasses import asdict

import polars as pl

from pavflow.data import PROBLEMS, write_table
from pavflow.stages.common import record, stage_main
from pavflow.tasks import make_task
from pavflow.tasks.arith import SPLITS


@stage_main("problems", lambda cfg: "problems")
def main(cfg, layout, tracker) -> dict:
    task = make_task(cfg.task, cfg.seed)
    df = pl.DataFrame([asdict(p) for s in SPLITS for p in task.problems(s)], schema=PROBLEMS)
    write_table(df, layout.problems(), PROBLEMS)
    record(tracker, cfg, "problems", "table", layout.problems())
    return {f"n_{s}": df.filter(pl.col("split") == s).height for s in SPLITS}


if __name__ == "__main__":
    main()
