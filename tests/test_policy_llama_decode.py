"""Both decode paths in bf16 (what device=cuda dtype=bfloat16 runs), on the CPU: the fast path's logits
stay as close to the float32 model's as transformers' own bf16 forward, sampling gives valid rows, and
bf16 compute on float32 weights (policy.device.autocast, how SFT / RFT / RL train) decodes too. With
CUDA, the same on the GPU, including the cache compaction that only a non-CPU device takes."""
import copy

import pytest
import torch

from pavflow.policy import llama_decode
from pavflow.policy.device import autocast
from pavflow.policy.sampler import Sampler

PROMPTS = ["Q:72*5-3\n", "Q:1+2\n", "Q:12+3\n12+3=15\n", "Q:9\n", "Q:4*4*4+1\n"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gqa_llama(vocab):
    """A small random Llama with grouped-query attention and moderate weights (logits of a few units)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=96, max_position_embeddings=128,
                      tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    m = LlamaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15, generator=g)
    return m


def teacher_forced_logits(model, tok, fast: bool, tokens: list[int]):
    """Logits (prefill, then one step per token of `tokens`, the same tokens on every row) of the
    decode path, and of the model's own full forward over the same sequences, per position: (T, R, V)."""
    s = Sampler(model, tok)
    dev = s.device
    ids = [tok(p).input_ids for p in PROMPTS]
    L = max(map(len, ids))
    input_ids = torch.tensor([[0] * (L - len(i)) + i for i in ids], device=dev)
    mask = torch.tensor([[0] * (L - len(i)) + [1] * len(i) for i in ids], device=dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    fan = torch.arange(len(ids), device=dev).repeat_interleave(2)  # two rows per prompt: the shared prefix path
    eng = llama_decode.LlamaDecode(model, s.weights, len(tokens) + 1) if fast else \
        llama_decode.HFDecode(model, len(tokens) + 1)
    out = [eng.prefill(input_ids, mask, pos, fan)]
    for t in tokens:
        out.append(eng.step(torch.full((len(fan),), t, device=dev)))
    return torch.stack([o.float() for o in out])


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_fast_path_is_as_close_to_float32_as_transformers_bf16(tok, device):
    m32 = gqa_llama(len(tok)).to(device)
    m16 = copy.deepcopy(m32).to(torch.bfloat16)
    tokens = tok("1+2=3\n").input_ids
    want = teacher_forced_logits(m32, tok, True, tokens)
    assert torch.allclose(teacher_forced_logits(m32, tok, False, tokens), want, atol=1e-4)
    err_fast = (teacher_forced_logits(m16, tok, True, tokens) - want).abs().max().item()
    err_hf = (teacher_forced_logits(m16, tok, False, tokens) - want).abs().max().item()
    scale = want.abs().max().item()
    assert 0 < err_hf < 0.1 * scale
    assert err_fast <= 1.5 * err_hf, (err_fast, err_hf)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("compute", ["bf16 weights", "autocast"])
def test_bf16_sampling_gives_valid_rows(tok, device, fast, compute):
    model = gqa_llama(len(tok)).to(device)
    if compute == "bf16 weights":
        model = model.to(torch.bfloat16)
    s = Sampler(model, tok, batch_size=4)  # several batches, and rows dropped as they finish
    assert s.fast
    s.fast = fast
    with autocast(device, "bfloat16" if compute == "autocast" else "float32"):
        out = s.sample(PROMPTS, 6, seed=0, temperature=1.0, max_new_tokens=24)
        greedy = s.sample(PROMPTS, 1, seed=0, temperature=0, max_new_tokens=24, stop_at_step=True)
    rows = [c for cs in out.completions + greedy.completions for c in cs]
    assert len(rows) == 6 * len(PROMPTS) + len(PROMPTS)
    for c in rows:
        assert 1 <= len(c.tokens) <= 24 and 2 not in c.tokens[:-1]
        assert c.text == tok.decode(c.tokens[:-1] if c.finish == "eos" else c.tokens)
    assert len({tuple(c.tokens) for c in rows}) > len(PROMPTS)  # sampling varies


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_samples_equal_cpu_in_float32(tok):
    """The sampler's generator lives on the model's device: the same seed draws the same rows wherever
    the logits agree, and the compaction of finished rows off the CPU path keeps every row right."""
    m = gqa_llama(len(tok))
    kw = dict(seed=0, temperature=0, max_new_tokens=24)
    cpu = Sampler(m, tok, batch_size=4).sample(PROMPTS, 3, **kw)
    gpu = Sampler(copy.deepcopy(m).cuda(), tok, batch_size=4).sample(PROMPTS, 3, **kw)
    assert [[c.tokens for c in cs] for cs in gpu.completions] == [[c.tokens for c in cs] for cs in cpu.completions]
