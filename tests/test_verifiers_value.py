import random

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, processors
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from conftest import ALPHABET
from pavflow.policy.model import char_tokenizer
from pavflow.train import TrainHooks
from pavflow.verifiers.fit import FitSettings
from pavflow.verifiers.metrics import brier
from pavflow.verifiers.value import (StateExample, ValueVerifier, encode_states, load_value_model,
                                     save_value_model, score_states, train_value,
                                     value_model_from_policy)



def nine_examples(n: int, seed: int) -> list[StateExample]:
    """Target of s_h (h >= 1) is 1 iff step h contains a '9'; s_0 has no target."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        steps = [f"{rng.randint(0, 99)}+{rng.randint(1, 9)}={rng.randint(0, 99)}\n"
                 for _ in range(rng.randint(1, 3))] + [f"A:{rng.randint(0, 99)}"]
        targets = [None] + [1.0 if "9" in a else 0.0 for a in steps]
        out.append(StateExample(f"Q:{rng.randint(0, 99)}+{rng.randint(1, 9)}\n", steps, targets))
    return out


# ---------------------------------------------------------------- encode_states

def test_encode_states_boundaries_char(tok):
    prompt, steps = "Q:1+2\n", ["1+2=3\n", "A:3"]
    ids, b = encode_states(tok, prompt, steps)
    assert ids == tok("Q:1+2\n1+2=3\nA:3").input_ids
    assert b == [5, 11, 14]
    nl = tok.convert_tokens_to_ids("\n")
    assert ids[b[0]] == nl and ids[b[1]] == nl  # prompt's last token, then end of step 1
    assert b[2] == len(ids) - 1
    # no steps: only s_0
    ids0, b0 = encode_states(tok, prompt, [])
    assert ids0 == ids[:6] and b0 == [5]


def test_encode_states_bos_tokenizer():
    """A tokenizer that prepends BOS (offsets (0, 0)) shifts every boundary by one."""
    base = char_tokenizer(ALPHABET)
    t = Tokenizer.from_str(base.backend_tokenizer.to_str())
    bos = base.bos_token_id
    t.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", bos_token="<bos>",
                                  eos_token="<eos>")
    ids, b = encode_states(tok, "Q:1+2\n", ["1+2=3\n", "A:3"])
    assert ids[0] == bos and len(ids) == 16
    assert b == [6, 12, 15]


def test_encode_states_boundary_inside_bpe_token():
    """'3\\nA' is one BPE token spanning the end of s_1: s_1's boundary is the token before it."""
    chars = sorted(set(ALPHABET))
    vocab = {c: i for i, c in enumerate(["<pad>"] + chars + ["3\n", "3\nA"])}
    t = Tokenizer(models.BPE(vocab, [("3", "\n"), ("3\n", "A")], unk_token="<pad>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>")
    ids, b = encode_states(tok, "Q:1+2\n", ["1+2=3\n", "A:3"])
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces == ["Q", ":", "1", "+", "2", "\n", "1", "+", "2", "=", "3\nA", ":", "3"]
    assert b == [5, 9, 12]  # s_1 ends inside "3\nA": last token ending before it is "="


# ---------------------------------------------------------------- model

def test_value_model_from_policy(policy_dir):
    m = value_model_from_policy(policy_dir, seed=0)
    assert type(m).__name__ == "LlamaForTokenClassification"
    assert m.config.num_labels == 1 and m.dropout.p == 0.0
    same = value_model_from_policy(policy_dir, seed=0)
    other = value_model_from_policy(policy_dir, seed=1)
    assert torch.equal(m.score.weight, same.score.weight)
    assert not torch.equal(m.score.weight, other.score.weight)
    # backbone comes from the policy
    p = AutoModelForCausalLM.from_pretrained(policy_dir)
    assert torch.equal(m.model.embed_tokens.weight, p.model.embed_tokens.weight)
    assert torch.equal(m.model.layers[0].mlp.up_proj.weight, p.model.layers[0].mlp.up_proj.weight)


def test_value_model_of_its_own_size(policy_dir, tok, tmp_path):
    from pavflow.verifiers.value import load_value_model, save_value_model, value_model_scratch
    m = value_model_scratch(policy_dir, seed=0, hidden_size=16, n_layers=2, n_heads=2, intermediate_size=24)
    assert m.config.hidden_size == 16 and m.config.num_hidden_layers == 2 and m.config.num_labels == 1
    assert m.config.vocab_size == AutoModelForCausalLM.from_pretrained(policy_dir).config.vocab_size
    again = value_model_scratch(policy_dir, seed=0, hidden_size=16, n_layers=2, n_heads=2, intermediate_size=24)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), again.parameters()))
    save_value_model(m, tok, tmp_path / "v")
    loaded, _ = load_value_model(tmp_path / "v")
    assert loaded.config.hidden_size == 16


def test_load_value_model_errors(policy_dir, tmp_path):
    with pytest.raises(ValueError, match=str(policy_dir)):
        load_value_model(policy_dir)  # a causal LM, not a value model
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_value_model(tmp_path / "nowhere")


# ---------------------------------------------------------------- training

