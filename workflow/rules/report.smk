# The report stage's outputs. Figures, summary tables and the resolved config are Snakemake report
# items: `snakemake --report results/<experiment>/report.html` gathers them (captions in
# workflow/report/*.rst), one category per part of the study, the stage the data came from as
# subcategory.
def figure(name, category, subcategory):
    return report(L.report() / f"{name}.png", caption=f"../report/{name.split('_N')[0]}.rst",
                  category=category, subcategory=subcategory, labels={"figure": name})


rule report:
    input:
        L.pool(),
        L.search("bon_orm"),
        [L.search(f"beam_{p}") for p in JOBS["beam_provers"]],
        [L.search(f"beamv_{v}") for v in JOBS["beam_verifiers"]],
        [L.search(f"prm_{v}") for v in JOBS["prm_verifiers"]],
        [L.search(f"val_{p}") for p in JOBS["provers"]],
        L.search("alpha"),
        L.search("selected"),
        [L.search("oracle")] if JOBS["oracle"] else [],
        [L.rl(arm, seed) for arm, seed in JOBS["rl_runs"]],
        [L.verifier_metrics(v) for v in JOBS["verifiers"]],
        L.quality(),
        L.calibration(),
        [L.policy_log(p) for p in JOBS["policies"]],
    output:
        summary=L.report() / "summary.md",
        headline=L.report() / "headline.json",
        tables=report(L.report() / "summary.html", caption="../report/summary.rst", category="1. Summary",
                      subcategory="tables with 95% CIs", labels={"table": "summary"}),
        config=report(L.report() / "config.yaml", caption="../report/config.rst", category="1. Summary",
                      subcategory="resolved configuration", labels={"table": "config.yaml"}),
        acc_vs_tokens=figure("acc_vs_tokens", "2. Test-time search", "search_bon, search_beam"),
        acc_vs_budget=figure("acc_vs_budget", "2. Test-time search", "search_bon, search_beam"),
        prover_k=figure(f"prover_k_N{CFG.search.k_budget}", "2. Test-time search", "search_beam per prover"),
        alpha=figure(f"alpha_N{CFG.search.k_budget}", "2. Test-time search", "search_alpha"),
        verifier_quality=figure("verifier_quality", "3. Verifiers", "quality"),
        calibration=figure("calibration", "3. Verifiers", "quality"),
        rl_curves=figure("rl_curves", "4. Online RL", "rl"),
        success_histogram=figure("success_histogram", "5. Policies", "search_pool"),
        train_logs=figure("train_logs", "5. Policies", "sft, verifier"),
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
