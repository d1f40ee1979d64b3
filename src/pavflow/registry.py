"""The DAG, declared once. Each stage says which jobs the study has of it (their wildcards), what each
job reads and writes (Layout paths), the config its outputs depend on, and whether it runs a model.
From these entries come the Snakemake rules (workflow/rules/stages.smk), their rerun triggers
(`params`), threads and resources, every stage's own paths, its W&B job type and run names.

A job's rerun trigger is the config it depends on plus the hash of the pavflow source its entry module
really imports, transitively (read with `ast`), minus UNHASHED: modules that cannot change what a table
holds. Snakemake reruns a job when its params change, and everything downstream of it.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from pavflow.config import analytic_provers, provers, rl_arms, rollout_policies, served_model, trained_verifiers
from pavflow.names import Arm, Prover, Verifier, pav
from pavflow.paths import Layout

PACKAGE_DIR = Path(__file__).resolve().parent
# Cannot change a table: W&B, provenance records, progress bars, config schema and validation, this
# registry and the paths and resources it hands out (a changed path or input set reruns a job through
# Snakemake's own input trigger; a changed config value through params).
UNHASHED = frozenset({"pavflow.tracking", "pavflow.provenance", "pavflow.progress", "pavflow.config",
                      "pavflow.registry", "pavflow.paths"})

Job = dict  # wildcard name -> value, e.g. {"prover": "base_k4"}


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: Callable[[Any, Layout, Job], dict]  # (cfg, layout, job) -> {output name: path}
    inputs: Callable[[Any, Layout, Job], dict] = lambda c, L, j: {}  # {name: path | [paths] | {key: path}}
    config: Callable[[Any, Job], dict] = lambda c, j: {}  # what the outputs depend on, besides SHARED
    jobs: Callable[[Any], list[Job]] = lambda c: [{}]  # this study's jobs of the stage
    wildcards: tuple[str, ...] = ()
    model: bool = False  # runs a policy or a verifier: cfg.threads threads, and a GPU on cuda
    module: str = ""  # entry point, pavflow.stages.<name> by default
    directories: tuple[str, ...] = ()  # outputs that are directories (saved models)
    report: dict = field(default_factory=dict)  # output -> (category, subcategory): a Snakemake report item
    aggregate: bool = False  # a summary over the sweep: rebuilt in place when the sweep changes (pavflow.identity)

    @property
    def entry(self) -> str:
        return self.module or f"pavflow.stages.{self.name}"

    def run_name(self, job: Job) -> str:
        return "-".join([self.name, *(str(job[w]) for w in self.wildcards)])


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _pick(node, keys) -> dict:
    return {k: _plain(node[k]) for k in keys}


def _drop(node, keys) -> dict:
    return {k: v for k, v in _plain(node).items() if k not in keys}


def _base(cfg) -> dict:
    return {"base_policy": str(cfg.sweep.policy)}


# search keys every beam-search job depends on (how a beam is grown and scored)
BEAM_KEYS = ("split", "expansions", "temperature", "max_new_tokens", "max_steps", "max_step_tokens")


def headline(cfg) -> Prover:
    return Prover.of(cfg.search.prover)


def beam_budgets(cfg, prover: str) -> list[int]:
    """The headline prover is searched at every budget; the others at k_budget (the prover-K curve)."""
    return list(cfg.search.budgets) if prover == str(headline(cfg)) else [int(cfg.search.k_budget)]


def verifier_config(cfg, name: str) -> dict:
    """The verifier config one verifier's training depends on: implicit PRMs their own section, value
    verifiers the rest (random_states only for the .random label variant)."""
    v = _plain(cfg.verifier)
    if Verifier.parse(name).kind == "implicit":
        return {"implicit": {k: x for k, x in v["implicit"].items() if k != "losses"}}
    drop = {"implicit", "score_batch_size", "checkpoint_every", "quality_bins"} | \
        (set() if ".random" in name else {"random_states"}) | \
        (set() if v["init"] == "scratch" else {"hidden_size", "n_layers", "n_heads", "intermediate_size"})
    return {k: x for k, x in v.items() if k not in drop}


def _policy(cfg, L: Layout) -> Path:
    return L.policy(cfg.sweep.policy)


def verifier_inputs(cfg, L: Layout, name: str) -> dict:
    """What loading verifier `name` for scoring reads: its model (the pqv's, for an analytic pav)."""
    v = Verifier.parse(name)
    return {name: L.verifier("pqv" if v.kind == "pav_analytic" else name)}


def prm_verifiers(cfg) -> list[str]:
    """The verifiers best-of-N runs with beside the ORM: the pqv, the headline pav, the implicit PRMs and
    the ORM trained on rollouts (its :last aggregation is its outcome score)."""
    return ["pqv", str(pav(headline(cfg)))] + [f"implicit_{l}" for l in cfg.verifier.implicit.losses] + \
        [str(v) for v in trained_verifiers(cfg) if v.rollouts]


def quality_verifiers(cfg) -> list[str]:
    return [str(v) for v in trained_verifiers(cfg)] + [str(pav(p)) for p in analytic_provers(cfg)]


def _arm_inputs(cfg, L: Layout, arm: str) -> dict:
    a = Arm.parse(arm)
    if a.kind == "pav":
        return {"progress": L.verifier(str(pav(Prover.of(cfg.rl.prover))))}
    if a.kind == "pav_analytic":
        return {"progress": L.verifier("pqv")}
    if a.kind.startswith("implicit_"):
        return {"progress": L.verifier(a.kind)}
    if a.kind == "pav_mc":
        return {"prover_policy": L.policy(a.prover.policy)}
    return {}


def rl_config(cfg, arm: str) -> dict:
    """The rl config an arm's curve depends on: the prover and alpha only where the arm uses them."""
    a = Arm.parse(arm)
    drop = {"arms", "seeds", "checkpoint_every", "mc_provers"}
    if a.kind != "pav_mc":
        drop.add("mc_rollouts")
    if a.kind not in ("pav", "pav_analytic"):
        drop.add("prover")
    if a.kind == "outcome":
        drop.add("alpha")
    return {**_drop(cfg.rl, drop), **({"rollouts_temperature": float(cfg.rollouts.temperature)} if a.kind == "pav_mc" else {})}


def _verifier_inputs(cfg, L: Layout, job: Job) -> dict:
    """orm and implicit PRMs read the seeds; pqv the base policy's MC pool; pav_<prover> that prover's
    labels (and its rollout pool, for label variants); orm.rollouts the base policy's MC continuations."""
    v = Verifier.parse(job["verifier"])
    ins = {"problems": L.problems(), "seeds": L.seeds(), "policy": _policy(cfg, L)}
    if v.kind in ("pqv", "pav"):
        ins["mc_pi"] = L.mc(cfg.sweep.policy)
    if v.kind == "pav":
        ins |= {"labels": L.labels(str(v.prover)), "mc_rho": L.mc(v.prover.policy)}
    if v.rollouts:
        ins["continuations"] = L.continuations(cfg.sweep.policy)
    return ins


def _beam(cfg, L: Layout, prover: str) -> dict:
    """Inputs of beam search on Q^pi + alpha A^mu of `prover`: the policy, the pqv and the pav."""
    return {"problems": L.problems(), "policy": _policy(cfg, L), "pqv": L.verifier("pqv"),
            "pav": verifier_inputs(cfg, L, str(pav(Prover.parse(prover))))}


def _search_tables(cfg, L: Layout) -> list[Path]:
    """Every test-split search table the report reads."""
    out = [L.search("bon_orm")] + [L.search(f"prm_{v}") for v in prm_verifiers(cfg)]
    out += [STAGES[s].outputs(cfg, L, j)["search"] for s in ("search_beam", "search_beamv", "search_beam_mc")
            for j in STAGES[s].jobs(cfg)]
    return out + [L.search("alpha"), L.search("selected")] + ([L.search("oracle")] if cfg.search.oracle else [])


def _report_outputs(cfg, L: Layout, job: Job) -> dict:
    r, k = L.report(), int(cfg.search.k_budget)
    figures = {"headline_search": "headline_search", "acc_vs_tokens": "acc_vs_tokens", "acc_vs_budget": "acc_vs_budget", "prover_k": f"prover_k_N{k}",
               "alpha": f"alpha_N{k}", "verifier_quality": "verifier_quality", "calibration": "calibration",
               "rl_curves": "rl_curves", "success_histogram": "success_histogram", "train_logs": "train_logs",
               "bon_diagnosis": "bon_diagnosis", "oracle_k": "oracle_k"}
    if any(v.data is not None for v in trained_verifiers(cfg)):  # the data-scaling curve needs a .s<n>m<m> variant
        figures["data_scaling"] = "data_scaling"
    return {"summary": r / "summary.md", "headline": r / "headline.json", "tables": r / "summary.html",
            "landing": r / "landing.rst",  # the Snakemake report's landing text (workflow/report/workflow.rst)
            "config": r / "config.yaml", "curves": r / "curves.parquet",
            **{name: r / f"{stem}.png" for name, stem in figures.items()}}


def _report_inputs(cfg, L: Layout, job: Job) -> dict:
    verifiers = [str(v) for v in trained_verifiers(cfg)]
    return {"problems": L.problems(), "pool": L.pool(), "search": _search_tables(cfg, L), "scores": L.search("scores_orm"),
            "val": [L.search(f"val_{p}") for p in provers(cfg)],
            "rl": [L.rl(j["arm"], j["rl_seed"]) for j in STAGES["rl"].jobs(cfg)],
            "verifier_metrics": {v: L.verifier_metrics(v) for v in verifiers},
            "logs": [L.policy_log(p) for p in cfg.sft.policies] + [L.verifier_log(v) for v in verifiers],
            "quality": L.quality(), "calibration": L.calibration()}


_REPORT_ITEMS = {"tables": ("1. Summary", "tables with 95% CIs"), "config": ("1. Summary", "resolved configuration"),
                 "headline_search": ("1. Summary", "headline: search_selected vs search_bon"),
                 "acc_vs_tokens": ("2. Test-time search", "search_bon, search_beam"),
                 "acc_vs_budget": ("2. Test-time search", "search_bon, search_beam"),
                 "bon_diagnosis": ("2. Test-time search", "search_bon: what best-of-N picks"),
                 "prover_k": ("2. Test-time search", "search_beam per prover"),
                 "alpha": ("2. Test-time search", "search_alpha"),
                 "oracle_k": ("4. Online RL", "oracle provers: search_beam_mc, rl pav_mc"),
                 "verifier_quality": ("3. Verifiers", "quality"), "calibration": ("3. Verifiers", "quality"),
                 "data_scaling": ("3. Verifiers", "quality: verifiers trained on part of the data"),
                 "rl_curves": ("4. Online RL", "rl"), "success_histogram": ("5. Policies", "search_pool"),
                 "train_logs": ("5. Policies", "sft, verifier")}


def caption(path) -> str:
    """The caption file of a report item, under workflow/report/: one per figure, whatever its budget (prover_k_N4 -> prover_k.rst)."""
    return f"{Path(path).stem.split('_N')[0]}.rst"


def _stages(*stages: Stage) -> dict[str, Stage]:
    return {s.name: s for s in stages}


STAGES: dict[str, Stage] = _stages(
    Stage("problems", outputs=lambda c, L, j: {"problems": L.problems()}),
    Stage("sft", wildcards=("policy",), model=True, directories=("model",),
          jobs=lambda c: [{"policy": p} for p in c.sft.policies],
          inputs=lambda c, L, j: {"problems": L.problems()},
          outputs=lambda c, L, j: {"model": L.policy(j["policy"]), "log": L.policy_log(j["policy"])},
          config=lambda c, j: {"policy": _plain(c.policy), "sampler_batch": int(c.rollouts.batch_size),
                               "sft": {**_drop(c.sft, ("policies", "checkpoint_every")),
                                       "this": _plain(c.sft.policies[j["policy"]]) if j.get("policy") in c.sft.policies else None}}),
    Stage("seeds", model=True,
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L)},
          outputs=lambda c, L, j: {"seeds": L.seeds()},
          config=lambda c, j: {**_base(c), "rollouts": _drop(c.rollouts, ("n_mc",))}),
    Stage("mc", wildcards=("policy",), model=True,
          jobs=lambda c: [{"policy": p} for p in rollout_policies(c)],
          inputs=lambda c, L, j: {"problems": L.problems(), "seeds": L.seeds(), "policy": L.policy(j["policy"])},
          outputs=lambda c, L, j: {"mc": L.mc(j["policy"]), "continuations": L.continuations(j["policy"])},
          config=lambda c, j: {**_base(c), "rollouts": _plain(c.rollouts)}),
    # the quality table's ground truth: new rollouts from the val seeds' prefixes
    Stage("mc_fresh", wildcards=("policy",), model=True, module="pavflow.stages.mc",
          jobs=lambda c: [{"policy": p} for p in rollout_policies(c)],
          inputs=lambda c, L, j: {"problems": L.problems(), "seeds": L.seeds(), "policy": L.policy(j["policy"])},
          outputs=lambda c, L, j: {"mc": L.mc_fresh(j["policy"])},
          config=lambda c, j: {**_base(c), "rollouts": _plain(c.rollouts)}),
    Stage("labels", wildcards=("prover",),
          jobs=lambda c: [{"prover": str(p)} for p in provers(c)],
          inputs=lambda c, L, j: {"mc_pi": L.mc(c.sweep.policy), "mc_rho": L.mc(Prover.parse(j["prover"]).policy)},
          outputs=lambda c, L, j: {"labels": L.labels(j["prover"])},
          config=lambda c, j: _base(c)),
    Stage("verifier", wildcards=("verifier",), model=True, directories=("model",),
          jobs=lambda c: [{"verifier": str(v)} for v in trained_verifiers(c)],
          inputs=_verifier_inputs,
          outputs=lambda c, L, j: {"model": L.verifier(j["verifier"]), "metrics": L.verifier_metrics(j["verifier"]),
                                   "log": L.verifier_log(j["verifier"])},
          config=lambda c, j: {**_base(c), "verifier": verifier_config(c, j.get("verifier", "orm"))}),
    # every verifier (and the MC labels themselves) on the val seeds against fresh MC pools
    Stage("quality", model=True, aggregate=True,
          inputs=lambda c, L, j: {"problems": L.problems(), "seeds": L.seeds(), "policy": _policy(c, L),
                                  "mc": {p: L.mc(p) for p in rollout_policies(c)},
                                  "mc_fresh": {p: L.mc_fresh(p) for p in rollout_policies(c)},
                                  "verifiers": {v: p for q in quality_verifiers(c) for v, p in verifier_inputs(c, L, q).items()},
                                  "metrics": {str(v): L.verifier_metrics(str(v)) for v in trained_verifiers(c)}},
          outputs=lambda c, L, j: {"quality": L.quality(), "calibration": L.calibration()},
          config=lambda c, j: {**_base(c), "verifier": _plain(c.verifier), "rollouts": _plain(c.rollouts),
                               "verifiers": quality_verifiers(c), "provers": [str(p) for p in provers(c)]}),
    Stage("search_pool", model=True,
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L)},
          outputs=lambda c, L, j: {"pool": L.pool()},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, ("split", "temperature", "max_new_tokens")),
                               "n": max(c.search.budgets)}),
    Stage("search_bon", model=True,
          inputs=lambda c, L, j: {"problems": L.problems(), "pool": L.pool(), "orm": L.verifier("orm")},
          outputs=lambda c, L, j: {"search": L.search("bon_orm"), "scores": L.search("scores_orm")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, ("split", "budgets"))}),
    # best-of-N and weighted majority with a process verifier (pqv, headline pav, implicit PRMs)
    Stage("search_prm", wildcards=("verifier",), model=True,
          jobs=lambda c: [{"verifier": v} for v in prm_verifiers(c)],
          inputs=lambda c, L, j: {"problems": L.problems(), "pool": L.pool(), "policy": _policy(c, L),
                                  "verifier": verifier_inputs(c, L, j["verifier"])},
          outputs=lambda c, L, j: {"search": L.search(f"prm_{j['verifier']}")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, ("split", "budgets"))}),
    # beam search on Q^pi + alpha A^mu: the headline prover at every budget, the others at k_budget
    Stage("search_beam", wildcards=("prover",), model=True,
          jobs=lambda c: [{"prover": str(p)} for p in provers(c) + analytic_provers(c)],
          inputs=lambda c, L, j: _beam(c, L, j["prover"]),
          outputs=lambda c, L, j: {"search": L.search(f"beam_{j['prover']}")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "alpha")),
                               "budgets": beam_budgets(c, j.get("prover", ""))}),
    # beam search at k_budget scored by one verifier's value alone (the implicit PRMs)
    Stage("search_beamv", wildcards=("verifier",), model=True,
          jobs=lambda c: [{"verifier": str(v)} for v in c.search.beam_verifiers],
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L),
                                  "verifier": verifier_inputs(c, L, j["verifier"])},
          outputs=lambda c, L, j: {"search": L.search(f"beamv_{j['verifier']}")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "k_budget"))}),
    # the alpha curve: headline prover, search.alpha_grid at search.k_budget on the search split
    Stage("search_alpha", model=True,
          inputs=lambda c, L, j: _beam(c, L, str(headline(c))),
          outputs=lambda c, L, j: {"search": L.search("alpha")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "alpha", "alpha_grid", "k_budget",
                                                                      "prover"))}),
    # the validation grid (prover x alpha at search.k_budget) the val-chosen configuration comes from
    Stage("search_val", wildcards=("prover",), model=True,
          jobs=lambda c: [{"prover": str(p)} for p in provers(c)],
          inputs=lambda c, L, j: _beam(c, L, j["prover"]),
          outputs=lambda c, L, j: {"search": L.search(f"val_{j['prover']}")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "alpha_grid", "k_budget",
                                                                      "val_problems")),
                               "headline": str(headline(c)) == j.get("prover")}),  # that job also runs alpha = 0
    # beam search on the search split at every budget with the (prover, alpha) chosen on val
    Stage("search_selected", model=True, aggregate=True,
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L), "pqv": L.verifier("pqv"),
                                  "pav": {str(p): L.verifier(str(pav(p))) for p in provers(c)},
                                  "val": [L.search(f"val_{p}") for p in provers(c)],
                                  "headline": L.search(f"beam_{headline(c)}")},
          outputs=lambda c, L, j: {"search": L.search("selected")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "alpha", "alpha_grid", "k_budget",
                                                                      "val_problems", "budgets", "prover")),
                               "provers": [str(p) for p in provers(c)]}),
    # beam search scored by fresh MC rollouts of the base policy (upper bound); only with search.oracle
    Stage("search_oracle", model=True,
          jobs=lambda c: [{}] if c.search.oracle else [],
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L)},
          outputs=lambda c, L, j: {"search": L.search("oracle")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "budgets", "oracle_rollouts",
                                                                      "oracle_problems"))}),
    # beam search on the MC effective reward Q^pi + alpha A^mu, both from fresh rollouts (oracle provers,
    # no verifier): every prover at k_budget on the first search.oracle_problems; only with search.oracle
    Stage("search_beam_mc", wildcards=("prover",), model=True,
          jobs=lambda c: [{"prover": str(p)} for p in provers(c)] if c.search.oracle else [],
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L),
                                  "prover_policy": L.policy(Prover.parse(j["prover"]).policy)},
          # "mcbeam_", not "beam_mc_": search_beam's beam_{prover} would match it with a policy named "mc"
          outputs=lambda c, L, j: {"search": L.search(f"mcbeam_{j['prover']}")},
          config=lambda c, j: {**_base(c), "search": _pick(c.search, (*BEAM_KEYS, "alpha", "k_budget", "oracle_rollouts",
                                                                      "oracle_problems"))}),
    # rejection fine-tuning of the base policy on its own correct train samples; only with rl.init=rft
    Stage("rft", model=True, directories=("model",),
          jobs=lambda c: [{}] if c.rl.init == "rft" else [],
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L)},
          outputs=lambda c, L, j: {"model": L.rft_policy(), "log": L.rft_log()},
          config=lambda c, j: {**_base(c), "rft": _plain(c.rl.rft), "max_new_tokens": int(c.rl.max_new_tokens),
                               "sft_eval_problems": int(c.sft.eval_problems)}),
    Stage("rl", wildcards=("arm", "rl_seed"), model=True,
          jobs=lambda c: [{"arm": str(a), "rl_seed": int(s)} for a in rl_arms(c) for s in c.rl.seeds],
          inputs=lambda c, L, j: {"problems": L.problems(), "policy": _policy(c, L),
                                  "init": L.rft_policy() if c.rl.init == "rft" else _policy(c, L),
                                  **_arm_inputs(c, L, j["arm"])},
          outputs=lambda c, L, j: {"curve": L.rl(j["arm"], j["rl_seed"])},
          config=lambda c, j: {**_base(c), "rl": rl_config(c, j.get("arm", "outcome"))}),
    Stage("report", inputs=_report_inputs, outputs=_report_outputs, report=_REPORT_ITEMS, aggregate=True,
          config=lambda c, j: {"search": _plain(c.search), "rl": _plain(c.rl), "sweep": _plain(c.sweep)}),
)

