import copy

import pytest
import torch

from pavflow.policy import llama_decode
from pavflow.policy.sampler import Sampler, sample_categorical

# deliberately not sorted by length: the sampler sorts internally and must restore the order
PROMPTS = ["Q:72*5-3\n", "Q:1+2\n", "Q:12+3\n12+3=15\n", "Q:9\n", "Q:4*4*4+1\n"]
EOS = 2


@pytest.fixture(scope="module")
def model(random_model):
    return random_model


@pytest.fixture(scope="module", params=["fast", "generic"])
def sampler(model, tok, request):
    """Every test taking this fixture runs on both decode paths: the hand-written Llama decode and the
    model's own forward (what any non-Llama model uses)."""
    s = Sampler(model, tok, batch_size=256)
    assert s.fast  # the tiny Llama qualifies for the fast path
    s.fast = request.param == "fast"
    return s


def strip_after_eos(row: list[int]) -> list[int]:
    return row[:row.index(EOS) + 1] if EOS in row else row


def check_completion(tok, c, max_new_tokens, stop_at_step):
    """Invariants every completion must satisfy."""
    assert 1 <= len(c.tokens) <= max_new_tokens
    assert c.gen_tokens == len(c.tokens)
    assert EOS not in c.tokens[:-1]  # stops at the first EOS
    body = c.tokens[:-1] if c.tokens[-1] == EOS else c.tokens
    assert c.text == tok.decode(body)
    if c.tokens[-1] == EOS:
        assert c.finish == "eos"
    elif stop_at_step and c.text.endswith("\n"):
        assert c.finish == "step"
    else:
        assert c.finish == "length" and len(c.tokens) == max_new_tokens
    if stop_at_step:
        assert "\n" not in c.text[:-1]  # ends at the first step separator


# --- greedy decoding against transformers' generate ----------------------------------------------

def test_greedy_matches_generate(model, tok, sampler):
    max_new = 30
    out = sampler.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=max_new)
    got = [cs[0].tokens for cs in out.completions]
    assert len(got) == len(PROMPTS)
    # batched, left-padded generate
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    assert len(set(enc.attention_mask.sum(-1).tolist())) > 1  # prompts really have different lengths
    with torch.no_grad():
        gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new, pad_token_id=0,
                             eos_token_id=EOS)
    batched = [strip_after_eos(r) for r in gen[:, enc.input_ids.shape[1]:].tolist()]
    assert got == batched
    # and each prompt alone (no padding at all)
    for p, toks in zip(PROMPTS, got):
        e = tok(p, return_tensors="pt")
        with torch.no_grad():
            g = model.generate(**e, do_sample=False, max_new_tokens=max_new, pad_token_id=0,
                               eos_token_id=EOS)
        assert strip_after_eos(g[0, e.input_ids.shape[1]:].tolist()) == toks, p
    # the test exercises both stopping on EOS and running to the budget
    finishes = {cs[0].finish for cs in out.completions}
    assert finishes == {"eos", "length"}
    for cs in out.completions:
        check_completion(tok, cs[0], max_new, stop_at_step=False)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_greedy_independent_of_batching(model, tok, sampler, batch_size):
    want = sampler.sample(PROMPTS, 2, seed=0, temperature=0, max_new_tokens=20)
    got = Sampler(model, tok, batch_size=batch_size).sample(PROMPTS, 2, seed=5, temperature=0,
                                                            max_new_tokens=20)
    assert [[c.tokens for c in cs] for cs in got.completions] == \
           [[c.tokens for c in cs] for cs in want.completions]


def test_greedy_stop_at_step_is_prefix_of_full_greedy(tok, sampler):
    full = sampler.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=30)
    step = sampler.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=30, stop_at_step=True)
    nl = tok("\n").input_ids[0]
    n_step = 0
    for f, s in zip(full.completions, step.completions):
        check_completion(tok, s[0], 30, stop_at_step=True)
        f, s = f[0].tokens, s[0].tokens
        cut = next((i + 1 for i, t in enumerate(f) if t in (nl, EOS)), len(f))
        assert s == f[:cut]
        n_step += s[-1] == nl
    assert n_step >= 2  # several rows really stopped on the separator


