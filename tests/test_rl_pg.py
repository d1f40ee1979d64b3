import copy
import math

import numpy as np
import pytest
import torch

from pavflow.policy.model import char_tokenizer, tiny_llama
from pavflow.policy.sampler import Sampler
from pavflow.config import RLConfig
from pavflow.seeds import derive_seed
from pavflow.rl.pg import (DegenerateRun, degeneration, evaluate, kl_k3, kl_penalized, loo_advantages, pg_loss,
                           policy_step, response_log_ratios, sequence_logprobs, step_of_token, token_advantages, train_rl)
from pavflow.tasks.arith import Arith, ArithSpec

torch.set_num_threads(2)
ALPHABET = "0123456789+-*=\nQA:"
ROW_KEYS = {"update", "samples_seen", "train_reward", "test_acc_greedy", "test_acc_sampled"}


def tiny():
    tok = char_tokenizer(ALPHABET)
    return tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0), tok


@pytest.fixture(scope="module")
def task():
    return Arith(ArithSpec(), {"train": 16, "val": 2, "test": 6}, seed=0)


def test_loo_advantages_hand_computed():
    r = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    expected = torch.tensor([[1.0, -0.5, -0.5], [0.5, 0.5, -1.0]])
    assert torch.allclose(loo_advantages(r), expected)
    assert torch.allclose(loo_advantages(torch.ones(2, 4)), torch.zeros(2, 4))  # no signal, no push
    with pytest.raises(ValueError):
        loo_advantages(torch.ones(3, 1))
    with pytest.raises(ValueError):
        loo_advantages(torch.ones(3))


def test_step_of_token_and_token_advantages():
    model, tok = tiny()
    mask = Sampler(model, tok).step_mask
    tokens = tok("12\n34\nA:5").input_ids + [tok.eos_token_id]
    steps = step_of_token(tokens, mask)
    assert steps == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]  # separator closes its step; EOS joins the last step
    assert step_of_token(tokens, mask.tolist(), n_steps=3) == steps
    # an EOS right after a final separator belongs to the last step, not a phantom step 3
    trailing = tok("12\n34\n").input_ids + [tok.eos_token_id]
    assert step_of_token(trailing, mask) == [1, 1, 1, 2, 2, 2, 3]
    assert step_of_token(trailing, mask, n_steps=2) == [1, 1, 1, 2, 2, 2, 2]

    dense = token_advantages(0.5, steps, [0.1, -0.2, 0.3], alpha=2.0)
    assert dense == pytest.approx([0.7] * 3 + [0.1] * 3 + [1.1] * 4)
    assert token_advantages(0.5, steps, None, alpha=2.0) == [0.5] * 10
    assert token_advantages(-1.0, steps, [0.1, -0.2, 0.3], alpha=0.0) == [-1.0] * 10
    with pytest.raises(ValueError):
        token_advantages(0.5, steps, [0.1, -0.2], alpha=1.0)  # step 3 has no reward


def test_pg_loss_toy():
    lp = [torch.tensor([-1.0, -2.0], requires_grad=True), torch.tensor([-0.5], requires_grad=True)]
    loss = pg_loss(lp, [[1.0, 1.0], [-2.0]])
    assert loss.item() == pytest.approx(-(1 * -1 + 1 * -2 + -2 * -0.5) / 3)
    loss.backward()
    assert lp[0].grad.tolist() == pytest.approx([-1 / 3, -1 / 3])
    assert lp[1].grad.tolist() == pytest.approx([2 / 3])
    with pytest.raises(ValueError):
        pg_loss(lp, [[1.0], [1.0]])


