# Compose the study's Hydra config once (failing here, before any job, on a bad value) and give the
# generated rules (stages.smk) what they need from it. Everything about a stage is in pavflow.registry.
import json
import shlex
import signal
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # a checkout works without installing
from pavflow import identity, lock, registry
from pavflow.config import ConfigError, compose, provers
from pavflow.names import WILDCARDS
from pavflow.paths import Layout

if workflow.is_main_process:  # SIGTERM while the DAG is built: stop, as Ctrl-C (onstart below for the jobs)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

validate(config, "../schemas/config.schema.yaml")
EXPERIMENT = str(config["experiment"])
OVERRIDES = [str(o) for o in config["overrides"]]
try:
    CFG = compose(EXPERIMENT, OVERRIDES)
except ConfigError as e:
    raise WorkflowError(f"pavflow: {e}") from None
L = Layout(Path(CFG.results_dir) / CFG.name)
logger.info(f"pavflow: experiment {CFG.name} -> {L.root}; overrides {' '.join(OVERRIDES) or 'none'}; "
            f"sweep: provers {', '.join(str(p) for p in provers(CFG))}, budgets N {list(CFG.search.budgets)}; "
            f"RL {', '.join(registry.STAGES['rl'].run_name(j) for j in registry.jobs('rl', CFG))}")

wildcard_constraints:
    **WILDCARDS,

# The study's experiment and overrides reach the stages through these globals, which Snakemake
# substitutes when it formats a shell command. They must not be literal in the shell text: Snakemake's
# `code` rerun trigger compares that text, and every job would rerun whenever any override changed.
# What a job depends on is in its `params` (pavflow.registry.params) instead.
PAVFLOW_PYTHON = shlex.quote(sys.executable)
PAVFLOW_ARGS = " ".join(shlex.quote(a) for a in [f"experiment={EXPERIMENT}", *OVERRIDES])


def placeholders(s):
    """The stage's wildcards as Snakemake placeholders, e.g. {"prover": "{prover}"}."""
    return {w: "{" + w + "}" for w in s.wildcards}


# One shell command for every rule (Snakemake fills in the rule, the job's wildcards and paths): the
# stage dispatcher runs the rule's registry stage.
COMMAND = ("{PAVFLOW_PYTHON} -m pavflow.stages {rule} {PAVFLOW_ARGS} {params.job} threads={threads} "
           "{params.run_dir} > {log:q} 2>&1")


PRIORITY = registry.priorities(CFG, L)


def priority_of(s):
    """The job's scheduling priority (pavflow.registry.priorities): the order jobs run in, not what they write."""
    return lambda wc: PRIORITY[(s.name, s.run_name(wc))]


def job_args(s):
    """The job's settings for its stage (job.<wildcard>=<value>) and its own Hydra run directory."""
    return {"job": lambda wc: " ".join(shlex.quote(f"job.{w}={wc[w]}") for w in s.wildcards),
            "run_dir": lambda wc: shlex.quote(f"hydra.run.dir={L.logs()}/hydra/{s.run_name(dict(wc))}")}


def outputs(s):
    out = {}
    for name, path in s.outputs(CFG, L, placeholders(s)).items():
        path = str(path)
        if name in s.directories:
            path = directory(path)
        if name in s.report:  # a Snakemake report item, captioned by workflow/report/<registry.caption>
            category, subcategory = s.report[name]
            stem = Path(path).stem
            path = report(path, caption=f"../report/{registry.caption(path)}", category=category,
                          subcategory=subcategory, labels={"figure" if path.endswith(".png") else "table": stem})
        out[name] = path
    return out


def inputs(s):
    return lambda wildcards: {k: registry.flat(v) for k, v in registry.io(s.name, CFG, L, dict(wildcards))[0].items()}


def params(s):
    """Rerun trigger of a rule: its resolved config and code hash (builtins only)."""
    return lambda wildcards: registry.params(s.name, CFG, dict(wildcards))


def job_file(s):
    """<stage>/<wildcard values>: where a job's log and benchmark go, under logs/ and benchmarks/."""
    return f"{s.name}/" + ("-".join(placeholders(s).values()) or s.name)


def log_of(s):
    return str(L.logs() / job_file(s)) + ".log"


def bench_of(s):
    return str(L.root / "benchmarks" / job_file(s)) + ".tsv"


# `snakemake --report` before the study ran: say so, instead of Snakemake's "marked for report but does
# not exist" about the first missing figure.
if any(a == "--report" or a.startswith("--report=") for a in sys.argv) and "--report-after-run" not in sys.argv:
    _missing = [str(p) for p in registry.STAGES["report"].outputs(CFG, L, {}).values() if not Path(p).exists()]
    if _missing:
        raise WorkflowError(
            f"pavflow: no report of {L.root} to show yet ({len(_missing)} of its files are missing, e.g. "
            f"{_missing[0]}): run the study first, snakemake --cores all --config experiment={EXPERIMENT} "
            f"overrides='{json.dumps(OVERRIDES)}', then --report again with the same --config")


onstart:
    # the DAG is built and locked, no job has started: who holds the lock (pavflow.lock resume), SIGTERM
    # ends the run now, and no output of another study is overwritten without asking (pavflow.identity)
    lock.record_owner()
    lock.terminate_on_sigterm()
    if not config.get("overwrite", False):
        _found = identity.overwrites(
            ((j.rule.name, [str(f) for f in j.output], registry.params(j.rule.name, CFG, dict(j.wildcards)))
             for j in workflow.dag.needrun_jobs() if j.rule.name in registry.STAGES),
            Path(workflow.persistence.path) / "metadata")
        if _found:
            raise WorkflowError(identity.refusal(_found, L.root, CFG.name, EXPERIMENT, OVERRIDES))
