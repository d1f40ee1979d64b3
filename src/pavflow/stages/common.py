"""What every stage does around its body: compose and validate the config, pin threads, take its paths
from the registry, open the job's W&B run, write provenance, record its outputs, print a summary.

A stage module declares its body once:

    @stage_main("labels")
    def main(cfg, job, tracker) -> dict:   # job.input.<name>, job.output.<name>: the registry's paths
        ...

`python -m pavflow.stages.<module> [overrides]` runs it as a Hydra app; `main.call(cfg)` runs it on an
already composed config (tests, notebooks). The registry stage is `job.stage` (default: the module's
own); its wildcards come from `job.<wildcard>` settings, which the workflow passes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl
from omegaconf import DictConfig

from pavflow.config import CONF_DIR, ConfigError, register, to_container, validate
from pavflow.data import PROBLEMS, read_table
from pavflow.paths import Layout
from pavflow.registry import STAGES, Stage, io, params
from pavflow.tasks.base import Problem
from pavflow.tracking import Tracker

log = logging.getLogger("pavflow")


class Paths(dict):
    """A job's inputs or outputs by name (attribute access: job.input.seeds)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no path named {name!r}; this job has {sorted(self)}") from None


@dataclass
class Job:
    stage: Stage
    wildcards: dict
    input: Paths
    output: Paths
    layout: Layout

    @property
    def name(self) -> str:
        return self.stage.run_name(self.wildcards)

    def checkpoints(self, cfg) -> Checkpoints:
        return Checkpoints(self.layout.checkpoint(self.name), params(self.stage.name, cfg, self.wildcards))


Body = Callable[[DictConfig, Job, Tracker], dict]


def stage_main(default_stage: str):
    """Decorate a stage body `body(cfg, job, tracker) -> summary dict` into a Hydra app."""
    def deco(body: Body) -> Callable[[], None]:
        def main() -> None:
            register()
            import hydra

            @hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
            def _run(cfg: DictConfig) -> None:
                run(body, cfg, default_stage)

            _run()
        main.call = lambda cfg: run(body, cfg, default_stage)
        return main
    return deco


def job_of(cfg, default_stage: str) -> Job:
    stage = STAGES[cfg.job.stage or default_stage]
    wildcards = {w: cfg.job[w] for w in stage.wildcards}
    layout = Layout(Path(cfg.results_dir) / cfg.name)
    inputs, outputs = io(stage.name, cfg, layout, wildcards)
    return Job(stage, wildcards, Paths(inputs), Paths(outputs), layout)


def tags(job: Job) -> list[str]:
    from pavflow.names import Prover
    out = [f"{w}:{v}" for w, v in job.wildcards.items()]
    if "prover" in job.wildcards:
        out.append(f"k:{Prover.parse(job.wildcards['prover']).k}")
    return out


def run(body: Body, cfg: DictConfig, default_stage: str) -> dict:
    try:
        validate(cfg)
    except ConfigError as e:
        log.error("%s", e)
        sys.exit(2)
    job = job_of(cfg, default_stage)
    unwritable = not_writable(job.output.values())
    if unwritable:
        log.error("%s: cannot write its output %s (%s); make that directory writable or run the study "
                  "elsewhere (results_dir=<dir>)", job.name, *unwritable)
        sys.exit(2)
    if job.stage.model:
        import torch
        import transformers
        transformers.utils.logging.set_verbosity_error()  # load reports of fresh value heads are expected
        transformers.utils.logging.disable_progress_bar()
        torch.set_num_threads(cfg.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass
    config = to_container(cfg)
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        from pavflow.provenance import write_provenance
        write_provenance(Path(HydraConfig.get().runtime.output_dir) / "provenance.json", config)
    t0 = time.time()
    log.info("%s %s: experiment %s", job.stage.name, job.name, cfg.name)
    with Tracker(cfg.tracking.mode, project=cfg.tracking.project, root_dir=job.layout.root, group=cfg.name,
                 job_type=job.stage.name, name=job.name, config=config, tags=tags(job)) as tracker:
        summary = body(cfg, job, tracker) or {}
        summary = {**summary, "wall_s": round(time.time() - t0, 2)}
        for key, path in job.output.items():  # artifacts by reference to the outputs' paths
            name = f"{cfg.name}-{job.name}" + (f"-{key}" if len(job.output) > 1 else "")
            tracker.artifact(name, "model" if key in job.stage.directories else "table", path)
        tracker.summary(summary)
    log.info("%s done: %s", job.name,
             ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return summary


def not_writable(outputs) -> tuple[Path, str] | None:
    """(output, why) for the first output whose directory cannot take a new file, before any work:
    outputs are written to a temp file beside them, then renamed."""
    import tempfile
    for path in map(Path, outputs):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            return path, f"{e.filename or path.parent}: {e.strerror}"
    return None


def load_problems(path, splits) -> list[Problem]:
    """Problems of the given splits, in table order, from the problems stage's table."""
    df = read_table(path, PROBLEMS).filter(pl.col("split").is_in(list(splits)))
    return [Problem(**r) for r in df.iter_rows(named=True)]


# W&B axes of the figures: accuracy vs budget N and vs mean generated tokens per problem. A metric has
# one step metric, so each search accuracy is logged under both prefixes.
BUDGET, GEN_TOKENS = "search/budget", "search/gen_tokens"
ACC_BY_BUDGET, ACC_BY_TOKENS = "search/acc/", "search/acc_vs_tokens/"


def search_axes(tracker: Tracker) -> None:
    tracker.define_metric(ACC_BY_BUDGET + "*", BUDGET)
    tracker.define_metric(GEN_TOKENS, BUDGET)
    tracker.define_metric(ACC_BY_TOKENS + "*", GEN_TOKENS)


def log_search(tracker: Tracker, budget: int, gen_tokens: float, acc: dict[str, float]) -> None:
    """One search budget: accuracy per method (fractions) against budget and generated tokens."""
    tracker.log({BUDGET: budget, GEN_TOKENS: gen_tokens, **{ACC_BY_BUDGET + m: a for m, a in acc.items()},
                 **{ACC_BY_TOKENS + m: a for m, a in acc.items()}})


class Checkpoints:
    """A training job's resume file, `<results>/checkpoints/<job>.pt`, fingerprinted by the job's
    rerun triggers (its config and code hash): `resume()` is None unless this very job was interrupted;
    `save(state)` keeps the latest state; `done()` removes it once outputs are written."""

    def __init__(self, path: Path, params: dict):
        self.path = path
        self.fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()

    def resume(self) -> dict | None:
        from pavflow.checkpoint import load_checkpoint
        state = load_checkpoint(self.path, self.fingerprint)
        if state is not None:
            log.info("resuming from checkpoint %s", self.path)
        return state

    def save(self, state: dict) -> None:
        from pavflow.checkpoint import save_checkpoint
        save_checkpoint(state, self.path, self.fingerprint)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
