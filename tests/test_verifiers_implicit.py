import random

import numpy as np
import pytest
import torch

from pavflow.policy.logprobs import pad_right
from pavflow.train import TrainHooks
from pavflow.verifiers.fit import FitSettings
from pavflow.verifiers.implicit import (ImplicitVerifier, ResponseExample, ce_loss, dpo_loss,
                                        dpo_pairs, implicit_models_from_policy, implicit_rewards,
                                        save_implicit, token_log_ratios, train_implicit)
from pavflow.verifiers.value import encode_states



def perturbed(policy_dir, seed=0, std=0.05):
    """(model, ref) with model != ref, so the log-ratios are not all zero."""
    model, ref = implicit_models_from_policy(policy_dir, seed=0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model, ref


def toy_set(n_problems: int = 4, seed: int = 0) -> list[ResponseExample]:
    """Per problem 'Q:a+b': one correct response and one with a wrong sum."""
    rng = random.Random(seed)
    out = []
    for k in range(n_problems):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        for c, ok in ((a + b, 1), (a + b + rng.randint(1, 5), 0)):
            out.append(ResponseExample(f"Q:{a}+{b}\n", [f"{a}+{b}={c}\n", f"A:{c}"], ok, f"p{k}"))
    return out


def rewards(model, ref, tok, examples, beta):
    q, _ = implicit_rewards(model, ref, tok, [e.prompt for e in examples], [e.steps for e in examples], beta)
    return np.array([x[-1] for x in q])


# ---------------------------------------------------------------- formulas

def test_step_rewards_sum_to_the_loop_reward(policy_dir, tok):
    """q against a plain per-token loop over one unpadded sequence: every step reward, and their sum
    r(y) = β Σ l_t over the response tokens."""
    model, ref = perturbed(policy_dir)
    beta, prompt, steps = 0.3, "Q:12+3\n", ["12+3=15\n", "15*2=30\n", "A:30"]
    ids, b = encode_states(tok, prompt, steps)
    x = torch.tensor([ids])

    def logp(m, t):  # log m(ids[t] | ids[:t])
        with torch.no_grad():
            return torch.log_softmax(m(input_ids=x[:, :t]).logits[0, -1].double(), -1)[ids[t]].item()

    l = {t: logp(model, t) - logp(ref, t) for t in range(1, len(ids))}
    step_r = [beta * sum(l[t] for t in range(b[h - 1] + 1, b[h] + 1)) for h in range(1, len(b))]
    r = beta * sum(l[t] for t in range(b[0] + 1, len(ids)))  # every token after the prompt

    (q,), (n,) = implicit_rewards(model, ref, tok, [prompt], [steps], beta)
    assert n == len(ids) and q.shape == (4,) and q.dtype == np.float64
    assert q[0] == 0.0
    np.testing.assert_allclose(np.diff(q), step_r, rtol=1e-4, atol=1e-6)
    assert np.diff(q).sum() == pytest.approx(r, rel=1e-4)
    assert abs(r) > 1e-3 and (np.abs(np.diff(q)) > 1e-4).all()  # not vacuous
    # token_log_ratios itself: l_t at index t, 0 at t = 0
    lr = token_log_ratios(model, ref, x, torch.ones_like(x))[0]
    assert lr[0] == 0.0
    np.testing.assert_allclose(lr[1:].detach().numpy(), [l[t] for t in range(1, len(ids))],
                               rtol=1e-4, atol=1e-6)


def test_untrained_model_gives_zero(policy_dir, tok):
    model, ref = implicit_models_from_policy(policy_dir, seed=0)
    assert model.training and not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in model.parameters())
    ex = toy_set(3)
    q, n = implicit_rewards(model, ref, tok, [e.prompt for e in ex], [e.steps for e in ex], beta=1.0)
    assert all(x.shape == (3,) and (x == 0).all() for x in q)
    assert n == [len(encode_states(tok, e.prompt, e.steps)[0]) for e in ex]
    assert model.training  # restored


def test_implicit_models_from_policy_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        implicit_models_from_policy(tmp_path / "nowhere", seed=0)


def test_ce_loss_by_hand():
    r, y = torch.tensor([0.5, -1.0]), torch.tensor([1, 0])
    # (-log σ(0.5) - log(1 - σ(-1))) / 2 = (log(1 + e^-0.5) + log(1 + e^-1)) / 2
    assert ce_loss(r, y).item() == pytest.approx(0.39366933584916475, rel=1e-6)
    assert ce_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(np.log(2))
    # extreme logits stay finite
    assert torch.isfinite(ce_loss(torch.tensor([-200.0]), torch.tensor([1.0])))


