"""Stage `report`: every table of the study -> results/<experiment>/report/ (summary.md and
summary.html with 95% CIs, curves, headline.json, the resolved config.yaml, PNG + SVG figures)."""
import json

import polars as pl
from omegaconf import OmegaConf

from pavflow.data import (CALIBRATION, CURVES, METRICS, RL_CURVE, SAMPLES, SCORES, SEARCH, TRAIN_LOG, atomic_file,
                          read_table, write_text)
from pavflow.registry import headline as headline_prover
from pavflow.report import (StudyTables, headline, plot_accuracy_vs_budget, plot_accuracy_vs_tokens, plot_alpha,
                            plot_bon_diagnosis, plot_calibration, plot_data_scaling, plot_headline, plot_oracle_k,
                            plot_prover_k, plot_rl_curves, plot_success_histogram, plot_train_logs,
                            plot_verifier_quality, prover_rows, rl_final, rl_seed_bands, save, search_curves,
                            write_summary)
from pavflow.search.select import choose_on_val
from pavflow.stages.common import load_problems, stage_main
from pavflow.tasks import make_task


@stage_main("report")
def main(cfg, job, tracker) -> dict:
    inp, s, prover = job.input, cfg.search, str(headline_prover(cfg))
    out = job.output.summary.parent
    out.mkdir(parents=True, exist_ok=True)
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    questions = {p.problem_id: p for p in load_problems(inp.problems, [s.split])}
    pool = read_table(inp.pool, SAMPLES)
    pool = pool.with_columns(kind=pl.Series([  # the first error of each response: why best-of-N picks wrong
        task.diagnose(questions[p].question, r, questions[p].answer) if p in questions else None
        for p, r in zip(pool["problem_id"], pool["response"])], dtype=pl.String))
    keys = ["problem_id", "split", "method", "verifier", "prover", "k", "alpha", "budget"]
    # one row per problem and configuration: the val-chosen run repeats a configuration's rows when it
    # is one already run (same configuration, same seeds)
    search = pl.concat([read_table(p, SEARCH) for p in inp.search]).unique(keys, keep="first", maintain_order=True)
    search = search.filter(pl.col("split") == s.split)
    val = pl.concat([read_table(p, SEARCH) for p in inp.val])
    choice = choose_on_val(val)
    curves = search_curves(search, split=s.split)
    with atomic_file(job.output.curves) as tmp:
        curves.write_parquet(tmp)
    # figures: PRM best-of-N with search.aggregate only (every aggregation is in the summary's tables);
    # the prover-K curve at the configured alpha
    shown = curves.filter(~pl.col("verifier").str.contains(":") | pl.col("verifier").str.ends_with(f":{s.aggregate}"))
    shown = shown.filter(~((pl.col("method") == "weighted_majority") & pl.col("verifier").str.contains(":")))
    at_alpha = curves.filter((pl.col("alpha") - s.alpha).abs() < 1e-12)
    rl = pl.concat([read_table(p, RL_CURVE) for p in inp.rl])
    metrics = pl.concat([read_table(p, METRICS) for p in inp.verifier_metrics.values()])
    quality, calib = read_table(inp.quality, METRICS), read_table(inp.calibration, CALIBRATION)
    logs = pl.concat([read_table(p, TRAIN_LOG) for p in inp.logs])
    study = StudyTables(cfg.name, pool=pool, scores=read_table(inp.scores, SCORES), curves=curves, search=search, val=val, choice=choice, rl=rl,
                        verifier_metrics=metrics, quality=quality, prover=prover, k_budget=s.k_budget,
                        alpha=float(s.alpha), aggregate=s.aggregate, n_seed=int(cfg.rollouts.n_seed),
                        n_mc=int(cfg.rollouts.n_mc))
    numbers = headline(study)
    beam = numbers.comparison.beam if numbers.comparison is not None else None
    drawn = [plot_headline(curves, beam), plot_accuracy_vs_tokens(shown), plot_accuracy_vs_budget(shown),
             plot_prover_k(at_alpha, s.k_budget, base_policy=cfg.sweep.policy),
             plot_alpha(curves, prover, s.k_budget),
             plot_rl_curves(rl_seed_bands(rl)), plot_verifier_quality(quality), plot_calibration(calib),
             plot_success_histogram(numbers.pool, numbers.histogram), plot_train_logs(logs),
             plot_bon_diagnosis(numbers.top_picks, numbers.deciles), plot_data_scaling(numbers.data_scaling),
             plot_oracle_k(numbers.oracle_k, cfg.sweep.policy, s.k_budget)]
    figures = [path for fig in drawn if fig is not None for path in save(fig, out)]
    config = OmegaConf.to_yaml(cfg, resolve=True)
    write_text(job.output.config, config)
    write_summary(out, study, numbers, figures=[f for f in figures if f.suffix == ".png"], config=config)
    head = numbers.as_dict()
    write_text(job.output.headline, json.dumps(head, indent=2, sort_keys=True))
    per_k = prover_rows(at_alpha, s.k_budget).select("policy", "K", *[c for c in CURVES if c != "k"])
    tracker.table("report/per_budget", curves)  # accuracy [95% CI] and tokens per configuration and N
    tracker.table("report/per_k", per_k)  # beam search at N = search.k_budget per prover
    tracker.table("report/verifier_quality", quality)
    tracker.table("report/rl_final", rl_final(rl))
    if numbers.data_scaling is not None:
        tracker.table("report/data_scaling", numbers.data_scaling)
    tracker.summary({k: v for k, v in head.items() if isinstance(v, (int, float))})
    return {"n_figures": sum(f.suffix == ".png" for f in figures)}


if __name__ == "__main__":
    main()
