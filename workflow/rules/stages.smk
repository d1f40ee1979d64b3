# One rule per stage of pavflow.registry: inputs, outputs, rerun trigger, log, benchmark, threads,
# resources, priority and the command all derive from the stage's registry entry (common.smk).
for _stage in registry.STAGES.values():

    rule:
        name:
            _stage.name
        input:
            unpack(inputs(_stage)),
        output:
            **outputs(_stage),
        params:
            cfg=params(_stage),
            **job_args(_stage),
        log:
            log_of(_stage),
        benchmark:
            bench_of(_stage)
        threads: registry.threads(_stage.name, CFG)
        priority: priority_of(_stage)
        resources:
            **registry.resources(_stage.name, CFG),
        shell:
            COMMAND
