"""What every stage does around its body: compose and validate the config, pin threads and device,
open the job's W&B run, write provenance, and print a one-line summary.

Model code (transformers' model classes, ~2 s to import) is imported where a stage loads a model, not
here: the stages that only move tables (problems, labels, report) start in a second and a half."""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import hydra
import polars as pl
import torch
import transformers
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pavflow.checkpoint import load_checkpoint, save_checkpoint
from pavflow.config import ConfigError, register, to_container, validate
from pavflow.data import PROBLEMS, read_table
from pavflow.labels import parse_prover
from pavflow.paths import Layout
from pavflow.policy.device import resolve_device
from pavflow.provenance import write_provenance
from pavflow.study import CONF_DIR, stage_params
from pavflow.tasks.base import Problem
from pavflow.tracking import Tracker
from pavflow.verifiers.targets import parse_verifier

if TYPE_CHECKING:
    from pavflow.policy.sampler import Sampler

log = logging.getLogger("pavflow")

Body = Callable[[DictConfig, Layout, Tracker], dict]


def derive_seed(seed: int, *parts) -> int:
    """A seed for one purpose of one job, stable across processes and machines."""
    digest = hashlib.sha256(repr((int(seed),) + tuple(str(p) for p in parts)).encode()).digest()
    return int.from_bytes(digest[:7], "little")


def device_of(cfg) -> torch.device:
    return resolve_device(cfg.device)


def stage_main(job_type: str, run_name: Callable[[DictConfig], str], tags: Callable[[DictConfig], list] = lambda c: []):
    """Decorate a stage body `body(cfg, layout, tracker) -> summary dict` into a Hydra app."""
    def deco(body: Body) -> Callable[[], None]:
        def main() -> None:
            register()

            @hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
            def _run(cfg: DictConfig) -> None:
                run(job_type, run_name(cfg), tags(cfg), body, cfg)

            _run()
        # the same job on an already composed config, in this process (tests, notebooks)
        main.call = lambda cfg: run(job_type, run_name(cfg), tags(cfg), body, cfg)
        return main
    return deco


def run(job_type: str, name: str, tags: list, body: Body, cfg: DictConfig) -> dict:
    try:
        validate(cfg)
    except ConfigError as e:
        log.error("%s", e)
        sys.exit(2)
    transformers.utils.logging.set_verbosity_error()  # load reports of fresh value heads are expected
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(cfg.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    layout = Layout(Path(cfg.results_dir) / cfg.name)
    config = to_container(cfg)
    if HydraConfig.initialized():
        write_provenance(Path(HydraConfig.get().runtime.output_dir) / "provenance.json", config)
    t0 = time.time()
    log.info("%s %s: experiment %s, device %s", job_type, name, cfg.name, device_of(cfg))
    with Tracker(cfg.tracking.mode, project=cfg.tracking.project, root_dir=layout.root, group=cfg.name,
                 job_type=job_type, name=name, config=config, tags=[str(t) for t in tags]) as tracker:
        summary = body(cfg, layout, tracker) or {}
        summary = {**summary, "wall_s": round(time.time() - t0, 2)}
        tracker.summary(summary)
    log.info("%s %s done: %s", job_type, name,
             ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return summary


def load_problems(layout: Layout, splits) -> list[Problem]:
    """Problems of the given splits, in table order, from the problems stage's table."""
    df = read_table(layout.problems(), PROBLEMS).filter(pl.col("split").is_in(list(splits)))
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


def record(tracker: Tracker, cfg, name: str, type: str, path) -> None:
    """Record an output (a table, a model directory) in the job's W&B run as an artifact by reference
    to its path, named <experiment>-<name> so studies sharing a project do not mix versions."""
    tracker.artifact(f"{cfg.name}-{name}", type, path)


def prover_tags(prover: str) -> list[str]:
    """W&B tags of a job that uses prover `prover`: the prover and its K."""
    return [f"prover:{prover}", f"k:{parse_prover(prover)[1]}"]


def policy_sampler(cfg, layout: Layout, policy: str, task) -> Sampler:
    """The sampler of a trained policy, on the configured device and dtype."""
    from pavflow.policy.model import load_policy
    from pavflow.policy.sampler import Sampler
    model, tok = load_policy(layout.policy(policy), cfg.device, cfg.dtype)
    return Sampler(model, tok, step_sep=task.step_sep, batch_size=cfg.rollouts.batch_size)


def load_verifier(cfg, layout: Layout, name: str):
    """Any verifier of the study by name, as an object with `.score(prompts, steps) -> (values, tokens)`
    (values v(s_h), h = 0..H, in [0, 1]): a value model, an implicit PRM (sigmoid of q_h; `.q` gives q_h
    itself) or an analytic PAV (the pqv's values, transformed)."""
    from pavflow.verifiers.analytic import AnalyticPAV
    from pavflow.verifiers.value import ValueVerifier
    spec = parse_verifier(name)
    device, batch = str(device_of(cfg)), cfg.verifier.score_batch_size
    if spec.kind == "pav_analytic":
        return AnalyticPAV(load_verifier(cfg, layout, "pqv"), parse_prover(spec.prover)[1])
    if spec.kind == "implicit":
        from pavflow.verifiers.implicit import ImplicitVerifier
        return ImplicitVerifier.load(layout.verifier(name), layout.policy(cfg.sweep.policy), device, batch)
    return ValueVerifier.load(layout.verifier(name), device, batch)


class Checkpoints:
    """A training job's resume file, `<results>/checkpoints/<job>.pt`, fingerprinted by the job's
    rerun triggers (its config section and code hash): `resume()` is None unless this very job was
    interrupted; `save(state)` keeps the latest state; `done()` removes it once outputs are written."""

    def __init__(self, cfg, layout: Layout, job: str, stage: str, **wildcards):
        self.path = layout.checkpoint(job)
        params = json.dumps(stage_params(cfg, stage, **wildcards), sort_keys=True, default=str)
        self.fingerprint = hashlib.sha256(params.encode()).hexdigest()

    def resume(self) -> dict | None:
        state = load_checkpoint(self.path, self.fingerprint)
        if state is not None:
            log.info("resuming from checkpoint %s", self.path)
        return state

    def save(self, state: dict) -> None:
        save_checkpoint(state, self.path, self.fingerprint)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
