"""What the workflow needs to know about a study, computed once when the DAG is built: the composed
and validated config, the jobs of the sweep, and each job's rerun triggers (its resolved config
section and the hash of the code it runs)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import OmegaConf

from pavflow.config import ConfigError, provers, register, rollout_policies, validate
from pavflow.labels import prover_name
from pavflow.provenance import code_hash
from pavflow.verifiers.targets import ANALYTIC

# The Hydra config tree, for the workflow and the stages. It lives here, not in pavflow.stages.common,
# so that building the DAG (once per Snakemake process, i.e. twice per cluster job) does not import
# torch and transformers.
CONF_DIR = os.environ.get("PAVFLOW_CONF", str(Path(__file__).resolve().parents[2] / "conf"))

# Source each stage's outputs depend on (relative to src/pavflow). Editing one of these files reruns
# the stage and everything downstream; tracking, provenance and config validation are left out on
# purpose, since they cannot change a table.
COMMON = ["data.py", "paths.py", "stages/common.py"]
_SWEEP = ["tasks", "policy", "search/beam.py", "verifiers", "labels.py", "stages/search_runs.py"]
# search keys every beam-search job depends on (how a beam is grown and scored)
BEAM_KEYS = ("split", "expansions", "temperature", "max_new_tokens", "max_steps", "max_step_tokens")
# search keys that select which extra sweeps run (alpha curve, val choice, oracle): no effect on the
# headline and per-prover beam jobs
SWEEP_KEYS = ("alpha_grid", "val_problems", "oracle", "oracle_rollouts", "oracle_problems")
CODE = {
    "problems": ["tasks", "stages/problems.py"],
    "sft": ["tasks", "policy", "stages/sft.py"],
    "seeds": ["tasks", "policy", "rollouts.py", "stages/seeds.py"],
    "mc": ["tasks", "policy", "rollouts.py", "stages/mc.py"],
    "labels": ["labels.py", "stages/labels.py"],
    "verifier": ["tasks", "verifiers", "policy/model.py", "stats.py", "stages/verifier.py"],
    "quality": ["tasks", "verifiers", "policy/model.py", "labels.py", "stats.py", "stages/common.py", "stages/quality.py"],
    "search_pool": ["tasks", "policy", "rollouts.py", "stages/search_pool.py"],
    "search_bon": ["tasks", "search/bon.py", "verifiers", "policy/model.py", "stages/search_bon.py"],
    "search_beam": ["tasks", "policy", "search/beam.py", "verifiers", "labels.py", "stages/search_beam.py"],
    "search_beamv": [*_SWEEP, "stages/search_beamv.py"],
    "search_prm": ["tasks", "search/bon.py", "verifiers", "stages/search_prm.py"],
    "search_alpha": [*_SWEEP, "stages/search_alpha.py"],
    "search_val": [*_SWEEP, "stages/search_val.py"],
    "search_selected": [*_SWEEP, "search/select.py", "stages/search_selected.py"],
    "search_oracle": [*_SWEEP, "search/oracle.py", "stages/search_oracle.py"],
    "rft": ["tasks", "policy", "rollouts.py", "stages/rft.py"],
    "rl": ["tasks", "policy", "rl", "verifiers", "labels.py", "stages/rl.py"],
    "report": ["report", "stats.py", "labels.py", "stages/report.py"],
}


def compose(experiment: str, overrides: list[str]):
    """The study's config, as every stage will see it; raises ConfigError naming the bad override."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(overrides, (list, tuple)) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"--config overrides={overrides!r}: expected a list of Hydra override strings, "
                          "e.g. overrides='[\"sweep.prover_k=[1,4,64]\"]'")
    register()
    try:
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = hydra_compose("config", overrides=[f"experiment={experiment}", *overrides])
    except (HydraException, OmegaConfBaseException) as e:
        cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
        raise ConfigError(f"experiment={experiment!r} overrides={list(overrides)}: {e}{cause}") from None
    try:
        validate(cfg)
    except ConfigError as e:
        if e.key is None:
            raise
        raise ConfigError(f"{e} [{value_source(e.key, experiment, overrides, Path(CONF_DIR))}]", key=e.key) from None
    check_data(cfg)
    return cfg


def check_data(cfg) -> None:
    """The task's data, read and checked now (every split built, every user-file row validated), so a
    malformed row, a missing column or too few problems stops the workflow before any job runs."""
    from pavflow.tasks import check_task
    from pavflow.tasks.rgym import TaskDataError
    try:
        check_task(cfg.task, cfg.seed)
    except TaskDataError as e:
        raise ConfigError(f"task {cfg.task.name}: {e}") from None


def value_source(key: str, experiment: str, overrides: list[str], conf_dir: Path) -> str:
    """Where the value of `key` (e.g. "sweep.prover_k[0]") came from: an override, the experiment
    preset, its group's config file, conf/config.yaml, or the schema's default."""
    path = re.sub(r"\[\d+\]", "", key).split(".")
    for o in overrides:
        name = o.split("=", 1)[0].lstrip("+~").split(".")
        if "=" in o and name == path[:len(name)]:
            return f"from override {o!r}"
    files = [(conf_dir / "experiment" / f"{experiment}.yaml", path)]
    if len(path) > 1:
        choice = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == path[0]), None)
        if choice is None:
            defaults = OmegaConf.to_container(OmegaConf.load(conf_dir / "config.yaml")).get("defaults", [])
            choice = next((d[path[0]] for d in defaults if isinstance(d, dict) and path[0] in d), None)
        if choice is not None:
            files.append((conf_dir / path[0] / f"{choice}.yaml", path[1:]))
    files.append((conf_dir / "config.yaml", path))
    for f, keys in files:
        node = OmegaConf.load(f) if f.exists() else None
        if node is not None and OmegaConf.select(node, ".".join(keys), default=_MISSING) is not _MISSING:
            return f"set in {f}"
    return "the schema's default (pavflow.config)"


