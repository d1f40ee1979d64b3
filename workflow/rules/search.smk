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
    threads: CFG.threads
    resources:
        **RES,
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
    threads: CFG.threads
    resources:
        **RES,
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
    threads: CFG.threads
    resources:
        **RES,
    shell:
        stage("search_beam", prover="{wildcards.prover}")
