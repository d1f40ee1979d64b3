"""Stage `search_beam_mc` (only with search.oracle): beam search at search.k_budget scored by the MC
effective reward of prover job.prover, Q^pi + alpha * A^mu, both from fresh rollouts (pavflow.oracle):
the base policy's for Q^pi, the prover's policy's for V^mu = BoK_K. No verifier error enters, so the
prover-K curve of these runs is the prover effect itself. The answer is the pool's candidate with the
highest Q^pi of its last state, which for a finished candidate is its grade: compare with pass@N."""
from pavflow.names import Prover
from pavflow.oracle import MC_VERIFIER, MCOracle, effective_reward
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.search_runs import run_beam, subset, write_search
from pavflow.tasks import make_task


@stage_main("search_beam_mc")
def main(cfg, job, tracker) -> dict:
    s, prover = cfg.search, Prover.parse(job.wildcards["prover"])
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = subset(load_problems(job.input.problems, [s.split]), s.oracle_problems)
    answers = {task.prompt(p.question): p.answer for p in problems}
    sampler = policy_sampler(cfg, job.input.policy, task)

    def oracle(sampler_, who):
        return MCOracle(sampler_, task, answers, n=s.oracle_rollouts, seed=derive_seed(cfg.seed, "beam-mc", who),
                        temperature=cfg.rollouts.temperature, max_new_tokens=s.max_new_tokens)
    q_pi = oracle(sampler, cfg.sweep.policy)
    mu = q_pi if job.input.prover_policy == job.input.policy else \
        oracle(policy_sampler(cfg, job.input.prover_policy, task, prover.policy), prover.policy)
    config = {"method": "beam", "verifier": MC_VERIFIER, "prover": str(prover), "k": prover.k, "alpha": float(s.alpha)}
    res = run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=effective_reward(q_pi, mu, prover.k, s.alpha),
                   final_score=q_pi.last_value(), split=s.split, config=config)
    acc = write_search(res, job.output.search, tracker)
    return {f"beam_mc_acc@{s.k_budget}": float(acc["acc"][0]), "rollout_tokens": q_pi.rollout_tokens +
            (mu.rollout_tokens if mu is not q_pi else 0)}


if __name__ == "__main__":
    main()
