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


def pav_of(wildcards):
    """The pav of a prover: trained, or (analytic_k<K>) computed from the pqv."""
    rho = wildcards.prover.rsplit("_k", 1)[0]
    return str(L.verifier("pqv" if rho == ANALYTIC else f"pav_{wildcards.prover}"))


rule search_beam:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
        L.verifier("pqv"),
        pav_of,
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


# Beam search at k_budget scored by one verifier's value (the implicit PRMs).
rule search_beamv:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
        L.verifier("{verifier}"),
    output:
        L.search("beamv_{verifier}"),
    params:
        cfg=params("search_beamv"),
    log:
        log_of("search_beamv", "verifier"),
    benchmark:
        bench_of("search_beamv", "verifier")
    threads: threads_of("search_beamv")
    resources:
        **resources_of("search_beamv"),
    shell:
        stage("search_beamv", verifier="{wildcards.verifier}")


# Best-of-N and weighted majority with a process verifier (pqv, headline pav), every aggregation.
rule search_prm:
    input:
        L.problems(),
        L.pool(),
        L.verifier("{verifier}"),
    output:
        L.search("prm_{verifier}"),
    params:
        cfg=params("search_prm"),
    log:
        log_of("search_prm", "verifier"),
    benchmark:
        bench_of("search_prm", "verifier")
    threads: threads_of("search_prm")
    resources:
        **resources_of("search_prm"),
    shell:
        stage("search_prm", verifier="{wildcards.verifier}")


# The alpha curve: headline prover, search.alpha_grid at search.k_budget on test.
rule search_alpha:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
        L.verifier("pqv"),
        L.verifier(f"pav_{CFG.search.prover}"),
    output:
        L.search("alpha"),
    params:
        cfg=params("search_alpha"),
    log:
        log_of("search_alpha"),
    benchmark:
        bench_of("search_alpha")
    threads: threads_of("search_alpha")
    resources:
        **resources_of("search_alpha"),
    shell:
        stage("search_alpha")


# The validation grid (prover x alpha at search.k_budget) the val-chosen configuration is picked from.
rule search_val:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
        L.verifier("pqv"),
        L.verifier("pav_{prover}"),
    output:
        L.search("val_{prover}"),
    params:
        cfg=params("search_val"),
    log:
        log_of("search_val", "prover"),
    benchmark:
        bench_of("search_val", "prover")
    threads: threads_of("search_val")
    resources:
        **resources_of("search_val"),
    shell:
        stage("search_val", prover="{wildcards.prover}")


# Beam search on test at every budget with the (prover, alpha) chosen on val.
rule search_selected:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
        L.verifier("pqv"),
        [L.verifier(f"pav_{p}") for p in JOBS["provers"]],
        [L.search(f"val_{p}") for p in JOBS["provers"]],
        L.search(f"beam_{CFG.search.prover}"),
    output:
        L.search("selected"),
    params:
        cfg=params("search_selected"),
    log:
        log_of("search_selected"),
    benchmark:
        bench_of("search_selected")
    threads: threads_of("search_selected")
    resources:
        **resources_of("search_selected"),
    shell:
        stage("search_selected")


# Oracle beam search (fresh MC rollouts per candidate); only with search.oracle.
rule search_oracle:
    input:
        L.problems(),
        L.policy(CFG.sweep.policy),
    output:
        L.search("oracle"),
    params:
        cfg=params("search_oracle"),
    log:
        log_of("search_oracle"),
    benchmark:
        bench_of("search_oracle")
    threads: threads_of("search_oracle")
    resources:
        **resources_of("search_oracle"),
    shell:
        stage("search_oracle")