def test_tiny_top_p_is_greedy(sampler):
    greedy = sampler.sample(PROMPTS, 2, seed=0, temperature=0, max_new_tokens=15)
    nucleus = sampler.sample(PROMPTS, 2, seed=1, temperature=1.0, top_p=1e-6, max_new_tokens=15)
    assert [[c.tokens for c in cs] for cs in nucleus.completions] == \
           [[c.tokens for c in cs] for cs in greedy.completions]


# --- sampling ------------------------------------------------------------------------------------

def tokens_of(samples):
    return [[c.tokens for c in cs] for cs in samples.completions]


def test_same_seed_same_samples_different_seed_different(sampler):
    kw = dict(n=4, temperature=1.0, max_new_tokens=20)
    a = sampler.sample(PROMPTS, seed=11, **kw)
    b = sampler.sample(PROMPTS, seed=11, **kw)
    c = sampler.sample(PROMPTS, seed=12, **kw)
    assert tokens_of(a) == tokens_of(b)
    assert [[x.finish for x in cs] for cs in a.completions] == [[x.finish for x in cs] for cs in b.completions]
    assert tokens_of(a) != tokens_of(c)
    # most individual completions differ, not just one
    diff = sum(x != y for ra, rc in zip(tokens_of(a), tokens_of(c)) for x, y in zip(ra, rc))
    assert diff >= len(PROMPTS) * 4 // 2


def test_fan_out_returns_n_completions_per_prompt(tok, sampler):
    n = 6
    out = sampler.sample(PROMPTS, n, seed=0, temperature=1.0, max_new_tokens=12)
    assert len(out.completions) == len(PROMPTS)
    for cs in out.completions:
        assert len(cs) == n
        assert len({tuple(c.tokens) for c in cs}) > 1  # copies are independent draws
        for c in cs:
            check_completion(tok, c, 12, stop_at_step=False)
    assert out.gen_tokens == sum(len(c.tokens) for cs in out.completions for c in cs)
    assert out.prompt_tokens == [len(tok(p).input_ids) for p in PROMPTS]  # each prompt encoded once


def test_fan_out_greedy_copies_identical(sampler):
    one = sampler.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=15)
    many = sampler.sample(PROMPTS, 3, seed=0, temperature=0, max_new_tokens=15)
    for c1, cs in zip(one.completions, many.completions):
        assert all(c.tokens == c1[0].tokens for c in cs)


def test_prompt_tokens_count_every_batch(model, tok):
    # n = 5 copies in batches of 2 rows: each prompt is encoded in 3 batches
    out = Sampler(model, tok, batch_size=2).sample(PROMPTS, 5, seed=0, temperature=1.0, max_new_tokens=4)
    assert out.prompt_tokens == [3 * len(tok(p).input_ids) for p in PROMPTS]
    assert all(len(cs) == 5 for cs in out.completions)


def test_progress_bar_counts_continuations_and_changes_nothing(model, tok, capsys):
    s = Sampler(model, tok, batch_size=2)
    quiet = s.sample(PROMPTS, 5, seed=0, temperature=1.0, max_new_tokens=4)
    shown = s.sample(PROMPTS, 5, seed=0, temperature=1.0, max_new_tokens=4, desc="test rollouts")
    assert tokens_of(shown) == tokens_of(quiet)
    err = capsys.readouterr().err
    assert "test rollouts: 100%" in err and f"{5 * len(PROMPTS)}/{5 * len(PROMPTS)}" in err


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_stop_at_step(tok, sampler, temperature):
    out = sampler.sample(PROMPTS, 4, seed=3, temperature=temperature, max_new_tokens=25,
                         stop_at_step=True)
    finishes = []
    for cs in out.completions:
        for c in cs:
            check_completion(tok, c, 25, stop_at_step=True)
            finishes.append(c.finish)
    assert "step" in finishes