def test_one_update_raises_logprob_of_rewarded_samples():
    model, tok = tiny()
    sampler = Sampler(model, tok)
    prompts = ["Q:1+2\n", "Q:3*4\n", "Q:56-7\n", "Q:8+9\n"]
    P, G = len(prompts), 8
    model.eval()
    samples = sampler.sample(prompts, G, seed=0, temperature=1.0, max_new_tokens=8)
    comps = [c for cs in samples.completions for c in cs]
    firsts = [c.tokens[0] for c in comps]
    target = max(set(firsts), key=lambda t: (firsts.count(t), -t))  # planted: reward this first token
    rewards = torch.tensor([[float(c.tokens[0] == target) for c in cs] for cs in samples.completions])
    assert 0 < rewards.sum() < P * G
    adv = loo_advantages(rewards).flatten().tolist()
    advantages = [token_advantages(a, [1] * len(c.tokens), None, 0.0) for a, c in zip(adv, comps)]
    prompt_ids = [sampler.encode([p])[0] for p in prompts for _ in range(G)]
    gen_ids = [c.tokens for c in comps]

    def mean_logp(rewarded: bool) -> float:
        with torch.no_grad():
            lps = sequence_logprobs(model, prompt_ids, gen_ids, tok.pad_token_id)
        return float(np.mean([lp.mean().item() for lp, r in zip(lps, rewards.flatten()) if bool(r) == rewarded]))

    before_pos, before_neg = mean_logp(True), mean_logp(False)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    policy_step(model, opt, prompt_ids, gen_ids, advantages, tok.pad_token_id, grad_clip=1.0, micro_batch=5)
    after_pos, after_neg = mean_logp(True), mean_logp(False)
    assert after_pos > before_pos + 1e-3
    assert after_neg < before_neg


def test_micro_batching_does_not_change_the_update():
    prompts = [[20, 17, 8], [20, 17, 9, 5, 10, 3], [20, 17, 7]]
    gens = [[8, 3, 19], [5, 5], [12, 13, 14, 3, 2]]
    advs = [[1.0, 1.0, 1.0], [-0.5, -0.5], [0.2, 0.3, -0.1, 0.0, 0.4]]
    grads = []
    for micro in (1, 3):
        model, tok = tiny()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        policy_step(model, opt, prompts, gens, advs, 0, grad_clip=0.0, micro_batch=micro)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def cfg(**kw):
    base = dict(updates=2, problems_per_update=3, samples_per_problem=4, lr=1e-3, alpha=1.0,
                max_new_tokens=16, temperature=1.0, eval_every=1, eval_samples=2, grad_clip=1.0, checkpoint_every=0)
    return RLConfig(**{**base, **kw})


def rl(model, tok, task, train, test, c, seed=0, **kw):
    """train_rl as the rl stage calls it: the run's seed, and alpha from the config."""
    return train_rl(model, tok, task, train, test, c, seed=seed, alpha=c.alpha, **kw)


def test_train_rl_rows(task):
    model, tok = tiny()
    seen = []
    rows = rl(model, tok, task, task.problems("train"), task.problems("test"), cfg(),
                    on_eval=seen.append)
    assert seen == rows
    assert [r["update"] for r in rows] == [0, 1, 2]
    assert [r["samples_seen"] for r in rows] == [0, 12, 24]
    assert all(ROW_KEYS <= set(r) for r in rows)
    assert math.isnan(rows[0]["train_reward"])
    for r in rows:
        assert 0.0 <= r["test_acc_greedy"] <= 1.0 and 0.0 <= r["test_acc_sampled"] <= 1.0
    for r in rows[1:]:
        assert 0.0 <= r["train_reward"] <= 1.0
    assert rows[2]["gen_tokens"] > rows[1]["gen_tokens"] > 0 and rows[2]["verifier_tokens"] == 0
    # eval points: update 0, every eval_every, and the last update
    rows = rl(tiny()[0], tok, task, task.problems("train"), task.problems("test"),
                    cfg(updates=5, eval_every=2, eval_samples=0))
    assert [r["update"] for r in rows] == [0, 2, 4, 5]
    assert [r["samples_seen"] for r in rows] == [0, 24, 48, 60]
    assert all(math.isnan(r["test_acc_sampled"]) for r in rows)


