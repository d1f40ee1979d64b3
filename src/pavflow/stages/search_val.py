"""Stage `search_val`: beam search on the first search.val_problems validation problems at
search.k_budget, for job.prover and every alpha in search.alpha_grid: the grid the val-chosen
configuration is picked from (stage `search_selected`). alpha = 0 (the pqv alone, no prover) is run
once, in the headline prover's job."""
import polars as pl

from pavflow.data import SEARCH
from pavflow.registry import headline
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.search_runs import Scorers, beam_config, run_beam, subset, write_search
from pavflow.tasks import make_task


def alphas(cfg, prover: str) -> list[float]:
    grid = [float(a) for a in dict.fromkeys(cfg.search.alpha_grid)]
    return [a for a in grid if a != 0 or prover == str(headline(cfg))]


@stage_main("search_val")
def main(cfg, job, tracker) -> dict:
    s, prover, task = cfg.search, job.wildcards["prover"], make_task(cfg.task, cfg.seed, cfg.policy)
    problems = subset(load_problems(job.input.problems, ["val"]), s.val_problems)
    sampler = policy_sampler(cfg, job.input.policy, task)
    scorers = Scorers(cfg, job.input.policy, job.input.pqv, {prover: job.input.pav})
    tables = [run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=step, final_score=final,
                       split="val", config=beam_config(a, prover))
              for a in alphas(cfg, prover) for step, final in [scorers(prover, a)]]
    res = pl.concat(tables) if tables else pl.DataFrame(schema=SEARCH)
    acc = write_search(res, job.output.search, tracker, "search/per_alpha")
    return {f"val_acc@{s.k_budget}_alpha{a}": x for a, x in zip(acc["alpha"], acc["acc"])}


if __name__ == "__main__":
    main()