@pytest.mark.parametrize("max_new_tokens", [1, 3, 8])
def test_max_new_tokens_respected(tok, sampler, max_new_tokens):
    out = sampler.sample(PROMPTS, 3, seed=0, temperature=1.0, max_new_tokens=max_new_tokens)
    lengths = []
    for cs in out.completions:
        for c in cs:
            check_completion(tok, c, max_new_tokens, stop_at_step=False)
            lengths.append(len(c.tokens))
    assert max(lengths) == max_new_tokens
    assert out.gen_tokens == sum(lengths)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_first_token_distribution_matches_softmax(model, tok, sampler, temperature):
    n = 3000
    prompt = PROMPTS[0]
    out = sampler.sample([prompt], n, seed=0, temperature=temperature, max_new_tokens=1)
    first = torch.tensor([c.tokens[0] for c in out.completions[0]])
    counts = torch.bincount(first, minlength=len(tok)).double()
    with torch.no_grad():
        logits = model(**tok(prompt, return_tensors="pt")).logits[0, -1].double()
    p = torch.softmax(logits / temperature, -1)
    sd = (n * p * (1 - p)).sqrt()
    assert ((counts - n * p).abs() <= 5 * sd + 1).all(), (counts, n * p)


@pytest.mark.parametrize("V", [5, 50, 1000])
def test_sample_categorical_follows_the_distribution(V):
    """Frequencies match the probabilities within 5 sd for vocabularies with and without a partial last
    block (5 = 3 + 2, 1000 = 32 * 31 + 8, 50 = 8 * 6 + 2); zero-probability entries are never drawn."""
    n = 40000
    logits = torch.randn(V, generator=torch.Generator().manual_seed(V)) * 2
    logits[::3] = float("-inf")
    probs = torch.softmax(logits, -1).expand(n, V).contiguous()
    counts = torch.bincount(sample_categorical(probs, torch.Generator().manual_seed(0)), minlength=V).double()
    p = probs[0].double()
    assert counts[::3].sum() == 0
    assert ((counts - n * p).abs() <= 5 * (n * p * (1 - p)).sqrt() + 1).all(), (counts, n * p)


def test_pick_applies_temperature_nucleus_and_greedy():
    logits = torch.tensor([0.0, 1.0, float("-inf"), 2.0, -1.0]).expand(5000, 5).contiguous()
    gen = torch.Generator().manual_seed(0)
    nucleus = torch.bincount(Sampler._pick(logits, gen, 1.0, 0.7), minlength=5)
    assert set(torch.nonzero(nucleus).flatten().tolist()) == {1, 3}  # p = 0.644, 0.237, ...: two reach 0.7
    cold = torch.bincount(Sampler._pick(logits, gen, 0.25, 1.0), minlength=5)
    assert cold[3] / 5000 > 0.97  # T = 0.25: p(3) = 1 / (1 + e^-4 + ...) = 0.98
    assert (Sampler._pick(logits[:3], gen, 0.0, 1.0) == 3).all()


def test_sampled_tokens_lie_in_nucleus_of_teacher_forced_model(model, tok, sampler):
    """Checks the KV cache under fan-out and row compaction: every sampled token must be in the top-p
    nucleus of the model's distribution given its own prefix, recomputed without any cache."""
    top_p, max_new = 0.5, 20
    out = sampler.sample(PROMPTS, 4, seed=7, temperature=1.0, top_p=top_p, max_new_tokens=max_new)
    finishes = [c.finish for cs in out.completions for c in cs]
    assert "eos" in finishes and "length" in finishes  # rows finished at different times
    for prompt, cs in zip(PROMPTS, out.completions):
        p_ids = tok(prompt).input_ids
        for c in cs:
            seq = torch.tensor([p_ids + c.tokens])
            with torch.no_grad():
                logits = model(input_ids=seq).logits[0, len(p_ids) - 1:-1].float()
            probs = torch.softmax(logits, -1)
            for t, tok_id in enumerate(c.tokens):
                mass_above = probs[t][probs[t] > probs[t, tok_id]].sum().item()
                assert mass_above <= top_p + 1e-4, (prompt, t)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_are_the_models_own_at_temperature_1_and_change_no_sample(model, tok, sampler, temperature):
    """logprobs=True: each token's log pi under the model (temperature 1, whatever the sampling
    temperature), equal to a teacher-forced forward pass over the sample up to float rounding, through
    fan-out, compaction and both decode paths; the samples themselves are the same as without it."""
    kw = dict(seed=3, temperature=temperature, max_new_tokens=16)
    plain = sampler.sample(PROMPTS, 3, **kw)
    out = sampler.sample(PROMPTS, 3, logprobs=True, **kw)
    assert tokens_of(out) == tokens_of(plain) and all(c.logprobs is None for cs in plain.completions for c in cs)
    for prompt, cs in zip(PROMPTS, out.completions):
        p_ids = tok(prompt).input_ids
        for c in cs:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([p_ids + c.tokens])).logits[0, len(p_ids) - 1:-1].float()
            want = logits.log_softmax(-1).gather(1, torch.tensor(c.tokens)[:, None])[:, 0]
            assert len(c.logprobs) == len(c.tokens)
            assert torch.allclose(torch.tensor(c.logprobs), want, atol=1e-5), prompt


