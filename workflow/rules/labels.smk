def mc_pools(wildcards):
    """The base policy's pool (q_pi) and the prover's rollout policy's pool."""
    rho = wildcards.prover.rsplit("_k", 1)[0]
    return sorted({str(L.mc(CFG.sweep.policy)), str(L.mc(rho))})


rule labels:
    input:
        mc_pools,
    output:
        L.labels("{prover}"),
    params:
        cfg=params("labels"),
    log:
        log_of("labels", "prover"),
    benchmark:
        bench_of("labels", "prover")
    threads: threads_of("labels")
    resources:
        **resources_of("labels"),
    shell:
        stage("labels", prover="{wildcards.prover}")
