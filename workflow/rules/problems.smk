rule problems:
    output:
        L.problems(),
    params:
        cfg=params("problems"),
    log:
        log_of("problems"),
    benchmark:
        bench_of("problems")
    threads: 1
    resources:
        **RES,
    shell:
        stage("problems")