# --- fan-out, exact stops, accounting ------------------------------------------------------------

def test_fan_out_equals_repeated_prompts(sampler):
    """n copies share one encoded prompt and a fanned-out cache; repeating the prompt n times with n=1
    encodes each copy separately (no fan-out). Greedy, both paths must give the same tokens."""
    n, max_new = 3, 20
    fan = sampler.sample(PROMPTS, n, seed=0, temperature=0, max_new_tokens=max_new)
    rep = sampler.sample([p for p in PROMPTS for _ in range(n)], 1, seed=0, temperature=0,
                         max_new_tokens=max_new)
    assert [c.tokens for cs in fan.completions for c in cs] == [cs[0].tokens for cs in rep.completions]
    assert [c.finish for cs in fan.completions for c in cs] == [cs[0].finish for cs in rep.completions]
    assert [c.text for cs in fan.completions for c in cs] == [cs[0].text for cs in rep.completions]
    # the repeated path really encoded every copy, the fan-out path each prompt once
    assert rep.prompt_tokens == [len(tok_ids) for tok_ids in sampler.encode(PROMPTS) for _ in range(n)]
    assert fan.prompt_tokens == [len(tok_ids) for tok_ids in sampler.encode(PROMPTS)]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_step_stops_land_exactly_on_separators(tok, sampler, temperature):
    nl = tok("\n").input_ids[0]
    sep_ids = set(torch.nonzero(sampler.step_mask).flatten().tolist())
    assert sep_ids == {nl}  # the character tokenizer has exactly one separator token
    out = sampler.sample(PROMPTS, 4, seed=21, temperature=temperature, max_new_tokens=25,
                         stop_at_step=True)
    n_step = 0
    for cs in out.completions:
        for c in cs:
            assert not sep_ids & set(c.tokens[:-1])  # no separator before the last token
            assert (c.finish == "step") == (c.tokens[-1] in sep_ids)
            if c.finish == "step":
                assert c.text.endswith("\n") and c.text.count("\n") == 1
                n_step += 1
    assert n_step >= 4


@pytest.mark.parametrize("stop_at_step", [False, True])
def test_gen_tokens_equal_decoded_lengths(sampler, stop_at_step):
    """Char tokenizer: every token decodes to one character, except EOS (cut from the text) and the
    other special tokens, which the random model does sample and which stay in the text as "<pad>" and
    "<bos>" (the alphabet has no "<", so counting each as one character is unambiguous)."""
    out = sampler.sample(PROMPTS, 4, seed=8, temperature=1.0, max_new_tokens=25, stop_at_step=stop_at_step)

    def chars(text):
        return len(text.replace("<pad>", "_").replace("<bos>", "_"))
    finishes = set()
    for cs in out.completions:
        for c in cs:
            assert chars(c.text) + (1 if c.finish == "eos" else 0) == c.gen_tokens == len(c.tokens)
            finishes.add(c.finish)
    assert "eos" in finishes and "length" in finishes
    assert out.gen_tokens == sum(chars(c.text) + (c.finish == "eos") for cs in out.completions for c in cs)
    # and where no pad/bos was sampled, the plain identity len(text) + eos == gen_tokens
    plain = [c for cs in out.completions for c in cs if "<" not in c.text]
    assert len(plain) >= 4
    assert all(len(c.text) + (c.finish == "eos") == c.gen_tokens for c in plain)


