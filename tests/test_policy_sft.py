import math
import random

import pytest
import torch
import torch.nn.functional as F

from pavflow.policy.model import tiny_llama
from pavflow.policy.sft import PairBatches, lm_loss, sft_batch, train_sft, warmup_cosine
from pavflow.tasks import Arith, ArithSpec
from pavflow.train import TrainHooks

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
                    seed=0, eval_every=2, evaluate=evaluate, target_acc=0.8, hooks=TrainHooks(on_log=logged.append))
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


def test_warmup_cosine_is_the_lambda_lr_schedule_sft_always_used():
    """lr * warmup_cosine(t) is, bitwise, what LambdaLR gave step t (SFT's numerics did not change)."""
    max_steps, warmup, lr = 17, 4, 3e-3
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) *
                                              0.5 * (1 + math.cos(math.pi * min(s, max_steps) / max_steps)))
    for t in range(max_steps):
        assert opt.param_groups[0]["lr"] == lr * warmup_cosine(t, warmup, max_steps)
        opt.step()
        sched.step()
    assert warmup_cosine(0, 4, 10) == 0.25 and warmup_cosine(3, 4, 10) < 1.0
    assert warmup_cosine(0, 0, 10) == 1.0  # no warmup


def test_pair_batches_draw_fresh_pairs_and_resume():
    batches = PairBatches(TASK.sample_train, 3, seed=5)
    rng = random.Random(5)
    assert batches() == [TASK.sample_train(rng) for _ in range(3)]
    state = batches.state_dict()
    r_want, want = torch.rand(2), batches()
    torch.manual_seed(0)
    again = PairBatches(TASK.sample_train, 3, seed=6)
    again.load_state_dict(state)  # its random.Random and torch's global RNG
    assert torch.equal(torch.rand(2), r_want) and again() == want


def test_train_sft_hands_the_loop_sfts_optimiser_schedule_and_batches(tok, monkeypatch):
    """What train_sft gives the shared loop: AdamW(betas 0.9, 0.99, weight decay 0.01 on every
    weight), lr * warmup_cosine(t), fresh pairs from random.Random(seed), one step's loss per row
    and a row per evaluation."""
    import pavflow.policy.sft as sft
    got = {}
    monkeypatch.setattr(sft, "train_loop", lambda *a, **kw: got.update(args=a, kw=kw) or [])
    model = new_model(tok)
    train_sft(model, tok, TASK.sample_train, max_steps=9, batch_size=3, lr=2e-3, warmup=2, seed=7, eval_every=4,
              target_acc=0.5)
    m, opt, lr_at, batches, _ = got["args"]
    assert m is model and type(opt) is torch.optim.AdamW and len(opt.param_groups) == 1
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.99) and g["weight_decay"] == 0.01
    assert [id(p) for p in g["params"]] == [id(p) for p in model.parameters()]
    assert [lr_at(t) for t in range(9)] == [2e-3 * warmup_cosine(t, 2, 9) for t in range(9)]
    rng = random.Random(7)
    assert batches() == [TASK.sample_train(rng) for _ in range(3)]
    kw = got["kw"]
    assert (kw["steps"], kw["grad_clip"], kw["log_every"], kw["loss_window"]) == (9, 1.0, 4, 1)
    assert math.isnan(kw["evaluate"]()["val_acc"])  # no evaluate: the row still has val_acc
    assert kw["stop"]({"val_acc": 0.5}) and not kw["stop"]({"val_acc": 0.4})