# checkpoint cadence never changes an output; resources and tracking are not here at all
SHARED = ("seed", "task", "dtype")

# stages that sample from a fixed policy, through the backend generation.backend picks (stages.sampling)
SAMPLING = frozenset({"seeds", "mc", "mc_fresh", "search_pool", "search_beam", "search_beamv", "search_alpha",
                      "search_val", "search_selected", "search_oracle", "search_beam_mc", "rft"})
SERVER_RESOURCE = "generation_server"  # snakemake --resources generation_server=N: server jobs at once


def sampled_policies(stage: str, cfg, job: Job) -> list[str]:
    """The fixed policies a job samples through the generation backend: its policy wildcard's or
    sweep.policy; search_beam_mc also its prover's (the MC oracle of mu); rl only its pav_mc arms, the
    prover's policy (the policy being trained always samples locally); [] for every other job."""
    if stage == "rl":
        arm = Arm.parse(job["arm"]) if "arm" in job else None
        return [arm.prover.policy] if arm is not None and arm.kind == "pav_mc" else []
    if stage not in SAMPLING:
        return []
    own = str(job.get("policy") or cfg.sweep.policy) if "policy" in STAGES[stage].wildcards else str(cfg.sweep.policy)
    if stage == "search_beam_mc" and "prover" in job:
        return list(dict.fromkeys([own, Prover.parse(job["prover"]).policy]))
    return [own]


