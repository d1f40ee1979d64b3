# pavflow: one study of process verifiers as a DAG.
#   snakemake --cores all                                     # the embedded default: didactic
#   snakemake --cores 2 --config experiment=smoke
#   snakemake --cores 2 --config experiment=didactic overrides='["sweep.prover_k=[1,4,64]"]'
# Every number comes from the Hydra config (conf/); the Snakefile only composes it and builds the DAG.
from snakemake.utils import min_version

min_version("9.0")

# Snakemake-level config: the experiment preset (conf/experiment/<name>.yaml) and Hydra overrides.
config.setdefault("experiment", "didactic")
config.setdefault("overrides", [])

# `snakemake --report results/<experiment>/report.html`: this page, then the report stage's figures and tables.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


# The target rule runs no command: never send it to a cluster.
localrules:
    all,


rule all:
    default_target: True
    input:
        str(registry.STAGES["report"].outputs(CFG, L, {})["summary"]),