def test_train_value_learns_and_logs(policy_dir, tok):
    examples = nine_examples(16, seed=0)
    model = value_model_from_policy(policy_dir, seed=0)
    prompts, steps = [e.prompt for e in examples], [e.steps for e in examples]
    y = np.array([t for e in examples for t in e.targets[1:]])
    before, _ = score_states(model, tok, prompts, steps)
    seen = []
    rows = train_value(model, tok, examples, FitSettings(steps=100, batch_size=8, lr=3e-3, seed=0, log_every=20),
                       TrainHooks(on_log=seen.append))
    assert seen == rows and [r["step"] for r in rows] == [20, 40, 60, 80, 100]
    assert all(a["tokens_seen"] < b["tokens_seen"] for a, b in zip(rows, rows[1:]))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    after, _ = score_states(model, tok, prompts, steps)
    pred_before = np.concatenate([v[1:] for v in before])
    pred_after = np.concatenate([v[1:] for v in after])
    chance = y.mean() * (1 - y.mean())  # Brier of the best constant predictor
    assert 0.1 < y.mean() < 0.9
    assert brier(pred_after, y) < 0.3 * chance
    assert brier(pred_after, y) < brier(pred_before, y)


def test_train_value_soft_targets_and_orm_only(policy_dir, tok):
    """Soft targets at one state only (ORM style): the head moves toward that value."""
    examples = [StateExample("Q:1+2\n", ["1+2=3\n", "A:3"], [None, None, 0.25]),
                StateExample("Q:4*2\n", ["4*2=8\n", "A:8"], [None, None, 0.25])]
    model = value_model_from_policy(policy_dir, seed=0)
    train_value(model, tok, examples, FitSettings(steps=40, batch_size=2, lr=1e-2, seed=0, log_every=40))
    v, _ = score_states(model, tok, [e.prompt for e in examples], [e.steps for e in examples])
    assert [x[-1] for x in v] == pytest.approx([0.25, 0.25], abs=0.05)


def test_train_value_same_seed_same_weights(policy_dir, tok):
    examples = nine_examples(6, seed=1)

    def run(seed):
        m = value_model_from_policy(policy_dir, seed=0)
        rows = train_value(m, tok, examples, FitSettings(steps=6, batch_size=4, lr=1e-3, seed=seed, weight_decay=0.1,
                                                         warmup=2, schedule="linear", log_every=3))
        return m.state_dict(), rows

    (a, ra), (b, rb), (c, _) = run(0), run(0), run(1)
    assert ra == rb
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the minibatch order depends on the seed


def test_train_value_validates(policy_dir, tok):
    m, one = value_model_from_policy(policy_dir, seed=0), FitSettings(steps=1, batch_size=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="example 0 has 1 steps but 1 targets"):
        train_value(m, tok, [StateExample("Q:1\n", ["A:1"], [1.0])], one)
    with pytest.raises(ValueError, match="outside"):
        train_value(m, tok, [StateExample("Q:1\n", ["A:1"], [None, 2.0])], one)
    with pytest.raises(ValueError, match="no example carries a target"):
        train_value(m, tok, [StateExample("Q:1\n", ["A:1"], [None, None])], one)


# ---------------------------------------------------------------- scoring

def test_score_states_order_batching_and_tokens(policy_dir, tok):
    model = value_model_from_policy(policy_dir, seed=3)
    examples = nine_examples(11, seed=2)
    prompts, steps = [e.prompt for e in examples], [e.steps for e in examples]
    one_by_one = [score_states(model, tok, [p], [a])[0][0] for p, a in zip(prompts, steps)]
    for bs in (1, 3, 256):
        values, tokens = score_states(model, tok, prompts, steps, batch_size=bs)
        assert [len(v) for v in values] == [len(a) + 1 for a in steps]
        assert tokens == [len(encode_states(tok, p, a)[0]) for p, a in zip(prompts, steps)]
        for v, w in zip(values, one_by_one):
            np.testing.assert_allclose(v, w, atol=1e-5)
    assert len(set(tokens)) > 3  # lengths differ, so sorting actually reorders
    # a permuted input gives the permuted output
    perm = list(reversed(range(len(prompts))))
    values_p, tokens_p = score_states(model, tok, [prompts[i] for i in perm], [steps[i] for i in perm],
                                      batch_size=4)
    for j, i in enumerate(perm):
        np.testing.assert_allclose(values_p[j], one_by_one[i], atol=1e-5)
        assert tokens_p[j] == tokens[i]
    # v(s_h) depends only on s_h: scoring the truncated response gives the same value at its end
    p, a = prompts[0], steps[0]
    for h in range(len(a) + 1):
        v_h = score_states(model, tok, [p], [a[:h]])[0][0]
        assert v_h[-1] == pytest.approx(one_by_one[0][h], abs=1e-5)
    assert ((values[0] > 0) & (values[0] < 1)).all()


def test_save_load_round_trip(policy_dir, tok, tmp_path):
    examples = nine_examples(8, seed=4)
    model = value_model_from_policy(policy_dir, seed=0)
    train_value(model, tok, examples, FitSettings(steps=5, batch_size=4, lr=1e-3, seed=0))
    prompts, steps = [e.prompt for e in examples], [e.steps for e in examples]
    ref, ref_tokens = score_states(model, tok, prompts, steps, batch_size=3)
    save_value_model(model, tok, tmp_path / "v")
    m2, tok2 = load_value_model(tmp_path / "v")
    assert type(m2).__name__ == "LlamaForTokenClassification"
    ver = ValueVerifier.load(tmp_path / "v", batch_size=3)
    values, tokens = ver.score(prompts, steps)
    assert tokens == ref_tokens
    for v, w in zip(values, ref):
        # same weights and buffers; only the memory alignment of the loaded tensors differs, which
        # can move CPU kernels by an ulp
        np.testing.assert_allclose(v, w, rtol=1e-6, atol=0)