def samples_from_server(stage: str, cfg) -> bool:
    """Whether some job of the stage samples from the generation server (rl: with any pav_mc arm)."""
    if cfg.generation.backend != "server":
        return False
    return stage in SAMPLING or (stage == "rl" and any(a.kind == "pav_mc" for a in rl_arms(cfg)))


def generation_params(stage: str, cfg, job: Job) -> dict | None:
    """What of `generation` can change a sampling job's table: the backend and the served model (a list
    when the job samples two policies); never the URL, timeouts, retries or concurrency. None for a job
    that samples no fixed policy."""
    policies = sampled_policies(stage, cfg, job)
    if not policies:
        return None
    if cfg.generation.backend == "local":
        return {"backend": "local"}
    models = [served_model(cfg, p) for p in policies]
    return {"backend": "server", "model": models[0] if len(models) == 1 else models}


def jobs(stage: str, cfg) -> list[Job]:
    return STAGES[stage].jobs(cfg)


def params(stage: str, cfg, job: Job | None = None) -> dict:
    """The builtin-typed config a job's outputs depend on, and its code hash (Snakemake `params`)."""
    s, job = STAGES[stage], dict(job or {})
    g = generation_params(stage, cfg, job)
    gen = {"generation": g} if g is not None else {}
    return {**{k: _plain(cfg[k]) for k in SHARED}, **s.config(cfg, job), **gen, "code": code_hash(s.entry)}


