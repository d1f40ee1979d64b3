"""Stage `mc`: n_mc continuations by rollout policy job.rollout_policy from every step prefix of
every base-policy seed. Independent of any prover K. With job.fresh: a second pool, on the val seeds
only and from an independent random stream, that the quality table scores every verifier (and the
first pool's labels themselves, the oracle) against."""
import polars as pl

from pavflow.data import MC, SAMPLES, read_table, write_table
from pavflow.rollouts import mc_pool
from pavflow.stages.common import derive_seed, load_problems, policy_sampler, record, stage_main
from pavflow.tasks import make_task


def _name(cfg) -> str:
    return f"mc-{'fresh-' if cfg.job.fresh else ''}{cfg.job.rollout_policy}"


@stage_main("mc", _name, lambda cfg: [f"rollout:{cfg.job.rollout_policy}"] + (["fresh"] if cfg.job.fresh else []))
def main(cfg, layout, tracker) -> dict:
    rho, r, fresh = cfg.job.rollout_policy, cfg.rollouts, cfg.job.fresh
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    sampler = policy_sampler(cfg, layout, rho, task)
    splits = ["val"] if fresh else list(r.splits)
    problems = {p.problem_id: p for p in load_problems(layout, splits)}
    seeds = read_table(layout.seeds(), SAMPLES).filter(pl.col("split").is_in(splits))
    df = mc_pool(sampler, task, problems, seeds, n_mc=r.n_mc,
                 seed=derive_seed(cfg.seed, "mc-fresh" if fresh else "mc", rho),
                 temperature=r.temperature, max_new_tokens=r.max_new_tokens, rollout_policy=rho)
    out = layout.mc_fresh(rho) if fresh else layout.mc(rho)
    write_table(df, out, MC)
    record(tracker, cfg, _name(cfg), "table", out)
    sampled = df.filter(df["gen_tokens"] > 0)
    return {"n_states": df.height, "gen_tokens": int(df["gen_tokens"].sum()),
            "mean_value": float((sampled["c"] / sampled["n"]).mean())}


if __name__ == "__main__":
    main()
