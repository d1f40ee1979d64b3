"""Policies are ordinary transformers causal LMs: built from a config (no download) or loaded from a
directory written by `save_pretrained`; tokenizers are saved beside them."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)

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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str) -> torch.dtype:
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"dtype: unknown {dtype!r}; expected float32, bfloat16 or float16") from None


def check_model_dir(path: str | os.PathLike) -> Path:
    """A directory written by `save_pretrained`: fail early, naming the path, if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} has no config.json: not a save_pretrained directory")
    return path


def load_policy(path: str | os.PathLike, device: str = "cpu", dtype: str = "float32"):
    """(model, tokenizer) from a save_pretrained directory, in eval mode on `device`."""
    path = check_model_dir(path)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    except Exception as e:
        raise RuntimeError(f"{path}: could not load the model ({type(e).__name__}: {e})") from e
    return model.to(resolve_device(device)).eval(), tok


def save_policy(model, tok, path: str | os.PathLike) -> None:
    model.save_pretrained(path)
    tok.save_pretrained(path)