def test_dpo_loss_by_hand():
    r_pos, r_neg = torch.tensor([0.5, 0.2]), torch.tensor([-1.0, 0.7])
    # margins 1.5, -0.5: (log(1 + e^-1.5) + log(1 + e^0.5)) / 2
    assert dpo_loss(r_pos, r_neg).item() == pytest.approx(0.5877451310814296, rel=1e-6)


def test_padding_does_not_change_q(policy_dir, tok):
    model, ref = perturbed(policy_dir)
    short = ("Q:1+2\n", ["1+2=3\n", "A:3"])
    long = ("Q:11+22\n", ["11+22=33\n", "33+1=34\n", "34*2=68\n", "A:68"])
    (alone,), _ = implicit_rewards(model, ref, tok, [short[0]], [short[1]], beta=0.5)
    (q_long, q_short), n = implicit_rewards(model, ref, tok, [long[0], short[0]], [long[1], short[1]],
                                            beta=0.5)
    assert n[0] > n[1]  # the short one is padded in the batch
    assert np.abs(alone).max() > 1e-4
    np.testing.assert_allclose(q_short, alone, rtol=1e-5, atol=1e-7)
    # batch_size 1 (no padding at all) gives the same, in input order
    q1, _ = implicit_rewards(model, ref, tok, [long[0], short[0]], [long[1], short[1]], beta=0.5,
                             batch_size=1)
    np.testing.assert_allclose(q1[0], q_long, rtol=1e-5, atol=1e-7)
    # the padded positions of token_log_ratios are 0
    ids, mask = pad_right([encode_states(tok, *short)[0], encode_states(tok, *long)[0]], 0, "cpu")
    lr = token_log_ratios(model, ref, ids, mask)
    assert (lr[0, mask[0] == 0] == 0).all() and (lr[:, 0] == 0).all()


# ---------------------------------------------------------------- pairs

def test_dpo_pairs():
    ex = [ResponseExample("Q", ["a"], c, g) for c, g in
          [(1, "a"), (0, "a"), (0, "b"), (1, "a"), (0, "a"), (0, "a"), (1, "b"), (1, "c"), (1, "c"), (0, "d")]]
    full = dpo_pairs(ex, seed=0, max_pairs_per_problem=None)
    # a: correct {0, 3} x incorrect {1, 4, 5}; b: 6 x 2; c, d: one outcome only
    assert full == [(0, 1), (0, 4), (0, 5), (3, 1), (3, 4), (3, 5), (6, 2)]
    for p, n in full:
        assert ex[p].group == ex[n].group and ex[p].correct == 1 and ex[n].correct == 0
    capped = dpo_pairs(ex, seed=0, max_pairs_per_problem=4)
    assert capped == dpo_pairs(ex, seed=0, max_pairs_per_problem=4)  # deterministic
    in_a = [pr for pr in capped if ex[pr[0]].group == "a"]
    assert len(in_a) == 4 and set(in_a) <= set(full[:6]) and in_a == sorted(in_a)
    assert (6, 2) in capped and len(capped) == 5
    seen = {tuple(dpo_pairs(ex, seed=s, max_pairs_per_problem=2)) for s in range(20)}
    assert len(seen) > 1  # the subset depends on the seed
    with pytest.raises(ValueError, match="max_pairs_per_problem"):
        dpo_pairs(ex, seed=0, max_pairs_per_problem=0)


# ---------------------------------------------------------------- training

@pytest.mark.parametrize("loss", ["ce", "dpo"])
def test_train_lowers_the_loss_and_separates_outcomes(policy_dir, tok, loss):
    examples, beta = toy_set(4), 0.5
    model, ref = implicit_models_from_policy(policy_dir, seed=0)
    pos = np.array([e.correct == 1 for e in examples])

    def objective():  # the loss on the whole training set
        r = torch.tensor(rewards(model, ref, tok, examples, beta))
        if loss == "ce":
            return ce_loss(r, torch.tensor([e.correct for e in examples])).item()
        return dpo_loss(r[torch.tensor(pos)], r[torch.tensor(~pos)]).item()  # pairs (2k, 2k+1)

    before = objective()
    seen = []
    rows = train_implicit(model, ref, tok, examples, loss=loss, beta=beta,
                          settings=FitSettings(steps=30, batch_size=4, lr=3e-3, seed=0, log_every=10),
                          hooks=TrainHooks(on_log=seen.append))
    assert seen == rows and [r["step"] for r in rows] == [10, 20, 30]
    assert all(a["tokens_seen"] < b["tokens_seen"] for a, b in zip(rows, rows[1:]))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert objective() < 0.3 * before
    assert not model.training
    r = rewards(model, ref, tok, examples, beta)
    sig = 1 / (1 + np.exp(-r))
    assert sig[pos].min() > sig[~pos].max()  # every correct response above every incorrect one
    if loss == "ce":
        assert sig[pos].mean() > 0.8 and sig[~pos].mean() < 0.2
    # πref did not move
    _, fresh = implicit_models_from_policy(policy_dir, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), fresh.parameters()))