_MISSING = object()


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def stage_params(cfg, stage: str, **job) -> dict:
    """The builtin-typed config a job's outputs depend on (Snakemake `params`: a change reruns it).
    How often a job checkpoints does not change its outputs, so it is left out."""
    c = cfg
    common = {"seed": c.seed, "task": _plain(c.task), "dtype": c.dtype}
    model = {"base_policy": c.sweep.policy}
    s = _plain(c.search)
    by_stage = {
        "problems": {},
        "sft": {"policy": _plain(c.policy), "sft": {**{k: v for k, v in _plain(c.sft).items() if k not in ("policies", "checkpoint_every")},
                                                    "this": _plain(c.sft.policies[job["policy"]])
                                                    if job.get("policy") in c.sft.policies else None}},
        "seeds": {**model, "rollouts": {k: v for k, v in _plain(c.rollouts).items() if k != "n_mc"}},
        "mc": {**model, "rollouts": _plain(c.rollouts)},
        "labels": model,
        "verifier": {**model, "verifier": verifier_params(c, job.get("verifier", ""))},
        "quality": {**model, "verifier": _plain(c.verifier), "rollouts": _plain(c.rollouts),
                    "verifiers": study_jobs(c)["quality_verifiers"]},
        "search_pool": {**model, "search": {k: s[k] for k in ("split", "temperature", "max_new_tokens")},
                        "n": max(s["budgets"])},
        "search_bon": {**model, "search": {k: s[k] for k in ("split", "budgets")}},
        "search_beam": {**model, "search": {k: v for k, v in s.items()
                                            if k not in ("budgets", "k_budget", "prover", "aggregate", *SWEEP_KEYS)},
                        "budgets": beam_budgets(cfg, job.get("prover", ""))},
        "search_prm": {**model, "search": {k: s[k] for k in ("split", "budgets")}},
        "search_beamv": {**model, "search": {k: s[k] for k in (*BEAM_KEYS, "k_budget")}},
        "search_alpha": {**model, "search": {k: s[k] for k in (*BEAM_KEYS, "alpha", "alpha_grid", "k_budget", "prover")}},
        "search_val": {**model, "search": {k: s[k] for k in (*BEAM_KEYS, "alpha_grid", "k_budget", "val_problems")},
                       "headline": s["prover"] == job.get("prover")},  # the headline prover's job also runs alpha = 0
        "search_selected": {**model, "search": {k: s[k] for k in (*BEAM_KEYS, "alpha", "alpha_grid", "k_budget",
                                                                   "val_problems", "budgets", "prover")},
                            "provers": [prover_name(p, k) for p, k in provers(cfg)]},
        "search_oracle": {**model, "search": {k: s[k] for k in (*BEAM_KEYS, "budgets", "oracle_rollouts",
                                                                 "oracle_problems")}},
        "rft": {**model, "rft": _plain(c.rl.rft), "max_new_tokens": c.rl.max_new_tokens},
        "rl": {**model, "rl": {k: v for k, v in _plain(c.rl).items() if k not in ("arms", "seeds", "checkpoint_every")}},
        "report": {"search": s, "rl": _plain(c.rl), "sweep": _plain(c.sweep)},
    }
    return {**common, **by_stage[stage], "code": code_hash(COMMON + CODE[stage])}


def verifier_params(cfg, name: str) -> dict:
    """The verifier config one verifier's training depends on: implicit PRMs their own section, value
    verifiers the rest (random_states only for the .random label variant)."""
    v = _plain(cfg.verifier)
    if name.startswith("implicit_"):
        return {"implicit": {k: x for k, x in v["implicit"].items() if k != "losses"}}
    drop = {"implicit", "score_batch_size", "checkpoint_every", "quality_bins"} | (set() if ".random" in name else {"random_states"})
    return {k: x for k, x in v.items() if k not in drop}


def beam_budgets(cfg, prover: str) -> list[int]:
    """The headline prover is searched at every budget; the others at k_budget (the prover-K curve)."""
    s = cfg.search
    return list(s.budgets) if prover == s.prover else [s.k_budget]


def study_jobs(cfg) -> dict:
    """The sweep: names of every policy, rollout pool, prover, verifier and RL run of the study.
    `provers` are trained (a labels table and a pav each); `analytic_provers` (analytic_k<K>) have a pav
    computed from the pqv; `verifiers` are the trained ones, `quality_verifiers` all of them."""
    names = [prover_name(p, k) for p, k in provers(cfg)]
    analytic = [prover_name(ANALYTIC, int(k)) for k in cfg.sweep.prover_k] if cfg.sweep.analytic else []
    implicit = [f"implicit_{l}" for l in cfg.verifier.implicit.losses]
    verifiers = ["orm", "pqv"] + [f"pav_{p}" for p in names] + implicit + list(cfg.sweep.label_variants)
    return {"policies": list(cfg.sft.policies), "rollout_policies": rollout_policies(cfg),
            "provers": names, "analytic_provers": analytic, "verifiers": verifiers,
            "quality_verifiers": verifiers + [f"pav_{p}" for p in analytic],
            "beam_provers": names + analytic, "beam_verifiers": list(cfg.search.beam_verifiers),
            "prm_verifiers": ["pqv", f"pav_{cfg.search.prover}"] + implicit, "oracle": bool(cfg.search.oracle),
            "rl_runs": [(arm, int(s)) for arm in cfg.rl.arms for s in cfg.rl.seeds]}
