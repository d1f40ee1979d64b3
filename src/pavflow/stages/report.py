"""Stage `report`: every table of the study -> results/<experiment>/report/ (summary.md and
summary.html with 95% CIs, curves, headline.json, the resolved config.yaml, PNG + SVG figures)."""
import json

import polars as pl
from omegaconf import OmegaConf

from pavflow.config import rollout_policies
from pavflow.data import (CALIBRATION, CURVES, METRICS, RL_CURVE, SAMPLES, SEARCH, TRAIN_LOG, atomic_file, read_table,
                          write_text)
from pavflow.report import (StudyTables, headline, plot_accuracy_vs_budget, plot_accuracy_vs_tokens, plot_alpha,
                            plot_calibration, plot_prover_k, plot_rl_curves, plot_success_histogram, plot_train_logs,
                            plot_verifier_quality, prover_rows, rl_final, rl_seed_bands, save, search_curves,
                            write_summary)
from pavflow.search.select import choose_on_val
from pavflow.stages.common import record, stage_main
from pavflow.study import study_jobs


@stage_main("report", lambda cfg: "report")
def main(cfg, layout, tracker) -> dict:
    out = layout.report()
    out.mkdir(parents=True, exist_ok=True)
    verifiers = study_jobs(cfg)["verifiers"]
    pool = read_table(layout.pool(), SAMPLES)
    s = cfg.search
    jobs = study_jobs(cfg)
    names = ["bon_orm", *[f"prm_{v}" for v in jobs["prm_verifiers"]], *[f"beam_{p}" for p in jobs["beam_provers"]],
             *[f"beamv_{v}" for v in jobs["beam_verifiers"]],
             "alpha", "selected", *(["oracle"] if jobs["oracle"] else [])]
    keys = ["problem_id", "split", "method", "verifier", "prover", "k", "alpha", "budget"]
    # one row per problem and configuration: the val-chosen run repeats a configuration's rows when it
    # is one already run (same configuration, same seeds)
    search = pl.concat([read_table(layout.search(n), SEARCH) for n in names]).unique(keys, keep="first",
                                                                                      maintain_order=True)
    search = search.filter(pl.col("split") == s.split)
    val = pl.concat([read_table(layout.search(f"val_{p}"), SEARCH) for p in jobs["provers"]])
    choice = choose_on_val(val)
    curves = search_curves(search, split=s.split)
    with atomic_file(out / "curves.parquet") as tmp:
        curves.write_parquet(tmp)
    # figures: PRM best-of-N with search.aggregate only (every aggregation is in the summary's tables);
    # the prover-K curve at the configured alpha
    shown = curves.filter(~pl.col("verifier").str.contains(":") | pl.col("verifier").str.ends_with(f":{s.aggregate}"))
    shown = shown.filter(~((pl.col("method") == "weighted_majority") & pl.col("verifier").str.contains(":")))
    at_alpha = curves.filter((pl.col("alpha") - s.alpha).abs() < 1e-12)
    rl = pl.concat([read_table(layout.rl(arm, seed), RL_CURVE) for arm in cfg.rl.arms for seed in cfg.rl.seeds])
    metrics = pl.concat([read_table(layout.verifier_metrics(v), METRICS) for v in verifiers])
    quality, calib = read_table(layout.quality(), METRICS), read_table(layout.calibration(), CALIBRATION)
    logs = pl.concat([read_table(layout.policy_log(p), TRAIN_LOG) for p in cfg.sft.policies] +
                     [read_table(layout.verifier_log(v), TRAIN_LOG) for v in verifiers])
    study = StudyTables(cfg.name, pool=pool, curves=curves, search=search, val=val, choice=choice, rl=rl,
                        verifier_metrics=metrics, quality=quality, prover=s.prover, k_budget=s.k_budget,
                        alpha=float(s.alpha), aggregate=s.aggregate)
    numbers = headline(study)
    drawn = [plot_accuracy_vs_tokens(shown), plot_accuracy_vs_budget(shown),
             plot_prover_k(at_alpha, s.k_budget, base_policy=cfg.sweep.policy),
             plot_alpha(curves, s.prover, s.k_budget),
             plot_rl_curves(rl_seed_bands(rl)), plot_verifier_quality(quality), plot_calibration(calib),
             plot_success_histogram(numbers.pool, numbers.histogram), plot_train_logs(logs)]
    figures = [path for fig in drawn if fig is not None for path in save(fig, out)]
    config = OmegaConf.to_yaml(cfg, resolve=True)
    write_text(out / "config.yaml", config)
    write_summary(out, study, numbers, figures=[f for f in figures if f.suffix == ".png"], config=config)
    head = numbers.as_dict()
    write_text(out / "headline.json", json.dumps(head, indent=2, sort_keys=True))
    per_k = prover_rows(at_alpha, s.k_budget).select("policy", "K", *[c for c in CURVES if c != "k"])
    tracker.table("report/per_budget", curves)  # accuracy [95% CI] and tokens per configuration and N
    tracker.table("report/per_k", per_k)  # beam search at N = search.k_budget per prover
    tracker.table("report/verifier_quality", quality)
    tracker.table("report/rl_final", rl_final(rl))
    record(tracker, cfg, "report", "report", out)
    tracker.summary({k: v for k, v in head.items() if isinstance(v, (int, float))})
    return {"n_figures": sum(f.suffix == ".png" for f in figures), "rollout_policies": len(rollout_policies(cfg))}


if __name__ == "__main__":
    main()
