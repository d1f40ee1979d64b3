rule seeds:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
    output:
        L.seeds(),
    params:
        cfg=params("seeds"),
    log:
        log_of("seeds"),
    benchmark:
        bench_of("seeds")
    threads: threads_of("seeds")
    resources:
        **resources_of("seeds"),
    shell:
        stage("seeds")


rule mc:
    input:
        L.problems(),
        L.seeds(),
        L.policy("{policy}"),
    output:
        L.mc("{policy}"),
    params:
        cfg=params("mc"),
    log:
        log_of("mc", "policy"),
    benchmark:
        bench_of("mc", "policy")
    threads: threads_of("mc")
    resources:
        **resources_of("mc"),
    shell:
        stage("mc", rollout_policy="{wildcards.policy}")


# The quality table's ground truth: new rollouts from the val seeds' prefixes.
rule mc_fresh:
    input:
        L.problems(),
        L.seeds(),
        L.policy("{policy}"),
    output:
        L.mc_fresh("{policy}"),
    params:
        cfg=params("mc"),
    log:
        log_of("mc_fresh", "policy"),
    benchmark:
        bench_of("mc_fresh", "policy")
    threads: threads_of("mc")
    resources:
        **resources_of("mc"),
    shell:
        stage("mc", rollout_policy="{wildcards.policy}", fresh="true")
