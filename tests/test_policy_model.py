import re

import pytest
import torch

from pavflow.policy.model import (check_model_dir, load_policy, resolve_dtype,
                                  save_policy, tiny_llama)

ALPHABET = "0123456789+-*=\nQA:"
TEXT = "Q:12+3\n12+3=15\nA:15"


def test_char_tokenizer_round_trip_one_token_per_char(tok):
    ids = tok(TEXT).input_ids
    assert len(ids) == len(TEXT)  # one token per character, no BOS/EOS added
    assert tok.decode(ids) == TEXT
    assert tok.convert_ids_to_tokens(ids) == list(TEXT)
    # special tokens are dropped on request
    assert tok.decode([tok.bos_token_id] + ids + [tok.eos_token_id], skip_special_tokens=True) == TEXT


def test_char_tokenizer_special_ids_and_vocab(tok):
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<bos>", "<eos>")
    assert len(tok) == 3 + len(set(ALPHABET))
    assert tok.padding_side == "left"
    # distinct characters get distinct ids, none of them special
    ids = [tok(ch).input_ids for ch in sorted(set(ALPHABET))]
    assert all(len(i) == 1 for i in ids)
    flat = [i[0] for i in ids]
    assert len(set(flat)) == len(flat) and min(flat) >= 3


def test_char_tokenizer_left_pads_batches(tok):
    enc = tok(["Q:1\n", "Q:12+3\n"], padding=True)
    assert enc.input_ids[0][:3] == [0, 0, 0]
    assert enc.attention_mask[0] == [0, 0, 0, 1, 1, 1, 1]
    assert tok.decode(enc.input_ids[0], skip_special_tokens=True) == "Q:1\n"


def test_tiny_llama_seeded(tok):
    a = tiny_llama(len(tok), 32, 2, 2, 64, 64, seed=0)
    b = tiny_llama(len(tok), 32, 2, 2, 64, 64, seed=0)
    c = tiny_llama(len(tok), 32, 2, 2, 64, 64, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.config.vocab_size == len(tok)
    assert (a.config.pad_token_id, a.config.bos_token_id, a.config.eos_token_id) == (0, 1, 2)


def test_save_load_round_trip_identical_logits(tok, tmp_path):
    model = tiny_llama(len(tok), 32, 2, 2, 64, 64, seed=0).eval()
    path = tmp_path / "policy"
    save_policy(model, tok, path)
    loaded, tok2 = load_policy(path)
    assert not loaded.training
    assert tok2.padding_side == "left"
    assert tok2(TEXT).input_ids == tok(TEXT).input_ids
    assert (tok2.pad_token_id, tok2.bos_token_id, tok2.eos_token_id) == (0, 1, 2)

    enc = tok([TEXT, "Q:7*2\n", "Q:1-9+4\n1-9=92\n"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).logits
        got = loaded(**enc).logits
    assert torch.equal(want, got)


def test_load_policy_dtype(tok, tmp_path):
    save_policy(tiny_llama(len(tok), 32, 1, 2, 64, 64, seed=0), tok, tmp_path / "p")
    model, _ = load_policy(tmp_path / "p", dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_load_policy_missing_dir_names_path(tmp_path):
    path = tmp_path / "does_not_exist"
    with pytest.raises(FileNotFoundError) as e:
        load_policy(path)
    assert str(path) in str(e.value)


def test_load_policy_dir_without_config_names_path(tok, tmp_path):
    path = tmp_path / "only_tokenizer"
    tok.save_pretrained(path)
    with pytest.raises(FileNotFoundError) as e:
        load_policy(path)
    assert str(path) in str(e.value) and "config.json" in str(e.value)
    a_file = tmp_path / "a_file"
    a_file.write_text("{}")
    with pytest.raises(FileNotFoundError, match="a_file"):
        check_model_dir(a_file)


def test_load_policy_missing_weights_names_path(tok, tmp_path):
    path = tmp_path / "p"
    save_policy(tiny_llama(len(tok), 32, 1, 2, 64, 64, seed=0), tok, path)
    for f in path.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(RuntimeError) as e:
        load_policy(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("victim, garbage", [("model.safetensors", b"\x00" * 64),
                                              ("config.json", b'{"architectures": ['),
                                              ("tokenizer.json", b"not json")])
def test_load_policy_corrupt_file_names_path(tok, tmp_path, victim, garbage):
    """A truncated or overwritten file of a saved policy: an error naming the directory, not a crash
    deep in a stage."""
    path = tmp_path / "p"
    save_policy(tiny_llama(len(tok), 32, 1, 2, 64, 64, seed=0), tok, path)
    (path / victim).write_bytes(garbage)
    with pytest.raises(RuntimeError) as e:
        load_policy(path)
    assert str(path) in str(e.value)


def test_resolve_dtype():
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype("float16") is torch.float16
    for bad in ["fp32", "float64", "", "Float32"]:
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            resolve_dtype(bad)
