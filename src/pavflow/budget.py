"""What one sampling job will cost, from the config alone: its peak memory and the tokens it generates,
checked against `budget` when the DAG is built (pavflow.config.compose), before any job runs.

    estimate(cfg, "mc") -> Estimate(mem_mb, tokens, ...)

The sampling stages (seeds, mc, mc_fresh, search_pool) stream (pavflow.rollouts): nothing is kept
per continuation, so n_mc and the budgets N change the tokens, not the memory. Memory is

    a process (Python, torch, transformers, polars)   BASE_MB
  + the policy: its weights, twice (the model and the decoder's fused copies)
  + one batch: KV cache of rollouts.batch_size rows over prompt + new tokens, and its logits (on the
    CPU; an explicit CUDA device holds them in GPU memory, not covered by the budget)
  + per prompt the sampler holds (text and token ids) and per row of the finished table

States per seed are the reference solutions' steps (a trained policy writes about as many); every
continuation is counted at its cap, max_new_tokens. Estimates, not bounds: benchmarks/memory.py
compares them with the measured peak RSS.

The jobs with an MC oracle (pavflow.oracle: fresh rollouts from the states that search or RL visits)
are estimated too, when the study has them: search_oracle and search_beam_mc (search.oracle; every
candidate of every beam round rolled out search.oracle_rollouts times, plus the beam's own steps) and
an RL arm pav_mc_<prover> (rl; every state of every sampled response rolled out rl.mc_rollouts times
at each update, plus the responses and evaluations). An oracle call holds its completions until they
are counted, so there rollouts per state do cost memory ("completions"), as do the cached states.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from pavflow.config import Config, ConfigError, provers, rl_arms, value_source
from pavflow.registry import uses_cuda

SAMPLING = ("seeds", "mc", "mc_fresh", "search_pool")  # every study has these
ORACLE = ("search_oracle", "search_beam_mc", "rl")  # MC-oracle jobs: with search.oracle, with a pav_mc arm
BASE_MB = 500  # a sampling stage process after its imports and the tiny policy (measured: ~455 MB RSS)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
STATE_BYTES = 400  # per sampled prefix, besides its text and ids: tuples, list slots, sort keys
ROW_BYTES = {"mc": 120, "mc_fresh": 120, "seeds": 200, "search_pool": 200}  # per table row, besides text
TOKENS_PER_SECOND = 20_000  # for the message only: the tiny policy's sampler on one CPU core
COMPLETION_BYTES = 250  # a Completion an oracle call holds: the object, its token list and text, besides contents


@dataclass(frozen=True)
class Shape:
    """What memory depends on in a policy: parameters, layers, key/value width, vocabulary."""
    params: int
    layers: int
    kv_dim: int
    vocab: int
    chars_per_token: float
    id_bytes: int  # a token id in a Python list: its slot, plus an int object above 256


@dataclass(frozen=True)
class Estimate:
    stage: str
    mem_mb: float
    tokens: int  # generated tokens, every continuation at its cap
    prompts: int  # prompts sampled from (states, for MC)
    copies: int  # continuations per prompt
    max_new_tokens: int
    terms_mb: dict  # memory by term: base, weights, batch, prompts, rows (oracle jobs: completions, cache)
    job: str = ""  # which job, when not every job of the stage is estimated (rl: its pav_mc arm)
    other_tokens: int = 0  # of `tokens`, those besides prompts x copies x max_new_tokens (beam steps, RL samples)

    def describe(self) -> str:
        """What the tokens are, for a refusal."""
        base = f"{self.prompts} prompts x {self.copies} continuations x up to {self.max_new_tokens} tokens"
        if self.stage in ORACLE:
            base = (f"{self.prompts} visited states x {self.copies} rollouts x up to {self.max_new_tokens} tokens, "
                    f"plus {self.other_tokens:.3g} tokens of {'responses and evaluations' if self.stage == 'rl' else 'beam steps'}")
        return base


def stages(cfg) -> list[str]:
    """The sampling stages of the study that `check` estimates: SAMPLING and its MC-oracle jobs."""
    out = list(SAMPLING)
    if cfg.search.oracle:
        out += ["search_oracle", "search_beam_mc"]
    if any(a.kind == "pav_mc" for a in rl_arms(cfg)):
        out.append("rl")
    return out


def estimate(cfg, stage: str, task=None, shape: Shape | None = None) -> Estimate:
    """One job of `stage` (the study's task and policy shape, if already at hand)."""
    from pavflow.tasks import make_task
    task = task or make_task(cfg.task, cfg.seed, cfg.policy)
    shape = shape or policy_shape(cfg.policy)
    if stage in ORACLE:
        return _oracle_estimate(cfg, stage, task, shape)
    r, s = cfg.rollouts, cfg.search
    splits = {"seeds": list(r.splits), "mc": list(r.splits), "mc_fresh": ["val"], "search_pool": [s.split]}[stage]
    problems = [p for split in splits for p in task.problems(split)]
    if stage in ("mc", "mc_fresh"):  # one prompt per state s_0..s_{H-1} of each of n_seed seeds per problem
        prefixes = []
        for p in problems:
            prompt, steps = task.prompt(p.question), task.split_steps(p.solution)
            prefixes += [len(prompt) + sum(len(x) for x in steps[:h]) for h in range(max(1, len(steps)))]
        per, copies, new = int(r.n_seed), int(r.n_mc), int(r.max_new_tokens)
        rows, row_chars = per * (len(prefixes) + len(problems)), 0  # a row per state, and the terminal one
    else:
        prefixes = [len(task.prompt(p.question)) for p in problems]
        per, copies = 1, int(r.n_seed) if stage == "seeds" else max(s.budgets)
        new = int(r.max_new_tokens if stage == "seeds" else s.max_new_tokens)
        rows, row_chars = len(prefixes) * copies, new * shape.chars_per_token  # a row per response
    n_prompts = per * len(prefixes)
    b = DTYPE_BYTES[cfg.dtype]
    terms = {
        "base": BASE_MB * 2**20,
        "weights": 2 * shape.params * b,
        "batch": _batch_bytes(cfg, shape, n_prompts * copies, copies, new, max(prefixes, default=0)),
        # the prompts' text and token ids the sampler holds
        "prompts": per * sum(c + shape.id_bytes * c / shape.chars_per_token + STATE_BYTES for c in prefixes),
        "rows": rows * (ROW_BYTES[stage] + row_chars),
    }
    return Estimate(stage, sum(terms.values()) / 2**20, n_prompts * copies * new, n_prompts, copies, new,
                    {k: round(v / 2**20, 1) for k, v in terms.items()})


def _batch_bytes(cfg, shape: Shape, rows: int, copies: int, new: int, longest_chars: float) -> float:
    """One sampler batch of min(rollouts.batch_size, rows) rows: keys/values (the decoder keeps each
    prompt's once), float32 logits, probabilities and races; on an explicit CUDA device they live in GPU
    memory, which the budget does not cover."""
    if uses_cuda(str(cfg.device)):
        return 0
    batch = min(int(cfg.rollouts.batch_size), max(1, rows))
    kv_columns = batch * new + math.ceil(batch / max(1, copies)) * longest_chars / shape.chars_per_token
    return DTYPE_BYTES[cfg.dtype] * shape.layers * 2 * kv_columns * shape.kv_dim + 16 * batch * shape.vocab


def _beam_shape(search, budget: int) -> tuple[int, int]:
    """pavflow.search.beam: (beam width B, candidates per round B * M) at budget N."""
    width = max(1, budget // search.expansions)
    return width, width * (budget // width)


def _oracle_estimate(cfg, stage: str, task, shape: Shape) -> Estimate:
    """A job whose values come from an MC oracle (pavflow.oracle). Visited states are counted as if none
    repeated (the oracle's cache makes repeats free), every rollout at its cap."""
    s, b = cfg.search, DTYPE_BYTES[cfg.dtype]
    weights = 2 * shape.params * b  # one sampler's model and the decoder's fused copies
    if stage == "rl":  # a pav_mc arm: RL from rl.init, its prover's policy rolled out at every visited state
        rl = cfg.rl
        train = task.problems("train")
        prompts = [len(task.prompt(p.question)) for p in train] or [0]
        steps = [max(1, len(task.split_steps(p.solution))) for p in train] or [1]
        responses = rl.problems_per_update * rl.samples_per_problem
        per_call = math.ceil(responses * sum(steps) / len(steps))  # s_0..s_{H-1} of each response
        n, new = int(rl.mc_rollouts), int(rl.max_new_tokens)
        n_evals = 1 + rl.updates // rl.eval_every + (rl.updates % rl.eval_every != 0)  # update 0, every eval_every, the last
        evals = n_evals * min(rl.eval_problems, len(task.problems("test"))) * (1 + rl.eval_samples) * new
        states, other = rl.updates * per_call, rl.updates * responses * new + evals
        longest = max(prompts) + new * shape.chars_per_token  # a prompt and a response so far
        seq = max(prompts) / shape.chars_per_token + new
        micro = min(int(rl.micro_batch), responses)
        extra = {  # the trained policy, its reference, gradients and Adam's two moments; the prover's sampler
            "weights": weights + 4 * shape.params * b + weights,
            # one micro-batch's forward and backward: logits (float32, their log-softmax and gradient)
            # and the layers' activations
            "train": micro * seq * (12 * shape.vocab + 16 * b * shape.layers * shape.kv_dim)}
        job = f"rl pav_mc_{next(a.prover for a in rl_arms(cfg) if a.kind == 'pav_mc')}"
    else:
        problems = task.problems(s.split)
        problems = problems if s.oracle_problems == 0 else problems[:s.oracle_problems]
        prompts = [len(task.prompt(p.question)) for p in problems] or [0]
        Q, R, n, new = len(problems), int(s.max_steps), int(s.oracle_rollouts), int(s.max_new_tokens)
        if stage == "search_oracle":  # at every budget, the base policy's oracle alone (its last state)
            shapes = [_beam_shape(s, int(N)) for N in s.budgets]
            per_call = Q * max(c for _, c in shapes)
            states = sum(Q * R * c for _, c in shapes)
            other = sum(Q * R * c * int(s.max_step_tokens) for _, c in shapes)
            extra = {"weights": weights}
        else:  # search_beam_mc at k_budget: Q^pi from the base policy, V^mu at s_H and s_{H-1} from the prover's
            width, cands = _beam_shape(s, int(s.k_budget))
            own = any(p.policy != cfg.sweep.policy for p in provers(cfg)) and s.alpha != 0  # a second oracle
            per_call = Q * (cands + width)
            states = Q * R * (cands + (cands + width if own else width if s.alpha != 0 else 0))
            other = Q * R * cands * int(s.max_step_tokens)
            extra = {"weights": 2 * weights if own else weights}
        longest = max(prompts) + R * int(s.max_step_tokens) * shape.chars_per_token
        job = ""
    terms = {
        "base": BASE_MB * 2**20,
        **extra,
        "batch": _batch_bytes(cfg, shape, per_call * n, n, new, longest),
        # one oracle call's completions, held until they are graded and counted
        "completions": per_call * n * (new * (shape.id_bytes + shape.chars_per_token) + COMPLETION_BYTES),
        # the oracle's cache: every visited state's text and counts
        "cache": states * (longest + STATE_BYTES),
    }
    return Estimate(stage, sum(terms.values()) / 2**20, states * n * new + other, states, n, new,
                    {k: round(v / 2**20, 1) for k, v in terms.items()}, job=job, other_tokens=other)


# the keys each figure grows with: the one furthest above its default is named in a refusal
DRIVERS = {"mc": ["rollouts.n_mc", "rollouts.max_new_tokens", "rollouts.n_seed", "task.n_train", "task.n_val"],
           "mc_fresh": ["rollouts.n_mc", "rollouts.max_new_tokens", "rollouts.n_seed", "task.n_val"],
           "seeds": ["rollouts.n_seed", "rollouts.max_new_tokens", "task.n_train", "task.n_val"],
           "search_pool": ["search.budgets", "search.max_new_tokens", "task.n_test"],
           "search_oracle": ["search.oracle_rollouts", "search.max_new_tokens", "search.budgets", "search.max_steps",
                             "search.oracle_problems", "search.max_step_tokens"],
           "search_beam_mc": ["search.oracle_rollouts", "search.max_new_tokens", "search.k_budget", "search.max_steps",
                              "search.oracle_problems", "search.max_step_tokens"],
           "rl": ["rl.mc_rollouts", "rl.max_new_tokens", "rl.updates", "rl.problems_per_update",
                  "rl.samples_per_problem", "rl.eval_problems"],
           "batch": ["rollouts.batch_size", "rollouts.max_new_tokens"],
           "weights": ["policy.hidden_size", "policy.n_layers", "policy.intermediate_size", "dtype"]}


def check(cfg, experiment: str, overrides: list[str], conf_dir: Path, task=None) -> list[Estimate]:
    """Every sampling stage's estimate against budget.tokens and budget.mem_mb (default: the machine's
    available memory); raises ConfigError naming the key that drives the estimate over."""
    mem_budget = cfg.budget.mem_mb or available_mb()
    of = "budget.mem_mb" if cfg.budget.mem_mb else "the machine's available memory (budget.mem_mb=null)"
    if BASE_MB > mem_budget:
        raise ConfigError(f"config budget.mem_mb={cfg.budget.mem_mb}: {of}, {mem_budget:.0f} MB, is below what a "
                          f"stage process needs after its imports (~{BASE_MB} MB) "
                          f"[{value_source('budget.mem_mb', experiment, overrides, conf_dir)}]", key="budget.mem_mb")
    shape, out = policy_shape(cfg.policy), []
    for stage in stages(cfg):
        e = estimate(cfg, stage, task, shape)
        out.append(e)
        if e.tokens > cfg.budget.tokens:
            key = _driver(cfg, DRIVERS[stage])
            raise ConfigError(
                f"config {key}={_get(cfg, key)!r}: a {e.job or stage} job would generate ~{e.tokens:.3g} tokens "
                f"({e.describe()}; "
                f"~{e.tokens / TOKENS_PER_SECOND / 3600:.3g} h at {TOKENS_PER_SECOND} tokens/s), over "
                f"budget.tokens={cfg.budget.tokens}; lower {key}, or raise budget.tokens if you mean it "
                f"[{value_source(key, experiment, overrides, conf_dir)}]", key=key)
        if e.mem_mb > mem_budget:
            term = max((t for t in e.terms_mb if t != "base"), key=e.terms_mb.get)
            key = _driver(cfg, _term_drivers(stage, term))
            raise ConfigError(
                f"config {key}={_get(cfg, key)!r}: a {e.job or stage} job would need ~{e.mem_mb:.0f} MB "
                f"({', '.join(f'{t} {v:.0f}' for t, v in e.terms_mb.items())} MB), over {of}: {mem_budget:.0f} MB; "
                f"lower {key}, or set budget.mem_mb [{value_source(key, experiment, overrides, conf_dir)}]", key=key)
    return out


def _term_drivers(stage: str, term: str) -> list[str]:
    """The keys a memory term of `stage` grows with (the stage's own keys for its oracle's terms)."""
    if term == "batch" and stage in ORACLE:  # the oracle's rollouts run at search/rl max_new_tokens
        return ["rollouts.batch_size", "rl.max_new_tokens" if stage == "rl" else "search.max_new_tokens"]
    if term == "train":
        return ["rl.micro_batch", "rl.max_new_tokens"]
    return DRIVERS[term] if term in ("batch", "weights") else DRIVERS[stage]


def available_mb() -> float:
    import psutil  # a dependency of Snakemake's
    return psutil.virtual_memory().available / 2**20


def _get(cfg, key: str):
    from omegaconf import OmegaConf
    v = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(v) if OmegaConf.is_config(v) else v


def _driver(cfg, keys: list[str]) -> str:
    """The key furthest above its schema default (the first when none is above)."""
    from omegaconf import OmegaConf
    defaults = OmegaConf.structured(Config)

    def ratio(key):
        v, d = _get(cfg, key), _get(defaults, key)
        v, d = (max(v), max(d)) if isinstance(v, list) else (v, d)
        return v / d if isinstance(v, (int, float)) and isinstance(d, (int, float)) and d else 0.0
    return max(keys, key=ratio)


# -----------------------------------------------------------------------------
# the policy's shape, from the config or the pretrained model's metadata (never its weights)

def policy_shape(policy_cfg) -> Shape:
    if policy_cfg.kind == "tiny_llama":
        from pavflow.policy.model import SPECIAL
        V, h, L, I = len(SPECIAL) + len(set(policy_cfg.alphabet)), policy_cfg.hidden_size, policy_cfg.n_layers, \
            policy_cfg.intermediate_size
        return Shape(V * h + L * (4 * h * h + 3 * h * I + 2 * h) + h, L, h, V, 1.0, 8)
    from pavflow.policy.source import pretrained_source
    path, gguf = pretrained_source(policy_cfg)
    unknown = Shape(0, 0, 0, 0, 3.0, 36)  # a hub id not downloaded yet, or metadata it cannot read
    try:
        if gguf is not None:
            meta = gguf_metadata(Path(path) / gguf)
            arch = meta["general.architecture"]
            c = {"vocab_size": meta["tokenizer.ggml.tokens"], "hidden_size": meta[f"{arch}.embedding_length"],
                 "num_hidden_layers": meta[f"{arch}.block_count"],
                 "num_attention_heads": meta[f"{arch}.attention.head_count"],
                 "num_key_value_heads": meta.get(f"{arch}.attention.head_count_kv"),
                 "intermediate_size": meta[f"{arch}.feed_forward_length"], "tie_word_embeddings": True}
        elif (Path(path) / "config.json").is_file():
            c = json.loads((Path(path) / "config.json").read_text())
            c = c.get("text_config", c)
        else:
            return unknown
        V, h, L, I = c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
        heads = c["num_attention_heads"]
        kv = (c.get("num_key_value_heads") or heads) * c.get("head_dim", h // heads)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return unknown
    params = V * h * (1 if c.get("tie_word_embeddings", False) else 2) + L * (h * (h + 2 * kv) + h * h + 3 * h * I + 2 * h) + h
    return Shape(params, L, kv, V, 3.0, 36)


_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_metadata(path: Path) -> dict:
    """The GGUF header's keys: scalars and strings, and each array's length (gguf.GGUFReader parses
    every entry of the 49k-token vocabulary: ~15 s)."""
    out: dict = {}
    with open(path, "rb") as f:
        def read(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize(fmt)))[0]

        def string():
            return f.read(read("Q")).decode("utf-8", "replace")

        def value(t):
            if t == 8:
                return string()
            if t == 9:
                et, n = read("I"), read("Q")
                if et == 8:
                    for _ in range(n):
                        f.seek(read("Q"), 1)
                else:
                    f.seek(n * struct.calcsize(_GGUF_SCALARS[et]), 1)
                return n
            return read(_GGUF_SCALARS[t])
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        read("I"), read("Q")
        for _ in range(read("Q")):
            key = string()
            out[key] = value(read("I"))
    return out
