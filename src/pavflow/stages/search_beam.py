"""Stage `search_beam`: step-level beam search scored by the effective reward Q^pi + alpha * A^mu
(pqv + pav of job.prover). The headline prover runs every budget; the others run search.k_budget."""
from pavflow.names import Prover
from pavflow.registry import beam_budgets
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.search_runs import Scorers, run_beam, write_search
from pavflow.tasks import make_task


@stage_main("search_beam")
def main(cfg, job, tracker) -> dict:
    prover, s = job.wildcards["prover"], cfg.search
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = load_problems(job.input.problems, [s.split])
    sampler = policy_sampler(cfg, job.input.policy, task)
    step, final = Scorers(cfg, job.input.policy, job.input.pqv, {prover: job.input.pav})(prover, s.alpha)
    config = {"method": "beam", "verifier": "pqv+pav", "prover": prover, "k": Prover.parse(prover).k,
              "alpha": float(s.alpha)}  # even at alpha = 0: this is the prover's curve
    res = run_beam(cfg, sampler, task, problems, budgets=beam_budgets(cfg, prover), step_score=step,
                   final_score=final, split=s.split, config=config)
    acc = write_search(res, job.output.search, tracker, curve="beam")
    return {f"beam_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}


if __name__ == "__main__":
    main()
