"""Stage `seeds`: n_seed sampled responses per train/val problem from the base policy."""
import polars as pl

from pavflow.data import SAMPLES, write_table
from pavflow.rollouts import sample_responses
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.tasks import make_task


@stage_main("seeds")
def main(cfg, job, tracker) -> dict:
    task, r = make_task(cfg.task, cfg.seed, cfg.policy), cfg.rollouts
    sampler = policy_sampler(cfg, job.input.policy, task)
    df = sample_responses(sampler, task, load_problems(job.input.problems, r.splits), n=r.n_seed,
                          seed=derive_seed(cfg.seed, "seeds"), temperature=r.temperature,
                          max_new_tokens=r.max_new_tokens, policy=cfg.sweep.policy)
    write_table(df, job.output.seeds, SAMPLES)
    acc = df.group_by("split").agg(pl.col("correct").mean()).sort("split")
    return {**{f"acc_{s}": a for s, a in acc.iter_rows()}, "n_samples": df.height,
            "gen_tokens": int(df["gen_tokens"].sum()), "mean_steps": float(df["n_steps"].mean())}


if __name__ == "__main__":
    main()
