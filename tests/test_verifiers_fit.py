import math

import pytest
import torch

from pavflow.verifiers.fit import EpochBatches, FitSettings, fit, warmup_decay


def test_fit_settings_validate():
    FitSettings(steps=1, batch_size=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="schedule must be cosine or linear"):
        FitSettings(steps=1, batch_size=1, lr=1e-3, seed=0, schedule="step")
    for bad in (dict(steps=0), dict(batch_size=0), dict(log_every=0)):
        with pytest.raises(ValueError, match="need steps, batch_size, log_every >= 1"):
            FitSettings(**{"steps": 1, "batch_size": 1, "lr": 1e-3, "seed": 0, **bad})


def test_warmup_then_decay_to_min_lr_frac():
    s = FitSettings(steps=6, batch_size=1, lr=1.0, seed=0, warmup=2, min_lr_frac=0.1)
    lrs = [warmup_decay(t, s) for t in range(6)]
    assert lrs[:2] == [0.5, 1.0]  # linear warmup
    assert lrs[2] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)  # cosine from lr down to 0.1 lr
    assert lrs[3] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 3)))
    lin = FitSettings(steps=6, batch_size=1, lr=1.0, seed=0, warmup=2, schedule="linear", min_lr_frac=0.0)
    assert [warmup_decay(t, lin) for t in range(2, 6)] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])


def test_epoch_batches_cover_every_item_once_per_epoch_and_resume():
    data = list(range(7))
    b = EpochBatches(data, 3, seed=0)
    seen = [x for _ in range(7) for x in b()]  # 21 items = 3 epochs
    assert all(sorted(seen[7 * e:7 * e + 7]) == data for e in range(3))
    assert seen[:7] != data  # shuffled
    assert EpochBatches(data, 3, seed=0)() == seen[:3] and EpochBatches(data, 3, seed=1)() != seen[:3]
    assert len(EpochBatches([1, 2], 5, seed=0)()) == 2  # a batch is at most the whole data

    a = EpochBatches(data, 4, seed=2)
    a()  # mid-epoch
    state = a.state_dict()
    r_want, want = torch.rand(2), [a() for _ in range(4)]
    torch.manual_seed(1)  # the process moved on
    b = EpochBatches(data, 4, seed=99)
    b.load_state_dict(state)  # its generator, its position in the epoch and torch's global RNG
    assert torch.equal(torch.rand(2), r_want)
    assert [b() for _ in range(4)] == want


def test_fit_hands_the_loop_the_verifier_optimiser_schedule_and_batches(monkeypatch):
    """What fit gives the shared loop: AdamW(betas 0.9, 0.95) with weight decay on >= 2-D weights
    only, warmup_decay(t), epoch permutations seeded by settings.seed, and the loop settings."""
    import pavflow.verifiers.fit as fit_mod
    got = {}
    monkeypatch.setattr(fit_mod, "train_loop", lambda *a, **kw: got.update(args=a, kw=kw) or [])
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    s = FitSettings(steps=8, batch_size=2, lr=1e-2, seed=3, warmup=2, schedule="linear", weight_decay=0.1,
                    grad_clip=0.5, log_every=3)
    data = list(range(5))
    fit(model, data, lambda b: None, s, desc="x")
    m, opt, lr_at, batches, _ = got["args"]
    assert m is model and type(opt) is torch.optim.AdamW
    decay, no_decay = opt.param_groups
    assert {id(p) for p in decay["params"]} == {id(p) for p in model.parameters() if p.dim() >= 2}
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in model.parameters() if p.dim() < 2}
    assert (decay["weight_decay"], no_decay["weight_decay"], decay["betas"]) == (0.1, 0.0, (0.9, 0.95))
    assert [lr_at(t) for t in range(8)] == [warmup_decay(t, s) for t in range(8)]
    assert batches() == EpochBatches(data, 2, seed=3)()
    kw = got["kw"]
    assert (kw["steps"], kw["grad_clip"], kw["log_every"], kw["desc"]) == (8, 0.5, 3, "x")
    assert kw.get("loss_window") is None and kw.get("evaluate") is None  # a row's loss: mean since the last row
