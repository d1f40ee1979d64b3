"""Stage `rl`: online policy gradient from the base policy (rl.init=base) or its rejection-fine-tuned
version (rl.init=rft) with arm job.arm and seed job.rl_seed; test metrics against samples seen.
Arms: outcome reward alone, or plus alpha * dense progress of every step from the trained pav of
rl.prover (`pav`), its analytic twin computed from the pqv (`pav_analytic`), or an implicit PRM's step
rewards q_h - q_{h-1} (`implicit_ce`, `implicit_dpo`)."""
import logging

import polars as pl

from pavflow.config import RL_ARMS, ConfigError
from pavflow.labels import parse_prover, prover_name
from pavflow.data import RL_CURVE, write_table
from pavflow.policy.model import load_policy
from pavflow.rl.pg import DegenerateRun, RLConfig, train_rl
from pavflow.stages.common import Checkpoints, derive_seed, load_problems, load_verifier, prover_tags, record, stage_main
from pavflow.tasks import make_task
from pavflow.verifiers.targets import ANALYTIC

log = logging.getLogger("pavflow")


def arm_prover(cfg, arm: str) -> str:
    """The prover whose progress the arm adds ('' for outcome and implicit arms)."""
    if arm == "pav":
        return cfg.rl.prover
    if arm == "pav_analytic":
        return prover_name(ANALYTIC, parse_prover(cfg.rl.prover)[1])
    return ""


def tags(cfg) -> list[str]:
    prover = arm_prover(cfg, cfg.job.arm)
    return [f"arm:{cfg.job.arm}"] + (prover_tags(prover) if prover else [])


def progress_values(cfg, layout, arm: str):
    """score_fn(prompts, steps) -> (values at s_0..s_H, tokens) whose differences are the arm's step
    progress; None for the outcome arm."""
    if arm == "outcome":
        return None
    if arm.startswith("implicit_"):  # q_h itself: its differences are the implicit step rewards
        return load_verifier(cfg, layout, arm).q
    return load_verifier(cfg, layout, f"pav_{arm_prover(cfg, arm)}").score


@stage_main("rl", lambda cfg: f"rl-{cfg.job.arm}-s{cfg.job.rl_seed}", tags)
def main(cfg, layout, tracker) -> dict:
    arm, seed, r = cfg.job.arm, cfg.job.rl_seed, cfg.rl
    if arm not in RL_ARMS:
        raise ConfigError(f"job.arm={arm!r}: expected one of {list(RL_ARMS)}")
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    init = layout.rft_policy() if r.init == "rft" else layout.policy(cfg.sweep.policy)
    model, tok = load_policy(init, cfg.device, cfg.dtype)  # also the KL reference
    train = load_problems(layout, ["train"])
    test = load_problems(layout, ["test"])[:r.eval_problems]
    step_score = progress_values(cfg, layout, arm)  # train_rl turns values into per-step progress
    rc = RLConfig(updates=r.updates, problems_per_update=r.problems_per_update,
                  samples_per_problem=r.samples_per_problem, lr=r.lr, alpha=0.0 if arm == "outcome" else r.alpha,
                  max_new_tokens=r.max_new_tokens, eval_every=r.eval_every, eval_samples=r.eval_samples,
                  kl_coef=r.kl_coef, guard_ratio=r.guard_ratio, guard_acc_drop=r.guard_acc_drop,
                  seed=derive_seed(cfg.seed, "rl", seed))
    tracker.define_metric("rl/*", "rl/samples_seen")
    ckpt = Checkpoints(cfg, layout, f"rl-{arm}-s{seed}", "rl", arm=arm, seed=seed)
    stop_reason = None
    try:
        rows = train_rl(model, tok, task, train, test, rc, step_score_fn=step_score,
                        on_eval=lambda row: tracker.log({f"rl/{k}": v for k, v in row.items()}),
                        checkpoint_every=r.checkpoint_every, on_checkpoint=ckpt.save, resume=ckpt.resume())
    except DegenerateRun as e:  # a result, not a crash: the curve so far is written, flagged
        rows, stop_reason = e.rows, e.reason
        log.error("rl %s seed %d: %s. The curve up to it is written with stop_reason set; the last "
                  "checkpoint before it is kept at %s", arm, seed, e, ckpt.path)
    df = pl.DataFrame(rows).with_columns(arm=pl.lit(arm), prover=pl.lit(arm_prover(cfg, arm)),
                                         alpha=pl.lit(rc.alpha), seed=pl.lit(seed),
                                         stop_reason=pl.lit(stop_reason, pl.String))
    write_table(df, layout.rl(arm, seed), RL_CURVE)
    if stop_reason is None:
        ckpt.done()
    record(tracker, cfg, f"rl-{arm}-s{seed}", "table", layout.rl(arm, seed))
    first, last = rows[0], rows[-1]
    return {"test_acc_sampled_start": first["test_acc_sampled"], "test_acc_sampled_final": last["test_acc_sampled"],
            "test_acc_greedy_final": last["test_acc_greedy"], "pass_at_n_final": last["pass_at_n"],
            "kl_ref_final": last["kl_ref"], "samples_seen": last["samples_seen"], "stopped": stop_reason is not None}


if __name__ == "__main__":
    main()
