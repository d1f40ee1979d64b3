def verifier_inputs(wildcards):
    """orm needs only the seeds; pqv the base policy's MC pool; pav_<prover> that prover's labels."""
    ins = [L.problems(), L.seeds(), L.policy(CFG.sweep.policy)]
    if wildcards.verifier == "pqv":
        ins.append(L.mc(CFG.sweep.policy))
    elif wildcards.verifier.startswith("pav_"):
        ins.append(L.labels(wildcards.verifier.removeprefix("pav_")))
    return [str(p) for p in ins]


rule verifier:
    input:
        verifier_inputs,
    output:
        model=directory(L.verifier("{verifier}")),
        metrics=L.verifier_metrics("{verifier}"),
        log=L.verifier_log("{verifier}"),
    params:
        cfg=params("verifier"),
    log:
        log_of("verifier", "verifier"),
    benchmark:
        bench_of("verifier", "verifier")
    threads: threads_of("verifier")
    resources:
        **resources_of("verifier"),
    shell:
        stage("verifier", verifier="{wildcards.verifier}")
