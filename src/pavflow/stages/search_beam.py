"""Stage `search_beam`: step-level beam search scored by the effective reward Q^pi + alpha * A^mu
(pqv + pav of job.prover). The headline prover runs every budget; the others run search.k_budget."""
import polars as pl

from pavflow.data import SEARCH, write_table
from pavflow.labels import parse_prover
from pavflow.progress import progress
from pavflow.search.beam import beam_search, effective_reward, last_value
from pavflow.stages.common import (derive_seed, load_problems, load_verifier, log_search, policy_sampler,
                                    prover_tags, record, search_axes, stage_main)
from pavflow.study import beam_budgets
from pavflow.tasks import make_task


@stage_main("search", lambda cfg: f"search-beam-{cfg.job.prover}",
            lambda cfg: prover_tags(cfg.job.prover))
def main(cfg, layout, tracker) -> dict:
    prover, s = cfg.job.prover, cfg.search
    _, k = parse_prover(prover)
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = load_problems(layout, [s.split])
    sampler = policy_sampler(cfg, layout, cfg.sweep.policy, task)
    pqv, pav = load_verifier(cfg, layout, "pqv"), load_verifier(cfg, layout, f"pav_{prover}")
    step_score = effective_reward(pqv.score, pav.score, s.alpha)
    search_axes(tracker)
    tables = []
    for n in progress(beam_budgets(cfg, prover), desc=f"beam search {prover} budgets"):
        out = beam_search(sampler, task, [p.question for p in problems], budget=n, expansions=s.expansions,
                          step_score_fn=step_score, final_score_fn=last_value(pqv.score),
                          seed=derive_seed(cfg.seed, "beam", n), max_steps=s.max_steps,
                          max_step_tokens=s.max_step_tokens, temperature=s.temperature)
        df = pl.DataFrame({
            "problem_id": [p.problem_id for p in problems], "split": s.split, "method": "beam",
            "verifier": "pqv+pav", "prover": prover, "k": k, "alpha": float(s.alpha), "budget": n,
            "correct": [task.grade(o["response"], p.answer) for o, p in zip(out, problems)],
            **{c: [o[c] for o in out] for c in ("gen_tokens", "prompt_tokens", "verifier_tokens")}})
        tables.append(df)
        log_search(tracker, n, float(df["gen_tokens"].mean()), {"beam": float(df["correct"].mean())})
    res = pl.concat(tables)
    write_table(res, layout.search(f"beam_{prover}"), SEARCH)
    record(tracker, cfg, f"search-beam-{prover}", "table", layout.search(f"beam_{prover}"))
    acc = (res.group_by("budget").agg(acc=pl.col("correct").mean(), gen_tokens=pl.col("gen_tokens").mean(),
                                      verifier_tokens=pl.col("verifier_tokens").mean()).sort("budget"))
    tracker.table("search/per_budget", acc.select(pl.lit(prover).alias("prover"), pl.lit(k).alias("k"), pl.all()))
    return {f"beam_acc@{n}": a for n, a in zip(acc["budget"], acc["acc"])}


if __name__ == "__main__":
    main()
