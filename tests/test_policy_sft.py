import random

import pytest
import torch
import torch.nn.functional as F

from pavflow.policy.model import tiny_llama
from pavflow.policy.sft import lm_loss, sft_batch, train_sft
from pavflow.tasks import Arith, ArithSpec

TASK = Arith(ArithSpec(), {}, seed=0)
PAIRS = [("Q:72*5-3\n", "72*5=60\n60-3=57\nA:57"), ("Q:1+2\n", "1+2=3\nA:3"),
         ("Q:9*2*2-1+4\n", "9*2=18\n18*2=36\n36-1=35\n35+4=39\nA:39")]


def new_model(tok, seed=0):
    return tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=seed)


def test_sft_batch_loss_mask_covers_solution_and_eos(tok):
    ids, attn, loss_mask = sft_batch(tok, PAIRS, "cpu")
    lens = [len(p) + len(s) + 1 for p, s in PAIRS]  # one token per char, plus EOS
    assert ids.shape == attn.shape == loss_mask.shape == (len(PAIRS), max(lens))
    assert loss_mask.dtype == torch.bool
    for i, (p, s) in enumerate(PAIRS):
        n, L = len(p), lens[i]
        row = ids[i].tolist()
        assert row[:n] == tok(p).input_ids
        assert row[n:L] == tok(s).input_ids + [tok.eos_token_id]
        assert row[L:] == [tok.pad_token_id] * (ids.shape[1] - L)  # right padding
        assert attn[i].tolist() == [1] * L + [0] * (ids.shape[1] - L)
        assert loss_mask[i].tolist() == [False] * n + [True] * (L - n) + [False] * (ids.shape[1] - L)
        assert tok.decode(ids[i][loss_mask[i]].tolist(), skip_special_tokens=True) == s
        assert ids[i][loss_mask[i]][-1].item() == tok.eos_token_id


def test_lm_loss_is_mean_nll_of_solution_tokens_ignoring_padding(tok):
    model = new_model(tok).eval()
    ids, attn, loss_mask = sft_batch(tok, PAIRS, "cpu")
    with torch.no_grad():
        got = lm_loss(model, ids, attn, loss_mask).item()
        nll, count = 0.0, 0
        for p, s in PAIRS:  # each example alone, unpadded
            p_ids = tok(p).input_ids
            seq = torch.tensor([p_ids + tok(s).input_ids + [tok.eos_token_id]])
            logits = model(input_ids=seq).logits[0, len(p_ids) - 1:-1]
            nll += F.cross_entropy(logits, seq[0, len(p_ids):], reduction="sum").item()
            count += seq.shape[1] - len(p_ids)
    assert got == pytest.approx(nll / count, rel=1e-5)


def test_train_sft_lowers_loss_on_fixed_batch(tok):
    model = new_model(tok)
    fixed = sft_batch(tok, [TASK.sample_train(random.Random(100 + i)) for i in range(16)], "cpu")
    with torch.no_grad():
        before = lm_loss(model.eval(), *fixed).item()
    log = train_sft(model, tok, TASK.sample_train, max_steps=25, batch_size=8, lr=3e-2, warmup=5,
                    seed=0, eval_every=10)
    with torch.no_grad():
        after = lm_loss(model, *fixed).item()
    assert not model.training
    assert after < before - 0.5, (before, after)
    assert [r["step"] for r in log] == [10, 20, 25]
    assert log[-1]["loss"] < log[0]["loss"]


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_sft_same_seed_same_weights(tok):
    kw = dict(max_steps=6, batch_size=4, lr=1e-3, warmup=2, eval_every=3)
    runs = []
    for seed in [0, 0, 1]:
        model = new_model(tok)
        log = train_sft(model, tok, TASK.sample_train, seed=seed, **kw)
        runs.append((snapshot(model), log))
    (w0, log0), (w1, log1), (w2, _) = runs
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert [r["loss"] for r in log0] == [r["loss"] for r in log1]
    assert not all(torch.equal(w0[k], w2[k]) for k in w0)
    init = snapshot(new_model(tok))
    assert not all(torch.equal(w0[k], init[k]) for k in w0)  # training changed the weights


def test_train_sft_stops_when_target_reached(tok):
    accs = iter([0.1, 0.5, 0.8, 0.95, 1.0])  # 0.8 == target: stops (>=)
    calls, logged, modes = [], [], []

    def evaluate():
        modes.append(model.training)
        calls.append(1)
        return next(accs)

    model = new_model(tok)
    log = train_sft(model, tok, TASK.sample_train, max_steps=50, batch_size=2, lr=1e-3, warmup=1,
                    seed=0, eval_every=2, evaluate=evaluate, target_acc=0.8, on_log=logged.append)
    assert [r["step"] for r in log] == [2, 4, 6]
    assert [r["val_acc"] for r in log] == [0.1, 0.5, 0.8]
    assert len(calls) == 3
    assert modes == [False, False, False]  # evaluated in eval mode
    assert logged == log


def test_train_sft_without_target_runs_to_max_steps_and_counts_tokens(tok):
    model = new_model(tok)
    log = train_sft(model, tok, TASK.sample_train, max_steps=5, batch_size=3, lr=1e-3, warmup=1,
                    seed=4, eval_every=2, evaluate=lambda: 1.0)
    assert [r["step"] for r in log] == [2, 4, 5]  # the last step is always logged
    # tokens_seen counts every non-pad token of every batch (replay the data stream)
    rng, seen, want = random.Random(4), 0, {}
    for step in range(1, 6):
        seen += sum(len(p) + len(s) + 1 for p, s in (TASK.sample_train(rng) for _ in range(3)))
        want[step] = seen
    assert [r["tokens_seen"] for r in log] == [want[2], want[4], want[5]]


def test_train_sft_resumes_exactly_from_a_checkpoint(tok, tmp_path):
    """Killed after step 7 with a checkpoint at step 5: the resumed run ends with the uninterrupted
    run's weights and log (its RNG streams, optimiser and schedule are all in the checkpoint)."""
    from conftest import Killed, die_when

    from pavflow.checkpoint import load_checkpoint, save_checkpoint
    kw = dict(max_steps=10, batch_size=4, lr=1e-3, warmup=2, eval_every=2, seed=0, checkpoint_every=5,
              evaluate=lambda: 0.0)
    full = new_model(tok)
    log_full = train_sft(full, tok, TASK.sample_train, **kw)

    path = tmp_path / "sft.pt"
    with pytest.raises(Killed):
        train_sft(new_model(tok), tok, TASK.sample_train, on_log=die_when(lambda r: r["step"] >= 7),
                  on_checkpoint=lambda s: save_checkpoint(s, path, "job"), **kw)
    state = load_checkpoint(path, "job")
    assert state["step"] == 5
    resumed = new_model(tok, seed=1)  # weights come from the checkpoint, not from the init
    log_resumed = train_sft(resumed, tok, TASK.sample_train, resume=state, **kw)
    assert log_resumed == log_full
    w, w_full = snapshot(resumed), snapshot(full)
    assert all(torch.equal(w[k], w_full[k]) for k in w)
