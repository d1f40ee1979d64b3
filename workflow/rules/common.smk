# Compose the study's Hydra config once (failing here, before any job, on a bad value), and give the
# rules their paths (pavflow.paths), shell commands, rerun triggers (pavflow.study) and the
# threads and resources each job asks the scheduler for (pavflow.resources).
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # a checkout works without installing
from pavflow.config import ConfigError
from pavflow.paths import Layout
from pavflow.resources import stage_resources, stage_threads
from pavflow.study import compose, stage_params, study_jobs
from pavflow.verifiers.targets import ANALYTIC, parse_verifier

validate(config, "../schemas/config.schema.yaml")
EXPERIMENT = str(config["experiment"])
OVERRIDES = [str(o) for o in config["overrides"]]
try:
    CFG = compose(EXPERIMENT, OVERRIDES)
except ConfigError as e:
    raise WorkflowError(f"pavflow: {e}") from None
L = Layout(Path(CFG.results_dir) / CFG.name)
JOBS = study_jobs(CFG)
logger.info(f"pavflow: experiment {CFG.name} -> {L.root}; overrides {' '.join(OVERRIDES) or 'none'}; "
            f"sweep: provers {', '.join(JOBS['provers'])}, budgets N {list(CFG.search.budgets)}; "
            f"RL {', '.join(f'{a}/s{s}' for a, s in JOBS['rl_runs'])}")

wildcard_constraints:
    policy=r"[A-Za-z_][A-Za-z0-9_]*?",
    prover=r"[A-Za-z_][A-Za-z0-9_]*_k\d+",
    verifier=r"(orm|pqv|pav_[A-Za-z_][A-Za-z0-9_]*_k\d+|implicit_ce|implicit_dpo)(\.[a-z_]+)*",
    arm=r"outcome|pav|pav_analytic|implicit_ce|implicit_dpo",
    seed=r"\d+",


# The study's experiment and overrides reach the stages through these globals, which Snakemake
# substitutes when it formats a shell command. They must not be literal in the shell text: Snakemake's
# `code` rerun trigger compares that text, and every job would rerun whenever any override changed.
# What a job depends on is in its `params` (pavflow.study.stage_params) instead.
PAVFLOW_PYTHON = shlex.quote(sys.executable)
PAVFLOW_ARGS = " ".join(shlex.quote(a) for a in [f"experiment={EXPERIMENT}", *OVERRIDES])


def stage(name, **job):
    """Shell command running stage `name` with the study's overrides plus this job's settings
    (job values may be "{wildcards.x}" placeholders)."""
    run_dir = f"hydra.run.dir={L.logs()}/hydra/{name}" + "".join(f"-{v}" for v in job.values())
    return " ".join(["{PAVFLOW_PYTHON} -m", f"pavflow.stages.{name}", "{PAVFLOW_ARGS}",
                     *[f"job.{k}={v}" for k, v in job.items()], "threads={threads}", run_dir,
                     "> {log} 2>&1"])


def params(name):
    """Rerun trigger of a rule: its resolved config section and code hash (builtins only)."""
    return lambda wildcards: stage_params(CFG, name, **dict(wildcards))


def log_of(name, *wild):
    return str(L.logs() / name / ("-".join(f"{{{w}}}" for w in wild) or name)) + ".log"


def bench_of(name, *wild):
    return str(L.root / "benchmarks" / name / ("-".join(f"{{{w}}}" for w in wild) or name)) + ".tsv"


def threads_of(name):
    return stage_threads(CFG, name)


def resources_of(name):
    """mem_mb, runtime (minutes) and, for model stages on CUDA, gpu: from the config's `resources`."""
    return stage_resources(CFG, name)
