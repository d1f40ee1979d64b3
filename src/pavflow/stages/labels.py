"""Stage `labels`: q_pi, v_mu and a_mu under prover job.prover = '<rho>_k<K>' from cached MC pools."""
from pavflow.data import LABELS, MC, read_table, write_table
from pavflow.labels import make_labels
from pavflow.names import Prover
from pavflow.stages.common import stage_main


@stage_main("labels")
def main(cfg, job, tracker) -> dict:
    prover = Prover.parse(job.wildcards["prover"])
    pi_pool = read_table(job.input.mc_pi, MC)
    rho_pool = pi_pool if job.input.mc_rho == job.input.mc_pi else read_table(job.input.mc_rho, MC)
    df = make_labels(pi_pool, rho_pool, prover)
    write_table(df, job.output.labels, LABELS)
    return {"n_states": df.height, "mean_v_mu": float(df["v_mu"].mean()),
            "mean_abs_a_mu": float(df["a_mu"].abs().mean())}


if __name__ == "__main__":
    main()
