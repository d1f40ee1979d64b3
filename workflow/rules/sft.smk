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
    threads: threads_of("sft")
    resources:
        **resources_of("sft"),
    shell:
        stage("sft", policy="{wildcards.policy}")
