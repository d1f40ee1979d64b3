rule search_pool:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
    output:
        L.pool(),
    params:
        cfg=params("search_pool"),
    log:
        log_of("search_pool"),
    benchmark:
        bench_of("search_pool")
    threads: threads_of("search_pool")
    resources:
        **resources_of("search_pool"),
    shell:
        stage("search_pool")


rule search_bon:
    input:
        L.problems(),
        L.pool(),
        L.verifier("orm"),
    output:
        L.search("bon_orm"),
    params:
        cfg=params("search_bon"),
    log:
        log_of("search_bon"),
    benchmark:
        bench_of("search_bon")
    threads: threads_of("search_bon")
    resources:
        **resources_of("search_bon"),
    shell:
        stage("search_bon")


rule search_beam:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
        L.verifier("pqv"),
        L.verifier("pav_{prover}"),
    output:
        L.search("beam_{prover}"),
    params:
        cfg=params("search_beam"),
    log:
        log_of("search_beam", "prover"),
    benchmark:
        bench_of("search_beam", "prover")
    threads: threads_of("search_beam")
    resources:
        **resources_of("search_beam"),
    shell:
        stage("search_beam", prover="{wildcards.prover}")
