rule rft:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
    output:
        model=directory(L.rft_policy()),
        log=L.rft_log(),
    params:
        cfg=params("rft"),
    log:
        log_of("rft"),
    benchmark:
        bench_of("rft")
    threads: threads_of("rft")
    resources:
        **resources_of("rft"),
    shell:
        stage("rft")


def rl_inputs(wildcards):
    ins = [L.problems(), L.rft_policy() if CFG.rl.init == "rft" else L.policy(CFG.sweep.policy)]
    if wildcards.arm == "pav":
        ins.append(L.verifier(f"pav_{CFG.rl.prover}"))
    elif wildcards.arm == "pav_analytic":
        ins.append(L.verifier("pqv"))
    elif wildcards.arm.startswith("implicit_"):
        ins.append(L.verifier(wildcards.arm))
    return [str(p) for p in ins]


rule rl:
    input:
        rl_inputs,
    output:
        L.rl("{arm}", "{seed}"),
    params:
        cfg=params("rl"),
    log:
        log_of("rl", "arm", "seed"),
    benchmark:
        bench_of("rl", "arm", "seed")
    threads: threads_of("rl")
    resources:
        **resources_of("rl"),
    shell:
        stage("rl", arm="{wildcards.arm}", rl_seed="{wildcards.seed}")
