"""Stage `search_alpha`: the alpha curve. Beam search with the headline prover at search.k_budget on
the test split for every alpha in search.alpha_grid except search.alpha (that one is the headline
beam job's). alpha = 0 is beam search on the pqv alone."""
import polars as pl

from pavflow.data import SEARCH
from pavflow.progress import progress
from pavflow.stages.common import load_problems, policy_sampler, prover_tags, stage_main
from pavflow.stages.search_runs import beam_config, pav_scorers, run_beam, write_search
from pavflow.tasks import make_task


def alphas(cfg) -> list[float]:
    return [float(a) for a in dict.fromkeys(cfg.search.alpha_grid) if float(a) != float(cfg.search.alpha)]


@stage_main("search", lambda cfg: "search-alpha", lambda cfg: prover_tags(cfg.search.prover))
def main(cfg, layout, tracker) -> dict:
    s, task = cfg.search, make_task(cfg.task, cfg.seed)
    problems = load_problems(layout, [s.split])
    sampler = policy_sampler(cfg, layout, cfg.sweep.policy, task)
    cache, tables = {}, []
    for a in progress(alphas(cfg), desc=f"beam search {s.prover} alpha grid"):
        step, final = pav_scorers(cfg, layout, s.prover, a, cache)
        tables.append(run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=step,
                               final_score=final, split=s.split, config=beam_config(a, s.prover)))
    res = pl.concat(tables) if tables else pl.DataFrame(schema=SEARCH)
    acc = write_search(cfg, layout, tracker, res, "alpha", "search/per_alpha")
    return {f"beam_acc@{s.k_budget}_alpha{a}": x for a, x in zip(acc["alpha"], acc["acc"])}


if __name__ == "__main__":
    main()
