def verifier_inputs(wildcards):
    """orm and implicit PRMs need only the seeds; pqv the base policy's MC pool; pav_<prover> that
    prover's labels (and its rollout pool, for label variants)."""
    spec = parse_verifier(wildcards.verifier)
    ins = [L.problems(), L.seeds(), L.policy(CFG.sweep.policy)]
    if spec.kind in ("pqv", "pav"):
        ins.append(L.mc(CFG.sweep.policy))
    if spec.kind == "pav":
        ins += [L.labels(spec.prover), L.mc(spec.prover.rsplit("_k", 1)[0])]
    return sorted({str(p) for p in ins})


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


# Every verifier (and the MC labels themselves) on the val seeds against fresh MC pools.
rule quality:
    input:
        L.problems(),
        L.seeds(),
        [L.mc(p) for p in JOBS["rollout_policies"]],
        [L.mc_fresh(p) for p in JOBS["rollout_policies"]],
        [L.verifier(v) for v in JOBS["verifiers"]],
        [L.verifier_metrics(v) for v in JOBS["verifiers"]],
    output:
        quality=L.quality(),
        calibration=L.calibration(),
    params:
        cfg=params("quality"),
    log:
        log_of("quality"),
    benchmark:
        bench_of("quality")
    threads: threads_of("quality")
    resources:
        **resources_of("quality"),
    shell:
        stage("quality")