@pytest.mark.parametrize("loss", ["ce", "dpo"])
def test_training_reward_is_the_scored_reward(policy_dir, tok, loss):
    """With lr = 0 the first logged loss is the loss of the untouched model on a full batch: it must
    equal the loss computed from implicit_rewards' r(y) = q_H (same tokens, same β)."""
    examples, beta = toy_set(3), 0.7
    model, ref = perturbed(policy_dir)
    r = torch.tensor(rewards(model, ref, tok, examples, beta))
    pos = torch.tensor([e.correct == 1 for e in examples])
    want = (ce_loss(r, torch.tensor([e.correct for e in examples])) if loss == "ce"
            else dpo_loss(r[pos], r[~pos])).item()
    n = len(examples) if loss == "ce" else len(examples) // 2
    rows = train_implicit(model, ref, tok, examples, loss=loss, beta=beta,
                          settings=FitSettings(steps=1, batch_size=n, lr=0.0, seed=0, log_every=1))
    assert rows[0]["loss"] == pytest.approx(want, rel=1e-5)
    assert rows[0]["tokens_seen"] == sum(len(encode_states(tok, e.prompt, e.steps)[0]) for e in examples)


def test_train_same_seed_same_weights(policy_dir, tok):
    examples = toy_set(3) + [ResponseExample("Q:1+1\n", ["1+1=3\n", "A:3"], 0, "p0")]

    def run(seed):
        m, ref = implicit_models_from_policy(policy_dir, seed=0)
        rows = train_implicit(m, ref, tok, examples, loss="dpo", beta=0.5,
                              settings=FitSettings(steps=4, batch_size=2, lr=1e-3, seed=seed, weight_decay=0.1,
                                                   warmup=2, schedule="linear", log_every=2))
        return m.state_dict(), rows

    (a, ra), (b, rb), (c, _) = run(0), run(0), run(1)
    assert ra == rb
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_train_validates(policy_dir, tok):
    model, ref = implicit_models_from_policy(policy_dir, seed=0)
    kw = dict(beta=0.1, settings=FitSettings(steps=1, batch_size=2, lr=1e-3, seed=0))
    one_outcome = [ResponseExample("Q:1\n", ["A:1"], 1, "a"), ResponseExample("Q:2\n", ["A:3"], 0, "b")]
    with pytest.raises(ValueError, match="loss=ce"):
        train_implicit(model, ref, tok, one_outcome, loss="dpo", **kw)
    train_implicit(model, ref, tok, one_outcome, loss="ce", **kw)  # ce is fine with them
    with pytest.raises(ValueError, match="loss must be"):
        train_implicit(model, ref, tok, one_outcome, loss="kto", **kw)
    with pytest.raises(ValueError, match="correct=2"):
        train_implicit(model, ref, tok, [ResponseExample("Q:1\n", ["A:1"], 2, "a")], loss="ce", **kw)
    with pytest.raises(ValueError, match="no example has a response token"):
        train_implicit(model, ref, tok, [ResponseExample("Q:1\n", [], 1, "a")], loss="ce", **kw)


# ---------------------------------------------------------------- save / load

def test_save_load_round_trip(policy_dir, tok, tmp_path):
    examples = toy_set(3)
    model, ref = implicit_models_from_policy(policy_dir, seed=0)
    train_implicit(model, ref, tok, examples, loss="dpo", beta=0.25,
                   settings=FitSettings(steps=5, batch_size=2, lr=3e-3, seed=0))
    prompts, steps = [e.prompt for e in examples], [e.steps for e in examples]
    q_ref, n_ref = implicit_rewards(model, ref, tok, prompts, steps, 0.25)
    save_implicit(model, tok, tmp_path / "prm", beta=0.25, loss="dpo")
    ver = ImplicitVerifier.load(tmp_path / "prm", policy_dir, batch_size=2)
    assert ver.beta == 0.25
    q, n = ver.q(prompts, steps)
    assert n == [2 * k for k in n_ref]  # both models read every sequence
    assert np.abs(q_ref[0]).max() > 1e-3
    for x, y in zip(q, q_ref):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-8)
    v, n2 = ver.score(prompts, steps)
    assert n2 == n
    for x, y in zip(v, q):
        np.testing.assert_allclose(x, 1 / (1 + np.exp(-y)))
        assert x[0] == 0.5


def test_load_errors(policy_dir, tmp_path):
    with pytest.raises(ValueError, match=f"{policy_dir} is not a saved implicit PRM"):
        ImplicitVerifier.load(policy_dir, policy_dir)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImplicitVerifier.load(tmp_path / "nowhere", policy_dir)
