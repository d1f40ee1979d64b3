"""Stage `search_val`: beam search on the first search.val_problems validation problems at
search.k_budget, for job.prover and every alpha in search.alpha_grid: the grid the val-chosen
configuration is picked from (stage `search_selected`). alpha = 0 (the pqv alone, no prover) is run
once, in the headline prover's job."""
import polars as pl

from pavflow.data import SEARCH
from pavflow.progress import progress
from pavflow.stages.common import load_problems, policy_sampler, prover_tags, stage_main
from pavflow.stages.search_runs import beam_config, pav_scorers, run_beam, subset, write_search
from pavflow.tasks import make_task


def alphas(cfg, prover: str) -> list[float]:
    grid = [float(a) for a in dict.fromkeys(cfg.search.alpha_grid)]
    return [a for a in grid if a != 0 or prover == cfg.search.prover]


@stage_main("search", lambda cfg: f"search-val-{cfg.job.prover}", lambda cfg: prover_tags(cfg.job.prover))
def main(cfg, layout, tracker) -> dict:
    s, prover, task = cfg.search, cfg.job.prover, make_task(cfg.task, cfg.seed)
    problems = subset(load_problems(layout, ["val"]), s.val_problems)
    sampler = policy_sampler(cfg, layout, cfg.sweep.policy, task)
    cache, tables = {}, []
    for a in progress(alphas(cfg, prover), desc=f"val beam search {prover} alpha grid"):
        step, final = pav_scorers(cfg, layout, prover, a, cache)
        tables.append(run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=step,
                               final_score=final, split="val", config=beam_config(a, prover)))
    res = pl.concat(tables) if tables else pl.DataFrame(schema=SEARCH)
    acc = write_search(cfg, layout, tracker, res, f"val_{prover}", "search/per_alpha")
    return {f"val_acc@{s.k_budget}_alpha{a}": x for a, x in zip(acc["alpha"], acc["acc"])}


if __name__ == "__main__":
    main()
