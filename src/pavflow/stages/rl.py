"""Stage `rl`: online policy gradient from the base policy (rl.init=base) or its rejection-fine-tuned
version (rl.init=rft) with arm job.arm (outcome | pav) and seed job.rl_seed; test metrics against
samples seen."""
import logging

import polars as pl

from pavflow.config import ConfigError
from pavflow.data import RL_CURVE, write_table
from pavflow.policy.model import load_policy
from pavflow.rl.pg import DegenerateRun, RLConfig, train_rl
from pavflow.stages.common import Checkpoints, derive_seed, load_problems, load_verifier, prover_tags, record, stage_main
from pavflow.tasks import make_task

log = logging.getLogger("pavflow")


def tags(cfg) -> list[str]:
    return [f"arm:{cfg.job.arm}"] + (prover_tags(cfg.rl.prover) if cfg.job.arm == "pav" else [])


@stage_main("rl", lambda cfg: f"rl-{cfg.job.arm}-s{cfg.job.rl_seed}", tags)
def main(cfg, layout, tracker) -> dict:
    arm, seed, r = cfg.job.arm, cfg.job.rl_seed, cfg.rl
    if arm not in ("outcome", "pav"):
        raise ConfigError(f"job.arm={arm!r}: expected outcome or pav")
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    init = layout.rft_policy() if r.init == "rft" else layout.policy(cfg.sweep.policy)
    model, tok = load_policy(init, cfg.device, cfg.dtype)  # also the KL reference
    train = load_problems(layout, ["train"])
    test = load_problems(layout, ["test"])[:r.eval_problems]
    step_score = None
    if arm == "pav":  # values v_mu(s_h), h = 0..H; train_rl turns them into progress A^mu
        step_score = load_verifier(cfg, layout, f"pav_{r.prover}").score
    rc = RLConfig(updates=r.updates, problems_per_update=r.problems_per_update,
                  samples_per_problem=r.samples_per_problem, lr=r.lr, alpha=r.alpha if arm == "pav" else 0.0,
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
    df = pl.DataFrame(rows).with_columns(arm=pl.lit(arm), prover=pl.lit(r.prover if arm == "pav" else ""),
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
