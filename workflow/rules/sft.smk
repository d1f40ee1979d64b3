rule sft:
    input:
        L.problems(),
    output:
        model=directory(L.policy("{policy}")),
        log=L.policy_log("{policy}"),
    params:
        cfg=params("sft"),
    log:
        log_of("sft", "policy"),
    benchmark:
        bench_of("sft", "policy")
    threads: CFG.threads
    resources:
        **RES,
    shell:
        stage("sft", policy="{wildcards.policy}")
