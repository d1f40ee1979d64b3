"""Stage `search_pool`: max(budgets) sampled responses per search-split problem from the base
policy; best-of-N and voting at every budget N read their first N samples from it."""
import polars as pl

from pavflow.data import SAMPLES, write_table
from pavflow.rollouts import sample_responses
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.tasks import make_task


@stage_main("search_pool")
def main(cfg, job, tracker) -> dict:
    task, s = make_task(cfg.task, cfg.seed, cfg.policy), cfg.search
    sampler = policy_sampler(cfg, job.input.policy, task)
    df = sample_responses(sampler, task, load_problems(job.input.problems, [s.split]), n=max(s.budgets),
                          seed=derive_seed(cfg.seed, "search-pool"), temperature=s.temperature,
                          max_new_tokens=s.max_new_tokens, policy=cfg.sweep.policy)
    write_table(df, job.output.pool, SAMPLES)
    rates = df.group_by("problem_id").agg(pl.col("correct").mean())["correct"]
    return {"sampled_acc": float(df["correct"].mean()), "n_problems": rates.len(),
            "never_solved": int((rates == 0).sum()), "always_solved": int((rates == 1).sum())}


if __name__ == "__main__":
    main()
