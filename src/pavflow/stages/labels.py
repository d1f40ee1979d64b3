"""Stage `labels`: q_pi, v_mu and a_mu under prover job.prover = '<rho>_k<K>' from cached MC pools."""
from pavflow.data import LABELS, MC, read_table, write_table
from pavflow.labels import make_labels, parse_prover
from pavflow.stages.common import prover_tags, record, stage_main


@stage_main("labels", lambda cfg: f"labels-{cfg.job.prover}",
            lambda cfg: prover_tags(cfg.job.prover))
def main(cfg, layout, tracker) -> dict:
    rho, k = parse_prover(cfg.job.prover)
    pi_pool = read_table(layout.mc(cfg.sweep.policy), MC)
    rho_pool = pi_pool if rho == cfg.sweep.policy else read_table(layout.mc(rho), MC)
    df = make_labels(pi_pool, rho_pool, rollout_policy=rho, k=k)
    write_table(df, layout.labels(cfg.job.prover), LABELS)
    record(tracker, cfg, f"labels-{cfg.job.prover}", "table", layout.labels(cfg.job.prover))
    return {"n_states": df.height, "mean_v_mu": float(df["v_mu"].mean()),
            "mean_abs_a_mu": float(df["a_mu"].abs().mean())}


if __name__ == "__main__":
    main()
