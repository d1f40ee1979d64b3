"""Stage `search_selected`: no tuning on test. Reads the validation grid (stage `search_val`, every
prover x alpha at search.k_budget), chooses (prover, alpha) on it (`pavflow.search.select`), and runs
beam search with that choice on the search split at every budget. When the choice is the configured
headline (search.prover, search.alpha), the headline beam job's rows are reused: same
configuration, same seeds, same rows."""
import json

import polars as pl

from pavflow.data import SEARCH, read_table
from pavflow.registry import headline
from pavflow.search.select import choose_on_val
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import policy_sampler
from pavflow.stages.search_runs import Scorers, beam_config, run_beam, write_search
from pavflow.tasks import make_task


@stage_main("search_selected")
def main(cfg, job, tracker) -> dict:
    s, task = cfg.search, make_task(cfg.task, cfg.seed, cfg.policy)
    choice = choose_on_val(pl.concat([read_table(p, SEARCH) for p in job.input.val]))
    config = beam_config(choice["alpha"], choice["prover"])
    reused = choice["alpha"] == float(s.alpha) and choice["prover"] == str(headline(cfg)) and choice["alpha"] != 0
    if reused:
        res = read_table(job.input.headline, SEARCH)
    else:
        problems = load_problems(job.input.problems, [s.split])
        sampler = policy_sampler(cfg, job.input.policy, task)
        pavs = {p: {f"pav_{p}": path} for p, path in job.input.pav.items()}
        step, final = Scorers(cfg, job.input.policy, job.input.pqv, pavs)(choice["prover"], choice["alpha"])
        res = run_beam(cfg, sampler, task, problems, budgets=list(s.budgets), step_score=step,
                       final_score=final, split=s.split, config=config)
    acc = write_search(res, job.output.search, tracker, curve="beam_selected")
    print(f"val choice: {json.dumps(choice)}; reused headline rows: {reused}")
    return {"chosen_prover": config["prover"] or "none (pqv alone)", "chosen_alpha": choice["alpha"],
            "val_acc": choice["val_acc"], "reused_headline": reused,
            **{f"beam_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}}


if __name__ == "__main__":
    main()