def io(stage: str, cfg, layout: Layout, job: Job) -> tuple[dict, dict]:
    s = STAGES[stage]
    return s.inputs(cfg, layout, job), s.outputs(cfg, layout, job)


def flat(paths) -> list[str]:
    """Every path in an inputs value (a path, a list, or a dict of paths), as strings."""
    if isinstance(paths, dict):
        return [p for v in paths.values() for p in flat(v)]
    if isinstance(paths, (list, tuple)):
        return [p for v in paths for p in flat(v)]
    return [str(paths)]


def priorities(cfg, layout: Layout) -> dict[tuple[str, str], int]:
    """Snakemake `priority` per job, keyed by (stage, run name): highest level first, list scheduling's
    classic rule. A job's level is the number of jobs on the longest chain from it to a job nobody
    reads (the report), so the chains that end in the long aggregate jobs (verifiers -> quality,
    search_val -> search_selected) run first and the independent leaves (RL arms, most beam searches)
    fill the cores around them, instead of leaving an aggregate job to run alone at the end. An
    aggregate job ranks above the other jobs of its level: it can start only when its whole sweep is
    done, and it is long. A priority changes the order jobs run in, never what they write."""
    nodes = [(name, j) for name in STAGES for j in jobs(name, cfg)]
    key = {id(j): (name, STAGES[name].run_name(j)) for name, j in nodes}
    producer = {p: key[id(j)] for name, j in nodes for p in flat(STAGES[name].outputs(cfg, layout, j))}
    consumers: dict[tuple[str, str], set] = {key[id(j)]: set() for _, j in nodes}
    for name, j in nodes:
        for p in flat(STAGES[name].inputs(cfg, layout, j)):
            if p in producer:
                consumers[producer[p]].add(key[id(j)])
    level: dict[tuple[str, str], int] = {}

    def level_of(node) -> int:
        if node not in level:
            level[node] = 1 + max((level_of(c) for c in consumers[node]), default=0)
        return level[node]

    return {node: 2 * level_of(node) + int(STAGES[node[0]].aggregate) for node in consumers}