def fake_pav(calls):
    """v_mu(s_h) = fraction of the steps so far that contain '=' (content-dependent, in [0, 1])."""
    def score(prompts, steps):
        calls.append((prompts, steps))
        v = [np.array([0.0] + [sum("=" in s for s in st[:h]) / len(st) for h in range(1, len(st) + 1)])
             for st in steps]
        return v, [10] * len(steps)
    return score


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_train_rl_pav_arm_deterministic(task):
    train, test = task.problems("train"), task.problems("test")
    runs = []
    for alpha in (1.0, 1.0, 0.0):
        model, tok = tiny()
        calls = []
        rows = rl(model, tok, task, train, test, cfg(alpha=alpha), step_score_fn=fake_pav(calls))
        runs.append((rows, weights(model), calls))
    (rows_a, w_a, calls_a), (rows_b, w_b, _), (rows_0, w_0, _) = runs
    assert len(rows_a) == 3 and rows_a[-1]["verifier_tokens"] == 2 * 12 * 10
    assert str(rows_a) == str(rows_b)  # str: nan == nan
    assert all(torch.equal(x, y) for x, y in zip(w_a, w_b))
    assert not all(torch.equal(x, y) for x, y in zip(w_a, w_0))  # the dense reward moved the policy
    # the scorer sees prompt texts and each response's steps, G copies per problem
    assert len(calls_a) == 2
    prompts, steps = calls_a[0]
    assert len(prompts) == len(steps) == 12
    assert all(p.startswith("Q:") and p.endswith("\n") for p in prompts)
    assert prompts == [prompts[4 * (i // 4)] for i in range(12)] and len(set(prompts)) == 3
    assert set(prompts) <= {task.prompt(q.question) for q in train}
    assert all(s.endswith("\n") for st in steps for s in st[:-1])  # task.split_steps of each response


def test_train_rl_seed_and_validation(task):
    train, test = task.problems("train"), task.problems("test")
    m0, tok = tiny()
    m1, _ = tiny()
    rl(m0, tok, task, train, test, cfg(updates=1), seed=0, step_score_fn=fake_pav([]))
    rl(m1, tok, task, train, test, cfg(updates=1), seed=1, step_score_fn=fake_pav([]))
    assert not all(torch.equal(x, y) for x, y in zip(weights(m0), weights(m1)))
    with pytest.raises(ValueError, match="G >= 2"):  # the leave-one-out baseline
        rl(m0, tok, task, train, test, cfg(samples_per_problem=1, updates=1))
    with pytest.raises(ValueError, match="problems_per_update"):
        rl(m0, tok, task, train[:2], test, cfg())

    def bad_scorer(prompts, steps):
        return [np.zeros(len(s)) for s in steps], [0] * len(steps)  # H values instead of H + 1
    with pytest.raises(ValueError, match="H \\+ 1"):
        rl(m0, tok, task, train, test, cfg(updates=1), step_score_fn=bad_scorer)


def test_train_rl_resumes_exactly_from_a_checkpoint(task, tmp_path):
    from conftest import Killed, die_when

    from pavflow.checkpoint import load_checkpoint, save_checkpoint
    train, test = task.problems("train"), task.problems("test")
    c = cfg(updates=4, eval_every=1, eval_samples=1, checkpoint_every=2)
    model, tok = tiny()
    rows_full = rl(model, tok, task, train, test, c, step_score_fn=fake_pav([]))

    path = tmp_path / "rl.pt"
    with pytest.raises(Killed):
        rl(tiny()[0], tok, task, train, test, c, step_score_fn=fake_pav([]), on_eval=die_when(lambda r: r["update"] == 3),
                 on_checkpoint=lambda s: save_checkpoint(s, path, "job"))
    state = load_checkpoint(path, "job")
    assert state["update"] == 2
    resumed = tiny()[0]
    seen = []
    rows = rl(resumed, tok, task, train, test, c, step_score_fn=fake_pav([]), on_eval=seen.append,
                    resume=state)
    assert str(rows) == str(rows_full)  # str: nan == nan
    assert [r["update"] for r in seen] == [3, 4]  # only the new evaluation points are reported
    assert all(torch.equal(x, y) for x, y in zip(weights(resumed), weights(model)))


# --- metrics, KL, guardrails ---------------------------------------------------------------------

def test_eval_rows_carry_every_metric(task):
    model, tok = tiny()
    rows = rl(model, tok, task, task.problems("train"), task.problems("test"), cfg(updates=2))
    for r in rows:
        assert 0.0 <= r["test_acc_sampled"] <= r["pass_at_n"] <= 1.0
        assert r["response_tokens"] > 0 and r["n_steps"] >= 1
        assert math.isnan(r["newly_solved"]) or 0.0 <= r["newly_solved"] <= 1.0
    assert rows[0]["kl_ref"] == 0.0  # the policy is its own reference before any update
    assert rows[-1]["kl_ref"] != 0.0


def test_eval_kl_equals_two_forward_passes(task):
    """kl_ref from the sampler's own log-probs and one reference forward pass equals the k3 estimate from
    log pi - log pi_ref of two teacher-forced passes over the same eval samples."""
    model, tok = tiny()
    ref = copy.deepcopy(model)
    with torch.no_grad():  # a policy away from its reference
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    c = cfg(eval_samples=3)
    test = task.problems("test")
    sampler = Sampler(model, tok, step_sep=task.step_sep)
    m, _ = evaluate(sampler, task, test, c, seed=0, ref=ref)
    prompts = [task.prompt(p.question) for p in test]
    outs = sampler.sample(prompts, 3, seed=derive_seed(0, "eval-sampled", 0), temperature=1.0,
                          max_new_tokens=c.max_new_tokens)
    ids = sampler.encode(prompts)
    comps = [(ids[i], x.tokens) for i, cs in enumerate(outs.completions) for x in cs]
    ratios = response_log_ratios(model, ref, [p for p, _ in comps], [g for _, g in comps], tok.pad_token_id, 64)
    assert m["kl_ref"] > 0.01
    assert m["kl_ref"] == pytest.approx(float(np.mean([kl_k3(r) for r in ratios])), rel=1e-4)
    assert evaluate(sampler, task, test, c, seed=0, ref=ref, at_ref=True)[0]["kl_ref"] == 0.0
    assert math.isnan(evaluate(sampler, task, test, c, seed=0)[0]["kl_ref"])


def test_reference_logprobs_do_not_depend_on_the_micro_batch():
    from pavflow.rl.pg import reference_logprobs
    model, tok = tiny()
    g = torch.Generator().manual_seed(0)
    prompts = [[1] + torch.randint(2, 9, (int(n),), generator=g).tolist() for n in torch.randint(1, 6, (9,), generator=g)]
    gens = [torch.randint(2, 9, (int(n),), generator=g).tolist() for n in torch.randint(0, 7, (9,), generator=g)]
    one_by_one = [sequence_logprobs(model, [p], [x], tok.pad_token_id)[0] for p, x in zip(prompts, gens)]
    for micro_batch in (1, 4, 64):  # batched with others of any length: each sequence's values stay its own
        got = reference_logprobs(model, prompts, gens, tok.pad_token_id, micro_batch)
        assert [x.shape for x in got] == [(len(x),) for x in gens]
        for a, b in zip(got, one_by_one):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_response_log_ratios_zero_for_the_same_model():
    model, tok = tiny()
    r = response_log_ratios(model, model, [[1, 5, 6], [1, 7]], [[8, 9], []], tok.pad_token_id, 64)
    assert [x.shape for x in r] == [(2,), (0,)] and torch.equal(r[0], torch.zeros(2))


def test_kl_penalty_is_credited_to_the_tokens_before_it():
    got = kl_penalized([1.0, 1.0, 1.0], [0.5, -0.25, 2.0], kl_coef=0.1)
    assert got == pytest.approx([1 - 0.1 * 2.25, 1 - 0.1 * 1.75, 1 - 0.1 * 2.0])
    assert kl_penalized([], [], 0.1) == []
    with pytest.raises(ValueError):
        kl_penalized([1.0], [], 0.1)


def test_kl_penalty_keeps_the_policy_nearer_its_reference(task):
    """A strong dense reward pulls the policy away; the KL penalty holds it back (seeded run)."""
    train, test = task.problems("train"), task.problems("test")
    kl = {}
    for coef in (0.0, 5.0):
        model, tok = tiny()
        rows = rl(model, tok, task, train, test, cfg(updates=4, lr=1e-2, alpha=3.0, kl_coef=coef, eval_every=4),
                        step_score_fn=fake_pav([]))
        kl[coef] = rows[-1]["kl_ref"]
    assert kl[5.0] < 0.7 * kl[0.0], kl


def row(acc, length, steps):
    return {"test_acc_sampled": acc, "test_acc_greedy": acc, "response_tokens": length, "n_steps": steps}


@pytest.mark.parametrize("now, trips", [
    (row(0.2, 40, 3), True),    # length x4 while accuracy fell 0.3
    (row(0.2, 2, 3), True),     # length /5 while accuracy fell
    (row(0.2, 10, 12), True),   # step count x4 while accuracy fell
    (row(0.45, 40, 12), False),  # drifted, but accuracy held (within guard_acc_drop)
    (row(0.1, 20, 4), False),   # accuracy fell, lengths within guard_ratio
    (row(0.8, 40, 3), False),   # longer and better
])
def test_degeneration_rule(now, trips):
    reason = degeneration(row(0.5, 10, 3), now, cfg())
    assert (reason is not None) == trips
    if trips:
        assert "fell from 0.500 to 0.200" in reason


def test_guardrail_stops_on_a_planted_nan_reward_and_keeps_the_checkpoint_before_it(task, tmp_path):
    from pavflow.checkpoint import load_checkpoint, save_checkpoint
    calls = []

    def nan_from_second_update(prompts, steps):
        v, cost = fake_pav(calls)(prompts, steps)
        return ([np.full_like(x, np.nan) for x in v] if len(calls) >= 2 else v), cost

    path = tmp_path / "rl.pt"
    model, tok = tiny()
    with pytest.raises(DegenerateRun) as e:
        rl(model, tok, task, task.problems("train"), task.problems("test"), cfg(updates=4, checkpoint_every=1),
                 step_score_fn=nan_from_second_update,
                 on_checkpoint=lambda s: save_checkpoint(s, path, "job"))
    assert e.value.update == 2 and "non-finite" in str(e.value) and "update 2" in str(e.value)
    assert [r["update"] for r in e.value.rows] == [0, 1]  # the evaluations before the bad update
    state = load_checkpoint(path, "job")
    assert state["update"] == 1  # the degenerate update was never applied nor checkpointed
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_progress_function_is_the_value_per_state_interface_of_search():
    """train_rl's step_score_fn gives values at every state (search.beam.ScoreFn), not beam's
    one-score-per-item StepScoreFn: one name per meaning."""
    import typing

    from pavflow.rl import pg
    from pavflow.search.beam import ScoreFn, StepScoreFn
    assert typing.get_type_hints(train_rl)["step_score_fn"] == ScoreFn | None
    assert ScoreFn != StepScoreFn
    assert not hasattr(pg, "StepScoreFn")


def test_kl_k3_is_unbiased_and_never_negative():
    from pavflow.rl.pg import kl_k3
    g = torch.Generator().manual_seed(0)
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.5, 0.3, 0.2])  # pi, pi_ref
    kl = float((p * (p / q).log()).sum())
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=g)
    l = (p.log() - q.log())[tokens]  # log pi - log pi_ref of tokens sampled from pi
    per_token = [kl_k3(l[i:i + 1]) for i in range(2000)]
    assert min(per_token) >= 0.0
    assert kl_k3(l) / len(l) == pytest.approx(kl, rel=0.03)
    assert float(l.sum()) / len(l) == pytest.approx(kl, rel=0.05)  # the plain estimate: same mean, can be < 0


