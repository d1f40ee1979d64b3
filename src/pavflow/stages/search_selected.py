"""Stage `search_selected`: no tuning on test. Reads the validation grid (stage `search_val`, every
prover x alpha at search.k_budget), chooses (prover, alpha) on it (`pavflow.search.select`), and runs
beam search with that choice on the test split at every budget. When the choice is the configured
headline (search.prover, search.alpha), the headline beam job's rows are reused: same
configuration, same seeds, same rows."""
import json

import polars as pl

from pavflow.config import provers
from pavflow.data import SEARCH, read_table
from pavflow.labels import prover_name
from pavflow.search.select import choose_on_val
from pavflow.stages.common import load_problems, log_search, policy_sampler, search_axes, stage_main
from pavflow.stages.search_runs import beam_config, pav_scorers, run_beam, write_search
from pavflow.tasks import make_task


@stage_main("search", lambda cfg: "search-selected")
def main(cfg, layout, tracker) -> dict:
    s, task = cfg.search, make_task(cfg.task, cfg.seed)
    val = pl.concat([read_table(layout.search(f"val_{prover_name(p, k)}"), SEARCH) for p, k in provers(cfg)])
    choice = choose_on_val(val)
    config = beam_config(choice["alpha"], choice["prover"])
    if choice["alpha"] == float(s.alpha) and choice["prover"] == s.prover and choice["alpha"] != 0:
        res = read_table(layout.search(f"beam_{s.prover}"), SEARCH)
        reused = True
    else:
        problems = load_problems(layout, [s.split])
        sampler = policy_sampler(cfg, layout, cfg.sweep.policy, task)
        step, final = pav_scorers(cfg, layout, choice["prover"], choice["alpha"], {})
        res = run_beam(cfg, sampler, task, problems, budgets=list(s.budgets), step_score=step,
                       final_score=final, split=s.split, config=config)
        reused = False
    acc = write_search(cfg, layout, tracker, res, "selected")
    search_axes(tracker)
    for r in acc.iter_rows(named=True):
        log_search(tracker, r["budget"], float(r["gen_tokens"]), {"beam_selected": float(r["acc"])})
    print(f"val choice: {json.dumps(choice)}; reused headline rows: {reused}")
    return {"chosen_prover": config["prover"] or "none (pqv alone)", "chosen_alpha": choice["alpha"],
            "val_acc": choice["val_acc"], "reused_headline": reused,
            **{f"beam_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}}


if __name__ == "__main__":
    main()