# -----------------------------------------------------------------------------
# threads and resources of a job (Snakemake passes them to local and cluster executors alike)

def uses_cuda(device: str) -> bool:
    """True for an explicit CUDA device (cuda, cuda:<i>); `auto` decides on the node, so it asks for
    no GPU unless resources.gpus does."""
    return device == "cuda" or device.startswith("cuda:")


def gpus_per_job(cfg) -> int:
    if cfg.resources.gpus is not None:
        return int(cfg.resources.gpus)
    return 1 if uses_cuda(str(cfg.device)) else 0


def threads(stage: str, cfg) -> int:
    """Model stages run on cfg.threads threads; the others are single-threaded table work."""
    return int(cfg.threads) if STAGES[stage].model else 1


def resources(stage: str, cfg) -> dict:
    """mem_mb and runtime (minutes) from `resources`, resources.stages.<stage> overriding; `gpu` only
    when the stage runs a model and asks for GPUs; SERVER_RESOURCE 1 for stages that sample from a
    server (samples_from_server: per stage, so every rl job takes one when any arm is pav_mc)."""
    s, r = STAGES[stage], cfg.resources
    over = r.stages.get(stage) if stage in r.stages else None

    def pick(key):
        return int(over[key]) if over is not None and over[key] is not None else r[key]

    out = {"mem_mb": int(pick("mem_mb")), "runtime": int(pick("runtime"))}
    if s.model:
        gpus = int(over.gpus) if over is not None and over.gpus is not None else gpus_per_job(cfg)
        if gpus > 0:
            out["gpu"] = gpus
    if samples_from_server(stage, cfg):
        out[SERVER_RESOURCE] = 1
    return out


