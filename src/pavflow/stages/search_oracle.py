"""Stage `search_oracle` (only with search.oracle): beam search whose step and final scores are fresh
Monte-Carlo rollouts of the base policy (search.oracle_rollouts per candidate), on the first
search.oracle_problems problems of the search split, at every budget. An upper bound for learned
verifiers; the rollouts' tokens are its verifier cost."""
import polars as pl

from pavflow.progress import progress
from pavflow.oracle import MCOracle
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.search_runs import run_beam, subset, write_search
from pavflow.tasks import make_task


@stage_main("search_oracle")
def main(cfg, job, tracker) -> dict:
    s, task = cfg.search, make_task(cfg.task, cfg.seed, cfg.policy)
    problems = subset(load_problems(job.input.problems, [s.split]), s.oracle_problems)
    sampler = policy_sampler(cfg, job.input.policy, task)
    answers = {task.prompt(p.question): p.answer for p in problems}
    config = {"method": "beam", "verifier": "oracle", "prover": "", "k": 0, "alpha": 0.0}
    tables = []
    for n in progress(list(s.budgets), desc="oracle beam search budgets"):
        score = MCOracle(sampler, task, answers, n=s.oracle_rollouts, seed=derive_seed(cfg.seed, "oracle", n),
                         temperature=s.temperature, max_new_tokens=s.max_new_tokens).last_value()
        tables.append(run_beam(cfg, sampler, task, problems, budgets=[n], step_score=score, final_score=score,
                               split=s.split, config=config))
    acc = write_search(pl.concat(tables), job.output.search, tracker, curve="beam_oracle")
    return {f"oracle_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}


if __name__ == "__main__":
    main()
