"""Stage `search_alpha`: the alpha curve. Beam search with the headline prover at search.k_budget on
the search split for every alpha in search.alpha_grid except search.alpha (that one is the headline
beam job's). alpha = 0 is beam search on the pqv alone."""
import polars as pl

from pavflow.data import SEARCH
from pavflow.registry import headline
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.search_runs import Scorers, beam_config, run_beam, write_search
from pavflow.tasks import make_task


def alphas(cfg) -> list[float]:
    return [float(a) for a in dict.fromkeys(cfg.search.alpha_grid) if float(a) != float(cfg.search.alpha)]


@stage_main("search_alpha")
def main(cfg, job, tracker) -> dict:
    s, task, prover = cfg.search, make_task(cfg.task, cfg.seed, cfg.policy), str(headline(cfg))
    problems = load_problems(job.input.problems, [s.split])
    sampler = policy_sampler(cfg, job.input.policy, task)
    scorers = Scorers(cfg, job.input.policy, job.input.pqv, {prover: job.input.pav})
    tables = [run_beam(cfg, sampler, task, problems, budgets=[s.k_budget], step_score=step, final_score=final,
                       split=s.split, config=beam_config(a, prover))
              for a in alphas(cfg) for step, final in [scorers(prover, a)]]
    res = pl.concat(tables) if tables else pl.DataFrame(schema=SEARCH)
    acc = write_search(res, job.output.search, tracker, "search/per_alpha")
    return {f"beam_acc@{s.k_budget}_alpha{a}": x for a, x in zip(acc["alpha"], acc["acc"])}


if __name__ == "__main__":
    main()
