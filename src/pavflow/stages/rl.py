"""Stage `rl`: online policy gradient from the base policy (rl.init=base) or its rejection-fine-tuned
version (rl.init=rft) with arm job.arm and seed job.rl_seed; test metrics against samples seen.
Arms: outcome reward alone, or plus alpha * dense progress of every step from the trained pav of
rl.prover (`pav`), its analytic twin computed from the pqv (`pav_analytic`), or an implicit PRM's step
rewards q_h - q_{h-1} (`implicit_ce`, `implicit_dpo`)."""
import logging

import polars as pl

from pavflow.data import RL_CURVE, write_table
from pavflow.names import ANALYTIC, Arm, Prover, pav
from pavflow.oracle import MCOracle
from pavflow.policy.device import autocast
from pavflow.policy.model import load_policy
from pavflow.rl.pg import DegenerateRun, train_rl
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.scoring import load_verifier
from pavflow.tasks import make_task

log = logging.getLogger("pavflow")


def arm_prover(cfg, arm: Arm) -> str:
    """The prover whose progress the arm adds ('' for outcome and implicit arms)."""
    if arm.kind == "pav":
        return str(Prover.of(cfg.rl.prover))
    if arm.kind == "pav_analytic":
        return str(Prover(ANALYTIC, int(cfg.rl.prover.k)))
    return str(arm.prover) if arm.prover else ""


def progress_values(cfg, job, arm: Arm, task, train):
    """score_fn(prompts, steps) -> (values at s_0..s_H, tokens) whose differences are the arm's step
    progress; None for the outcome arm. pav_mc: V^mu of its prover from fresh rollouts of the prover's
    policy at every state the RL policy visits (cached per state: the prover is fixed), their tokens
    counted as the arm's verifier tokens."""
    if arm.kind == "outcome":
        return None
    if arm.kind.startswith("implicit_"):  # q_h itself: its differences are the implicit step rewards
        return load_verifier(cfg, arm.kind, job.input.progress, job.input.policy).q
    if arm.kind == "pav_mc":
        from pavflow.stages.sampling import policy_sampler
        answers = {task.prompt(p.question): p.answer for p in train}
        sampler = policy_sampler(cfg, job.input.prover_policy, task, arm.prover.policy)  # local or server
        oracle = MCOracle(sampler, task, answers, n=cfg.rl.mc_rollouts,
                          seed=derive_seed(cfg.seed, "rl-mc", arm, job.wildcards["rl_seed"]),
                          temperature=cfg.rollouts.temperature, max_new_tokens=cfg.rl.max_new_tokens)
        return oracle.values(arm.prover.k)
    name = str(pav(Prover.parse(arm_prover(cfg, arm))))
    return load_verifier(cfg, name, job.input.progress, job.input.policy).score


@stage_main("rl")
def main(cfg, job, tracker) -> dict:
    arm, seed, r = Arm.parse(job.wildcards["arm"]), int(job.wildcards["rl_seed"]), cfg.rl
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    # also the KL reference; trained in float32, computed in cfg.dtype (policy.device.autocast)
    model, tok = load_policy(job.input.init, cfg.device, "float32")
    train = load_problems(job.input.problems, ["train"])
    test = load_problems(job.input.problems, ["test"])[:r.eval_problems]
    alpha = 0.0 if arm.kind == "outcome" else float(r.alpha)
    tracker.define_metric("rl/*", "rl/samples_seen")
    ckpt = job.checkpoints(cfg)
    stop_reason = None
    try:
        with autocast(model.device, cfg.dtype):
            rows = train_rl(model, tok, task, train, test, r, seed=derive_seed(cfg.seed, "rl", seed), alpha=alpha,
                            step_score_fn=progress_values(cfg, job, arm, task, train),  # train_rl: values -> progress
                            on_eval=lambda row: tracker.log({f"rl/{k}": v for k, v in row.items()}),
                            on_checkpoint=ckpt.save, resume=ckpt.resume())
    except DegenerateRun as e:  # a result, not a crash: the curve so far is written, flagged
        rows, stop_reason = e.rows, e.reason
        log.error("rl %s seed %d: %s. The curve up to it is written with stop_reason set; the last "
                  "checkpoint before it is kept at %s", arm, seed, e, ckpt.path)
    df = pl.DataFrame(rows).with_columns(arm=pl.lit(str(arm)), prover=pl.lit(arm_prover(cfg, arm)),
                                         alpha=pl.lit(alpha), seed=pl.lit(seed),
                                         stop_reason=pl.lit(stop_reason, pl.String))
    write_table(df, job.output.curve, RL_CURVE)
    if stop_reason is None:
        ckpt.done()
    first, last = rows[0], rows[-1]
    return {"test_acc_sampled_start": first["test_acc_sampled"], "test_acc_sampled_final": last["test_acc_sampled"],
            "test_acc_greedy_final": last["test_acc_greedy"], "pass_at_n_final": last["pass_at_n"],
            "kl_ref_final": last["kl_ref"], "samples_seen": last["samples_seen"], "stopped": stop_reason is not None}


if __name__ == "__main__":
    main()