# -----------------------------------------------------------------------------
# code hashes from the real imports

SRC = PACKAGE_DIR.parent  # the directory holding the pavflow package


def _module_file(name: str, root: Path) -> Path | None:
    rel = root.joinpath(*name.split("."))
    for f in (rel.with_suffix(".py"), rel / "__init__.py"):
        if f.is_file():
            return f
    return None


def _direct_imports(name: str, root: Path) -> frozenset[str]:
    f = _module_file(name, root)
    st = f.stat()
    return _parsed_imports(name, root, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=None)
def _parsed_imports(name: str, root: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """pavflow modules `name` imports anywhere in its source (function bodies included), with the
    packages they live in (cached per file version)."""
    f = _module_file(name, root)
    is_pkg = f.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] != "pavflow":
                continue
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                sub = ".".join(parts[:i])
                if _module_file(sub, root) is not None:
                    out.add(sub)
    return frozenset(out - {name})


def imports(entry: str, root: Path = SRC) -> list[str]:
    """Every pavflow module `entry` imports, transitively, and itself; traversal stops at UNHASHED."""
    seen, todo = set(), [entry]
    while todo:
        m = todo.pop()
        if m in seen or m in UNHASHED:
            continue
        seen.add(m)
        todo.extend(_direct_imports(m, root))
    return sorted(seen)


def code_hash(entry: str, root: Path = SRC) -> str:
    """sha256 over the source of `imports(entry)`: the rerun trigger for code changes."""
    h = hashlib.sha256()
    for m in imports(entry, root):
        f = _module_file(m, root)
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