@pytest.mark.parametrize("batch_size", [2, 5])
def test_copies_split_over_batches(model, tok, batch_size):
    """batch_size < n: each prompt's copies are spread over several batches; still n completions per
    prompt, deterministic given the seed, and greedy copies all equal the single greedy completion."""
    n = 7
    small = Sampler(model, tok, batch_size=batch_size)
    a = small.sample(PROMPTS, n, seed=4, temperature=1.0, max_new_tokens=10)
    b = small.sample(PROMPTS, n, seed=4, temperature=1.0, max_new_tokens=10)
    assert [len(cs) for cs in a.completions] == [n] * len(PROMPTS)
    assert tokens_of(a) == tokens_of(b)
    assert all(len({tuple(t) for t in ts}) > 1 for ts in tokens_of(a))  # copies are independent draws
    for cs in a.completions:
        for c in cs:
            check_completion(tok, c, 10, stop_at_step=False)
    one = small.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=10)
    many = small.sample(PROMPTS, n, seed=0, temperature=0, max_new_tokens=10)
    for c1, cs in zip(one.completions, many.completions):
        assert len(cs) == n and all(c.tokens == c1[0].tokens for c in cs)


# --- the fast Llama decode path against the generic path and transformers ------------------------

def generic(sampler):
    s = copy.copy(sampler)
    s.fast = False
    return s


