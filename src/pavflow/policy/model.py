"""Policies are ordinary transformers causal LMs: built from a config (no download), loaded from a
directory written by `save_pretrained` (tokenizers are saved beside them) or from a GGUF file, which
transformers dequantises to a plain torch model and tokenizer."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)

from pavflow.policy.device import resolve_device, resolve_dtype
from pavflow.policy.source import pretrained_source

SPECIAL = ["<pad>", "<bos>", "<eos>"]


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """One token per character of `alphabet` (plus pad/bos/eos); decodes without spaces."""
    chars = sorted(set(alphabet))
    vocab = {t: i for i, t in enumerate(SPECIAL + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", padding_side="left")


def tiny_llama(vocab_size: int, hidden_size: int, n_layers: int, n_heads: int,
               intermediate_size: int, max_positions: int, seed: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=n_layers,
                      num_attention_heads=n_heads, num_key_value_heads=n_heads,
                      intermediate_size=intermediate_size, max_position_embeddings=max_positions,
                      tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def check_model_dir(path: str | os.PathLike) -> Path:
    """A directory written by `save_pretrained`: fail early, naming the path, if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} has no config.json: not a save_pretrained directory")
    return path


def check_gguf(path: str | os.PathLike, gguf_file: str) -> Path:
    path = Path(path)
    if not (path / gguf_file).is_file():
        raise FileNotFoundError(f"GGUF file {path / gguf_file} does not exist")
    return path


def load_policy(path: str | os.PathLike, device: str = "cpu", dtype: str = "float32",
                gguf_file: str | None = None):
    """(model, tokenizer) from a save_pretrained directory, or from `path / gguf_file` (GGUF, read by
    transformers; needs the `gguf` package), in eval mode on `device`. The tokenizer pads on the left
    and always has a pad token (EOS if it defines none)."""
    tok = load_tokenizer(path, gguf_file)
    path = check_model_dir(path) if gguf_file is None else check_gguf(path, gguf_file)
    where = path if gguf_file is None else path / gguf_file
    kw = {} if gguf_file is None else {"gguf_file": gguf_file}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype), **kw)
    except Exception as e:
        raise RuntimeError(f"{where}: could not load the model ({type(e).__name__}: {e})") from e
    if gguf_file is not None:
        _forget_gguf(model)
    return model.to(resolve_device(device)).eval(), tok


def load_tokenizer(path: str | os.PathLike, gguf_file: str | None = None):
    """The tokenizer of a policy directory (or GGUF file), padding on the left, with a pad token (EOS
    if it defines none)."""
    path = check_model_dir(path) if gguf_file is None else check_gguf(path, gguf_file)
    kw = {} if gguf_file is None else {"gguf_file": gguf_file}
    try:
        tok = AutoTokenizer.from_pretrained(path, **kw)
    except Exception as e:
        where = path if gguf_file is None else path / gguf_file
        raise RuntimeError(f"{where}: could not load the tokenizer ({type(e).__name__}: {e})") from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def policy_eos_ids(path: str | os.PathLike) -> list[int]:
    """The EOS ids a saved policy's generation stops on (generation_config.json, else config.json),
    without loading its weights: what Sampler reads from model.generation_config."""
    path = check_model_dir(path)
    for name in ("generation_config.json", "config.json"):
        f = path / name
        eos = json.loads(f.read_text()).get("eos_token_id") if f.is_file() else None
        if eos is not None:
            return sorted(set(eos) if isinstance(eos, list) else {eos})
    return []


def _forget_gguf(model) -> None:
    """transformers marks a GGUF-loaded model as quantized (so not trainable nor savable), although its
    weights are already dequantised to ordinary float tensors. Drop the marks: it is a plain model,
    fine-tuned and saved with save_pretrained like any other (its logits do not change)."""
    model.hf_quantizer = None
    model.is_quantized = False
    for attr in ("quantization_method",):
        if hasattr(model, attr):
            delattr(model, attr)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_policy(model, tok, path: str | os.PathLike) -> None:
    model.save_pretrained(path)
    tok.save_pretrained(path)


# -----------------------------------------------------------------------------
# pretrained policies (policy.kind=hf)

def load_pretrained(policy_cfg, device: str = "cpu", dtype: str = "float32"):
    """(model, tokenizer) of a `kind: hf` policy: a local save_pretrained directory, a GGUF file
    (dequantised to `dtype`), or a hub id (downloaded by transformers; needs a network)."""
    path, gguf = pretrained_source(policy_cfg)
    if gguf is not None or Path(path).is_dir():
        return load_policy(path, device, dtype, gguf_file=gguf)
    try:  # a hub id
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    except Exception as e:
        raise RuntimeError(f"policy.path={path!r}: not a local directory, and loading it as a hub id "
                           f"failed ({type(e).__name__}: {e})") from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.to(resolve_device(device)).eval(), tok
