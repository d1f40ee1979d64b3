rule report:
    input:
        L.pool(),
        L.search("bon_orm"),
        [L.search(f"beam_{p}") for p in JOBS["provers"]],
        [L.rl(arm, seed) for arm, seed in JOBS["rl_runs"]],
        [L.verifier_metrics(v) for v in JOBS["verifiers"]],
        [L.policy_log(p) for p in JOBS["policies"]],
    output:
        summary=L.report() / "summary.md",
        headline=L.report() / "headline.json",
    params:
        cfg=params("report"),
    log:
        log_of("report"),
    benchmark:
        bench_of("report")
    threads: threads_of("report")
    resources:
        **resources_of("report"),
    shell:
        stage("report")
