rule problems:
    output:
        L.problems(),
    params:
        cfg=params("problems"),
    log:
        log_of("problems"),
    benchmark:
        bench_of("problems")
    threads: threads_of("problems")
    resources:
        **resources_of("problems"),
    shell:
        stage("problems")
