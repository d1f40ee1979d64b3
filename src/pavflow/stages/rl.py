"""Stage `rl`: online policy gradient from the base policy with arm job.arm (outcome | pav) and
seed job.rl_seed; test accuracy against samples seen."""
import polars as pl

from pavflow.config import ConfigError
from pavflow.data import RL_CURVE, write_table
from pavflow.policy.model import load_policy
from pavflow.rl.pg import RLConfig, train_rl
from pavflow.stages.common import derive_seed, load_problems, load_verifier, prover_tags, record, stage_main
from pavflow.tasks import make_task


def tags(cfg) -> list[str]:
    return [f"arm:{cfg.job.arm}"] + (prover_tags(cfg.rl.prover) if cfg.job.arm == "pav" else [])


@stage_main("rl", lambda cfg: f"rl-{cfg.job.arm}-s{cfg.job.rl_seed}", tags)
def main(cfg, layout, tracker) -> dict:
    arm, seed, r = cfg.job.arm, cfg.job.rl_seed, cfg.rl
    if arm not in ("outcome", "pav"):
        raise ConfigError(f"job.arm={arm!r}: expected outcome or pav")
    task = make_task(cfg.task, cfg.seed)
    model, tok = load_policy(layout.policy(cfg.sweep.policy), cfg.device, cfg.dtype)
    train = load_problems(layout, ["train"])
    test = load_problems(layout, ["test"])[:r.eval_problems]
    step_score = None
    if arm == "pav":  # values v_mu(s_h), h = 0..H; train_rl turns them into progress A^mu
        step_score = load_verifier(cfg, layout, f"pav_{r.prover}").score
    rc = RLConfig(updates=r.updates, problems_per_update=r.problems_per_update,
                  samples_per_problem=r.samples_per_problem, lr=r.lr, alpha=r.alpha if arm == "pav" else 0.0,
                  max_new_tokens=r.max_new_tokens, eval_every=r.eval_every, eval_samples=r.eval_samples,
                  seed=derive_seed(cfg.seed, "rl", seed))
    tracker.define_metric("rl/*", "rl/samples_seen")
    rows = train_rl(model, tok, task, train, test, rc, step_score_fn=step_score,
                    on_eval=lambda row: tracker.log({f"rl/{k}": v for k, v in row.items()}))
    df = pl.DataFrame(rows).with_columns(arm=pl.lit(arm), prover=pl.lit(r.prover if arm == "pav" else ""),
                                         alpha=pl.lit(rc.alpha), seed=pl.lit(seed))
    write_table(df, layout.rl(arm, seed), RL_CURVE)
    record(tracker, cfg, f"rl-{arm}-s{seed}", "table", layout.rl(arm, seed))
    first, last = rows[0], rows[-1]
    return {"test_acc_sampled_start": first["test_acc_sampled"], "test_acc_sampled_final": last["test_acc_sampled"],
            "test_acc_greedy_final": last["test_acc_greedy"], "samples_seen": last["samples_seen"]}


if __name__ == "__main__":
    main()
