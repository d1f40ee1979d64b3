"""Stages `mc` and `mc_fresh`: n_mc continuations by rollout policy job.policy from every step prefix
of every base-policy seed. Independent of any prover K. `mc_fresh` is a second pool, on the val seeds
only and from an independent random stream, that the quality table scores every verifier (and the
first pool's labels themselves, the oracle) against. `mc` also keeps its continuations as graded
responses (the training set of the orm.rollouts ORM)."""
import polars as pl

from pavflow.data import CONTINUATIONS, MC, SAMPLES, Rows, read_table, write_table
from pavflow.rollouts import continuation_table, mc_pool
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.tasks import make_task


@stage_main("mc")
def main(cfg, job, tracker) -> dict:
    rho, r, fresh = job.wildcards["policy"], cfg.rollouts, job.stage.name == "mc_fresh"
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    sampler = policy_sampler(cfg, job.input.policy, task)
    splits = ["val"] if fresh else list(r.splits)
    problems = {p.problem_id: p for p in load_problems(job.input.problems, splits)}
    seeds = read_table(job.input.seeds, SAMPLES).filter(pl.col("split").is_in(splits))
    kept = Rows(CONTINUATIONS) if "continuations" in job.output else None
    df = mc_pool(sampler, task, problems, seeds, n_mc=r.n_mc,
                 seed=derive_seed(cfg.seed, "mc-fresh" if fresh else "mc", rho),
                 temperature=r.temperature, max_new_tokens=r.max_new_tokens, rollout_policy=rho, continuations=kept)
    write_table(df, job.output.mc, MC)
    if kept is not None:
        write_table(continuation_table(kept), job.output.continuations, CONTINUATIONS)
    sampled = df.filter(df["gen_tokens"] > 0)
    return {"n_states": df.height, "gen_tokens": int(df["gen_tokens"].sum()),
            "mean_value": float((sampled["c"] / sampled["n"]).mean())}


if __name__ == "__main__":
    main()
