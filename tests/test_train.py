"""The one training loop (pavflow.train) in the configurations that use it: SFT (policy.sft.train_sft)
and verifiers (verifiers.fit.fit, via train_value and train_implicit)."""
import random

import pytest
import torch
import torch.nn.functional as F
from conftest import Killed, die_when

from pavflow.checkpoint import load_checkpoint, save_checkpoint
from pavflow.policy.model import tiny_llama
from pavflow.policy.sft import PairBatches, train_sft, warmup_cosine
from pavflow.tasks import Arith, ArithSpec
from pavflow.train import TrainHooks, train_loop
from pavflow.verifiers.fit import FitSettings, fit

TASK = Arith(ArithSpec(), {}, seed=0)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    a, b = snapshot(a), snapshot(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- the loop on a toy model

def toy(seed=0):
    """A small MLP with dropout: its training draws from torch's global RNG at every step."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1))


def toy_pair(rng: random.Random):  # one (x, y) example with y = x0 - 2 x1 + x2
    x = [rng.uniform(-1, 1) for _ in range(3)]
    return x, x[0] - 2 * x[1] + x[2]


def toy_loss(model):
    def loss_fn(batch):
        x = torch.tensor([b[0] for b in batch])  # (B, 3)
        y = torch.tensor([b[1] for b in batch])  # (B,)
        return F.mse_loss(model(x)[:, 0], y), len(batch)
    return loss_fn


def toy_sft(model, hooks=TrainHooks(), steps=12, evaluate=None, stop=None):
    """The SFT configuration: SFT's optimiser and schedule, fresh pairs from a random.Random, one
    step's loss per row."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    return train_loop(model, opt, lambda t: 1e-2 * warmup_cosine(t, 3, steps), PairBatches(toy_pair, 5, seed=0),
                      toy_loss(model), steps=steps, grad_clip=1.0, log_every=4, loss_window=1,
                      evaluate=evaluate, stop=stop, hooks=hooks, desc="toy")


DATA = [toy_pair(random.Random(i)) for i in range(7)]


def toy_fit(model, hooks=TrainHooks(), steps=12):
    """The verifier configuration: fit's optimiser and schedule, seeded epoch permutations."""
    return fit(model, DATA, toy_loss(model), FitSettings(steps=steps, batch_size=3, lr=1e-2, seed=0, warmup=2,
                                                         weight_decay=0.1, log_every=4), hooks, desc="toy")


@pytest.mark.parametrize("run", [toy_sft, toy_fit], ids=["sft", "verifier"])
def test_resume_equals_the_uninterrupted_run(run, tmp_path):
    """Killed after step 8 with a checkpoint at step 6 (mid-epoch for the verifier configuration):
    the resumed run ends with the uninterrupted run's weights and rows, dropout masks included (the
    global torch RNG is in the checkpoint, with the batch source's own generator)."""
    full = toy()
    rows_full = run(full)
    path = tmp_path / "job.pt"
    with pytest.raises(Killed):
        run(toy(), TrainHooks(on_log=die_when(lambda r: r["step"] == 8), checkpoint_every=3,
                              on_checkpoint=lambda s: save_checkpoint(s, path, "job")))
    state = load_checkpoint(path, "job")
    assert state["step"] == 6
    torch.manual_seed(123)  # whatever the process did since: the checkpoint restores every stream
    resumed = toy(seed=1)
    rows = run(resumed, TrainHooks(resume=state))
    assert rows == rows_full
    assert same_weights(resumed, full)
    assert not same_weights(full, toy())  # training moved the weights


def test_without_the_global_rng_in_the_checkpoint_the_resume_would_differ(tmp_path):
    """The dropout toy is sensitive to the global stream: a resume whose torch RNG is not restored
    ends elsewhere (so the test above can fail)."""
    full = toy()
    toy_sft(full)
    states = []
    toy_sft(toy(), TrainHooks(checkpoint_every=6, on_checkpoint=states.append))
    state = {**states[0], "batches": {**states[0]["batches"], "torch": torch.manual_seed(7).get_state()}}
    resumed = toy()
    toy_sft(resumed, TrainHooks(resume=state))
    assert not same_weights(resumed, full)


def test_rows_lr_schedule_evaluation_and_stop():
    model, lrs, modes = toy(), [], []

    class Recorder(torch.optim.SGD):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    def evaluate():
        modes.append(model.training)
        return {"acc": len(modes) / 10}

    losses = []

    def loss_fn(batch):
        loss, n = toy_loss(model)(batch)
        losses.append(loss.item())
        return loss, n

    rows = train_loop(model, Recorder(model.parameters(), lr=0.0), lambda t: 0.1 / (t + 1),
                      PairBatches(toy_pair, 2, seed=0), loss_fn, steps=10, grad_clip=0.0, log_every=3,
                      evaluate=evaluate, stop=lambda r: r["acc"] >= 0.2, desc="toy")
    assert lrs == [0.1 / (t + 1) for t in range(6)]  # lr_at(t) at step t; stopped after the row at step 6
    assert [r["step"] for r in rows] == [3, 6] and [r["acc"] for r in rows] == [0.1, 0.2]
    assert [r["tokens_seen"] for r in rows] == [6, 12]
    assert rows[0]["loss"] == pytest.approx(sum(losses[:3]) / 3)  # mean over the steps since the last row
    assert rows[1]["loss"] == pytest.approx(sum(losses[3:6]) / 3)
    assert modes == [False, False] and not model.training  # evaluated, and left, in eval mode