def gqa_llama(vocab):
    """A tiny random Llama with grouped-query attention (4 query heads share 2 key/value heads), rope
    theta and eps unlike the defaults, and biases on the attention projections."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=48, max_position_embeddings=128,
                      rope_theta=500.0, rms_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
                      pad_token_id=0, bos_token_id=1, eos_token_id=EOS)
    torch.manual_seed(1)
    m = LlamaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5 if p.dim() == 2 else 0.1, generator=g)
    return m


@pytest.fixture(scope="module")
def fast(model, tok):
    return Sampler(model, tok, batch_size=256)


def test_fast_path_chosen_only_for_plain_llama(model, tok):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    assert Sampler(model, tok).fast
    assert Sampler(gqa_llama(len(tok)), tok).fast
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=64))
    assert not llama_decode.supports(gpt2)
    dyn = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32,
                                       rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                                        "rope_theta": 10000.0}))
    assert not llama_decode.supports(dyn)  # cos/sin would depend on the sequence length


def test_fast_path_really_runs(tok, fast, monkeypatch):
    calls = {"fast": 0, "generic": 0}
    for cls, name in [(llama_decode.LlamaDecode, "fast"), (llama_decode.HFDecode, "generic")]:
        step = cls.step
        monkeypatch.setattr(cls, "step", lambda self, nxt, step=step, name=name: (
            calls.__setitem__(name, calls[name] + 1), step(self, nxt))[1])
    fast.sample(PROMPTS, 2, seed=0, max_new_tokens=5)
    assert calls["fast"] > 0 and calls["generic"] == 0
    generic(fast).sample(PROMPTS, 2, seed=0, max_new_tokens=5)
    assert calls["generic"] > 0


@pytest.mark.parametrize("n,batch_size,stop_at_step", [(1, 256, False), (1, 256, True), (4, 256, False),
                                                       (4, 256, True), (7, 5, False), (3, 2, True)])
def test_fast_greedy_equals_generic(model, tok, n, batch_size, stop_at_step):
    """Greedy: token for token the same completions, with and without fan-out, copies split over
    batches (batch_size < n) and rows finishing (and being dropped) at different steps."""
    s = Sampler(model, tok, batch_size=batch_size)
    kw = dict(seed=0, temperature=0, max_new_tokens=30, stop_at_step=stop_at_step)
    a, b = s.sample(PROMPTS, n, **kw), generic(s).sample(PROMPTS, n, **kw)
    assert [[(c.tokens, c.text, c.finish) for c in cs] for cs in a.completions] == \
           [[(c.tokens, c.text, c.finish) for c in cs] for cs in b.completions]
    assert a.prompt_tokens == b.prompt_tokens
    assert len({len(c.tokens) for cs in a.completions for c in cs}) >= 2  # rows stop at different steps


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_fast_samples_equal_generic(tok, fast, top_p):
    """Temperature 1: the fast path's logits differ from the model's forward only by float rounding
    (~1e-6, checked below), so on CPU in fp32 the same seed draws the same tokens. Exact equality is
    observed, not guaranteed: a draw within rounding distance of a probability boundary could flip."""
    kw = dict(seed=13, temperature=1.0, top_p=top_p, max_new_tokens=25)
    a, b = fast.sample(PROMPTS, 40, **kw), generic(fast).sample(PROMPTS, 40, **kw)
    assert tokens_of(a) == tokens_of(b)
    assert [[c.finish for c in cs] for cs in a.completions] == [[c.finish for c in cs] for cs in b.completions]
    assert a.gen_tokens == b.gen_tokens == sum(len(c.tokens) for cs in a.completions for c in cs)


def decode_logits(eng, model, tok, prompts, fan, steps):
    """Prefill prompts (left padded) fanned out to rows fan, then feed each row's greedy token `steps`
    times; the logits (rows, V) after every step."""
    ids = [tok(p).input_ids for p in prompts]
    L = max(map(len, ids))
    inp = torch.tensor([[0] * (L - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (L - len(i)) + [1] * len(i) for i in ids])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = eng.prefill(inp, mask, pos, torch.tensor(fan))
    out, fed = [], []
    for t in range(steps):
        nxt = logits.argmax(-1)
        fed.append(nxt)
        if t == 3:  # drop two rows midway, as the sampler does with finished rows
            keep = torch.tensor([0, 2, 3, 5])
            eng.keep(keep)
            fed, out = [f[keep] for f in fed], [o[keep] for o in out]
            nxt = nxt[keep]
            fan = [fan[i] for i in keep.tolist()]
        logits = eng.step(nxt)
        out.append(logits)
    return out, torch.stack(fed, 1), fan


@pytest.mark.parametrize("gqa", [False, True])
def test_fast_logits_match_uncached_forward(model, tok, gqa):
    """Every decode step's logits, under fan-out, left padding and row dropping, equal (to float
    rounding) the logits of the model's plain forward on the row's whole unpadded sequence."""
    m = gqa_llama(len(tok)) if gqa else model
    eng = llama_decode.LlamaDecode(m, llama_decode.LlamaWeights(m), 12)
    out, fed, fan = decode_logits(eng, m, tok, PROMPTS[:3], [0, 0, 1, 2, 2, 2], 10)
    for r, u in enumerate(fan):
        seq = tok(PROMPTS[u]).input_ids + fed[r].tolist()
        with torch.no_grad():
            want = m(input_ids=torch.tensor([seq])).logits[0, -10:]
        got = torch.stack([o[r] for o in out])
        assert (got - want).abs().max() < 1e-4 * want.abs().max(), (r, (got - want).abs().max())


def test_gqa_greedy_matches_generate(tok):
    m = gqa_llama(len(tok))
    s = Sampler(m, tok)
    assert s.fast
    out = s.sample(PROMPTS, 2, seed=0, temperature=0, max_new_tokens=20)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        gen = m.generate(**enc, do_sample=False, max_new_tokens=20, pad_token_id=0, eos_token_id=EOS)
    want = [strip_after_eos(r) for r in gen[:, enc.input_ids.shape[1]:].tolist()]
    assert [[c.tokens for c in cs] for cs in out.completions] == [[w, w] for w in want]
    kw = dict(seed=2, temperature=1.0, max_new_tokens=20, stop_at_step=True)
    assert tokens_of(s.sample(PROMPTS, 6, **kw)) == tokens_of(generic(s).sample(PROMPTS, 6, **kw))


def test_fast_path_follows_weight_updates(model, tok):
    """The fused weights are rebuilt when the model changes in place (an optimizer step between two
    sampling calls, as RL does)."""
    m = copy.deepcopy(model)
    s = Sampler(m, tok)
    before = s.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=20)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    loss = m(**tok(PROMPTS[0], return_tensors="pt")).logits.pow(2).mean()
    loss.backward()
    opt.step()
    after = s.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=20)
    assert tokens_of(after) != tokens_of(before)
    assert tokens_of(after) == tokens_of(generic(s).sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=20))
