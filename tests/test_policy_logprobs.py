import pytest
import torch

from pavflow.policy.logprobs import (pad_right, per_generation, sequence_logprobs, token_log_ratios,
                                     token_logprobs)
from pavflow.policy.model import tiny_llama

PROMPTS = ["Q:1+2\n", "Q:34*5-6\n", "Q:7\n"]
GENS = ["1+2=3\nA:3", "3", "7*2=14\n14-1"]


def models(tok):
    """(model, ref): two different tiny Llamas on the same vocabulary."""
    return (tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0), tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=1).eval())


def ids_of(tok):
    return [tok(p).input_ids for p in PROMPTS], [tok(g).input_ids for g in GENS]


def test_pad_right(tok):
    ids, mask = pad_right([[5, 6, 7], [8]], 0, "cpu")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == mask.dtype == torch.long


def test_sequence_logprobs_batched_equals_unbatched(tok):
    model = tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0)
    model.eval()
    prompts = [tok("Q:1+2\n").input_ids, tok("Q:34*5-6\n").input_ids, tok("Q:7\n").input_ids]
    gens = [tok("1+2=3\nA:3").input_ids, tok("3").input_ids, tok("7*2=14\n14-1").input_ids + [2]]
    batched = sequence_logprobs(model, prompts, gens, tok.pad_token_id)
    assert all(lp.requires_grad for lp in batched)
    for p, g, lp in zip(prompts, gens, batched):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + g])).logits[0]  # (L, V), no padding at all
        ref = logits.log_softmax(-1)[len(p) - 1:-1].gather(-1, torch.tensor(g)[:, None]).squeeze(-1)
        assert lp.shape == (len(g),)
        assert torch.allclose(lp.detach(), ref, atol=1e-5)


def test_token_logprobs_at_index_t_predict_token_t(tok):
    """Value t is log p(ids[t] | ids[<t]) of the unpadded sequence; 0 at t = 0; padding does not change
    the real positions."""
    model = tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0).eval()
    prompts, gens = ids_of(tok)
    seqs = [p + g for p, g in zip(prompts, gens)]
    ids, mask = pad_right(seqs, tok.pad_token_id, "cpu")
    with torch.no_grad():
        lp = token_logprobs(model, ids, mask)  # (B, L)
        for b, s in enumerate(seqs):
            alone = model(input_ids=torch.tensor([s])).logits[0].log_softmax(-1)  # (n, V)
            want = [alone[t - 1, s[t]].item() for t in range(1, len(s))]
            assert lp[b, 0] == 0.0
            assert lp[b, 1:len(s)].tolist() == pytest.approx(want, abs=1e-5)


def test_token_log_ratios_serve_padded_ids_and_generations_alike(tok):
    """The implicit PRM reads l_t on padded (B, L) ids, RL reads it per generated token: the same
    numbers, bitwise; and l = log π - log πref of sequence_logprobs, bitwise."""
    model, ref = models(tok)
    prompts, gens = ids_of(tok)
    with torch.no_grad():
        ids, mask = pad_right([p + g for p, g in zip(prompts, gens)], tok.pad_token_id, "cpu")
        padded = token_log_ratios(model, ref, ids, mask)  # (B, L)
        per_gen = per_generation(lambda i, m: token_log_ratios(model, ref, i, m), prompts, gens,
                                 tok.pad_token_id, "cpu")
        lp = sequence_logprobs(model, prompts, gens, tok.pad_token_id)
        lp_ref = sequence_logprobs(ref, prompts, gens, tok.pad_token_id)
    for b, (p, g) in enumerate(zip(prompts, gens)):
        assert torch.equal(per_gen[b], padded[b, len(p):len(p) + len(g)])
        assert torch.equal(per_gen[b], lp[b] - lp_ref[b])
        assert (padded[b, len(p) + len(g):] == 0).all() and padded[b, 0] == 0
    assert padded[mask.bool()].abs().max() > 1e-3  # different models: not vacuous


def test_token_log_ratios_gradient_flows_through_the_model_only(tok):
    model, ref = models(tok)
    ids, mask = pad_right([p + g for p, g in zip(*ids_of(tok))], tok.pad_token_id, "cpu")
    token_log_ratios(model, ref, ids, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.dim() >= 2)
    assert all(p.grad is None for p in ref.parameters())


def test_per_generation_validates(tok):
    model = tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0)
    with pytest.raises(ValueError, match="2 prompts but 1 generations"):
        sequence_logprobs(model, [[1], [2]], [[3]], 0)
    with pytest.raises(ValueError, match="empty prompt"):
        sequence_logprobs(model, [[]], [[3]], 0)