def test_loss_window_picks_the_last_steps():
    model, losses = toy(), []

    def loss_fn(batch):
        loss, n = toy_loss(model)(batch)
        losses.append(loss.item())
        return loss, n

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for window, want in ((1, lambda ls: ls[-1]), (2, lambda ls: (ls[-2] + ls[-1]) / 2), (None, lambda ls: sum(ls) / 4)):
        losses.clear()
        rows = train_loop(model, opt, lambda t: 0.01, PairBatches(toy_pair, 2, seed=0), loss_fn, steps=4,
                          grad_clip=1.0, log_every=4, loss_window=window, desc="toy")
        assert rows[0]["loss"] == pytest.approx(want(losses), rel=1e-12), window


# ---------------------------------------------------------------- the real configurations

def new_model(tok, seed=0):
    return tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=seed)


def test_train_sft_resumes_exactly_from_a_checkpoint(tok, tmp_path):
    """Killed after step 7 with a checkpoint at step 5: the resumed run ends with the uninterrupted
    run's weights and log (its RNG streams, optimiser and schedule are all in the checkpoint)."""
    kw = dict(max_steps=10, batch_size=4, lr=1e-3, warmup=2, eval_every=2, seed=0, evaluate=lambda: 0.0)
    full = new_model(tok)
    log_full = train_sft(full, tok, TASK.sample_train, **kw)

    path = tmp_path / "sft.pt"
    with pytest.raises(Killed):
        train_sft(new_model(tok), tok, TASK.sample_train, **kw,
                  hooks=TrainHooks(on_log=die_when(lambda r: r["step"] >= 7), checkpoint_every=5,
                                   on_checkpoint=lambda s: save_checkpoint(s, path, "job")))
    state = load_checkpoint(path, "job")
    assert state["step"] == 5
    resumed = new_model(tok, seed=1)  # weights come from the checkpoint, not from the init
    log_resumed = train_sft(resumed, tok, TASK.sample_train, **kw, hooks=TrainHooks(checkpoint_every=5, resume=state))
    assert log_resumed == log_full
    w, w_full = snapshot(resumed), snapshot(full)
    assert all(torch.equal(w[k], w_full[k]) for k in w)


def test_train_value_resumes_exactly_from_a_checkpoint(policy_dir, tok, tmp_path):
    from test_verifiers_value import nine_examples

    from pavflow.verifiers.value import train_value, value_model_from_policy
    examples = nine_examples(6, seed=1)  # batch 4 of 6: the checkpoint falls mid-epoch
    s = FitSettings(steps=9, batch_size=4, lr=1e-3, seed=0, warmup=2, log_every=2)
    full = value_model_from_policy(policy_dir, seed=0)
    rows_full = train_value(full, tok, examples, s)

    path = tmp_path / "verifier.pt"
    with pytest.raises(Killed):
        train_value(value_model_from_policy(policy_dir, seed=0), tok, examples, s,
                    TrainHooks(on_log=die_when(lambda r: r["step"] == 6), checkpoint_every=3,
                               on_checkpoint=lambda st: save_checkpoint(st, path, "job")))
    state = load_checkpoint(path, "job")
    assert state["step"] == 3
    resumed = value_model_from_policy(policy_dir, seed=5)
    rows = train_value(resumed, tok, examples, s, TrainHooks(checkpoint_every=3, resume=state))
    assert rows == rows_full
    a, b = resumed.state_dict(), full.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_implicit_resumes_exactly_from_a_checkpoint(policy_dir, tok, tmp_path):
    from test_verifiers_implicit import perturbed, toy_set

    from pavflow.verifiers.implicit import implicit_models_from_policy, train_implicit
    examples = toy_set(3)  # 6 responses, batch 4: the checkpoint falls mid-epoch
    kw = dict(loss="ce", beta=0.5, settings=FitSettings(steps=7, batch_size=4, lr=1e-3, seed=0, warmup=2, log_every=2))
    full, ref = implicit_models_from_policy(policy_dir, seed=0)
    rows_full = train_implicit(full, ref, tok, examples, **kw)

    path = tmp_path / "implicit.pt"
    with pytest.raises(Killed):
        train_implicit(*implicit_models_from_policy(policy_dir, seed=0), tok, examples, **kw,
                       hooks=TrainHooks(on_log=die_when(lambda r: r["step"] == 4), checkpoint_every=3,
                                        on_checkpoint=lambda s: save_checkpoint(s, path, "job")))
    state = load_checkpoint(path, "job")
    assert state["step"] == 3
    resumed, ref2 = perturbed(policy_dir, seed=5)  # whatever the weights, the checkpoint restores them
    rows = train_implicit(resumed, ref2, tok, examples, **kw, hooks=TrainHooks(checkpoint_every=3, resume=state))
    assert rows == rows_full
    a, b = resumed.state_dict(), full.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