def test_pav_mc_with_alpha_0_moves_the_policy_exactly_as_the_outcome_arm(task):
    """The oracle arm's dense term is alpha * A^mu: at alpha = 0 its updates are the outcome arm's, bit for
    bit, although its oracle rolls out (and counts) fresh continuations from every visited state."""
    from pavflow.oracle import MCOracle
    train, test = task.problems("train"), task.problems("test")
    answers = {task.prompt(p.question): p.answer for p in train}
    runs = []
    for arm in ("outcome", "pav_mc"):
        model, tok = tiny()
        oracle = None
        if arm == "pav_mc":
            prover, _ = tiny()  # the prover's rollout policy: a fixed model apart from the one trained
            oracle = MCOracle(Sampler(prover, tok), task, answers, n=4, seed=7, temperature=1.0, max_new_tokens=16)
        rows = rl(model, tok, task, train, test, cfg(alpha=0.0), step_score_fn=oracle and oracle.values(2))
        runs.append((rows, weights(model), oracle))
    (rows_o, w_o, _), (rows_mc, w_mc, oracle) = runs
    assert all(torch.equal(x, y) for x, y in zip(w_o, w_mc))
    assert [r["train_reward"] for r in rows_o[1:]] == [r["train_reward"] for r in rows_mc[1:]]
    assert oracle.rollout_tokens > 0 and rows_mc[-1]["verifier_tokens"] == oracle.rollout_tokens
    assert rows_o[-1]["verifier_tokens"] == 0
