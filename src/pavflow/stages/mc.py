"""Stage `mc`: n_mc continuations by rollout policy job.rollout_policy from every step prefix of
every base-policy seed. Independent of any prover K."""
from pavflow.data import MC, SAMPLES, read_table, write_table
from pavflow.rollouts import mc_pool
from pavflow.stages.common import derive_seed, load_problems, policy_sampler, record, stage_main
from pavflow.tasks import make_task


@stage_main("mc", lambda cfg: f"mc-{cfg.job.rollout_policy}", lambda cfg: [f"rollout:{cfg.job.rollout_policy}"])
def main(cfg, layout, tracker) -> dict:
    rho, r = cfg.job.rollout_policy, cfg.rollouts
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    sampler = policy_sampler(cfg, layout, rho, task)
    problems = {p.problem_id: p for p in load_problems(layout, r.splits)}
    seeds = read_table(layout.seeds(), SAMPLES)
    df = mc_pool(sampler, task, problems, seeds, n_mc=r.n_mc, seed=derive_seed(cfg.seed, "mc", rho),
                 temperature=r.temperature, max_new_tokens=r.max_new_tokens, rollout_policy=rho)
    write_table(df, layout.mc(rho), MC)
    record(tracker, cfg, f"mc-{rho}", "table", layout.mc(rho))
    sampled = df.filter(df["gen_tokens"] > 0)
    return {"n_states": df.height, "gen_tokens": int(df["gen_tokens"].sum()),
            "mean_value": float((sampled["c"] / sampled["n"]).mean())}


if __name__ == "__main__":
    main()
