from collections import Counter

import numpy as np
import pytest
import torch

from pavflow.policy.model import char_tokenizer, tiny_llama
from pavflow.policy.sampler import Completion, Sampler, Samples
from pavflow.config import SearchConfig
from pavflow.search.beam import beam_search, effective_reward, last_value
from pavflow.tasks.arith import Arith, ArithSpec

torch.set_num_threads(2)

TASK = Arith(ArithSpec(), {"train": 1, "val": 1, "test": 1}, seed=0)
QUESTIONS = ["12+3*4", "7-2+5", "40*2-9"]


@pytest.fixture(scope="module")
def sampler():
    tok = char_tokenizer("0123456789+-*=\nQA:")
    return Sampler(tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0).eval(), tok, batch_size=256)


class Recorder:
    """Wraps a sampler; records every call and what it returned."""

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, []

    def sample(self, prompts, n=1, **kw):
        out = self.sampler.sample(prompts, n, **kw)
        self.calls.append((list(prompts), n, kw, out))
        return out


class PreferChar:
    """Fake step scorer: 1 if the newest step contains `ch`, else 0; costs 1 + total characters."""

    def __init__(self, ch):
        self.ch, self.calls = ch, []

    def __call__(self, prompts, steps):
        scores = [float(bool(s) and self.ch in s[-1]) for s in steps]
        tokens = [1 + len(p) + sum(map(len, s)) for p, s in zip(prompts, steps)]
        self.calls.append((list(prompts), [list(s) for s in steps], scores, tokens))
        return scores, tokens


class CountChar(PreferChar):
    """Fake final scorer: how often `ch` occurs in the whole response."""

    def __call__(self, prompts, steps):
        scores = [float("".join(s).count(self.ch)) for s in steps]
        tokens = [2] * len(steps)
        self.calls.append((list(prompts), [list(s) for s in steps], scores, tokens))
        return scores, tokens


def question_of(text):
    return next(i for i, q in enumerate(QUESTIONS) if text.startswith(TASK.prompt(q)))


def run(sampler, budget, expansions=4, seed=0, max_steps=4, ch="7"):
    rec, step_fn, final_fn = Recorder(sampler), PreferChar(ch), CountChar(ch)
    res = beam_search(rec, TASK, QUESTIONS, search=SearchConfig(expansions=expansions, max_steps=max_steps, max_step_tokens=8), budget=budget, step_score_fn=step_fn, final_score_fn=final_fn, seed=seed)
    return res, rec, step_fn, final_fn


def replay(rec, step_fn, width):
    """Recompute from the recorded calls what beam search must have kept each round.

    Returns, per round, the expected next-round prefixes per question, and the expected finished pool."""
    pool = {i: [] for i in range(len(QUESTIONS))}
    for t, (prompts, n, _, out) in enumerate(rec.calls):
        cands = [(p + c.text, c.finish == "eos") for p, cs in zip(prompts, out.completions) for c in cs]
        s_prompts, s_steps, scores, _ = step_fn.calls[t]
        # the scorer saw every candidate, in (beam, copy) order, as prompt + steps
        assert [p + "".join(s) for p, s in zip(s_prompts, s_steps)] == [c for c, _ in cands]
        assert all(s == TASK.split_steps(c[len(p):]) for p, s, (c, _) in zip(s_prompts, s_steps, cands))
        nxt = {}
        for i in range(len(QUESTIONS)):
            js = [j for j, (c, _) in enumerate(cands) if question_of(c) == i]
            kept = sorted(js, key=lambda j: -scores[j])[:width]
            # the preference holds: kept beams contain the character whenever enough candidates do
            assert sum(scores[j] for j in kept) == min(len(kept), sum(scores[j] for j in js))
            pool[i] += [cands[j][0] for j in kept if cands[j][1]]
            nxt[i] = [cands[j][0] for j in kept if not cands[j][1]]
        if t + 1 < len(rec.calls):
            got = rec.calls[t + 1][0]
            for i in range(len(QUESTIONS)):
                assert Counter(p for p in got if question_of(p) == i) == Counter(nxt[i]), (t, i)
    for i in range(len(QUESTIONS)):
        pool[i] += nxt[i]  # still active after the last round (or nothing left)
    return pool


@pytest.mark.parametrize("budget,width,m", [(1, 1, 1), (2, 1, 2), (4, 1, 4), (8, 2, 4)])
def test_width_and_expansions(sampler, budget, width, m):
    res, rec, step_fn, _ = run(sampler, budget)
    assert 1 <= len(rec.calls) <= 4
    first_prompts, first_n, kw, _ = rec.calls[0]
    assert first_prompts == [TASK.prompt(q) for q in QUESTIONS]  # the root of each question, once
    assert first_n == width * m
    assert kw["stop_at_step"] is True and kw["max_new_tokens"] == 8
    assert len(step_fn.calls[0][0]) == len(QUESTIONS) * width * m
    for (prompts, n, _, _), (s_prompts, *_) in zip(rec.calls[1:], step_fn.calls[1:]):
        assert n == m
        assert len(s_prompts) == len(prompts) * m
        per_q = Counter(question_of(p) for p in prompts)
        assert max(per_q.values()) <= width
    if width == 2:  # some round really carried two beams of one question
        assert any(max(Counter(question_of(p) for p in c[0]).values()) == 2 for c in rec.calls[1:])
    assert len(rec.calls) == len(step_fn.calls)


@pytest.mark.parametrize("budget,width", [(4, 1), (8, 2)])
def test_kept_beams_follow_the_step_scores(sampler, budget, width):
    res, rec, step_fn, final_fn = run(sampler, budget)
    pool = replay(rec, step_fn, width)
    # one final scoring call over the whole pool; the answer is its best candidate (first on ties)
    (f_prompts, f_steps, f_scores, _), = final_fn.calls
    texts = [p + "".join(s) for p, s in zip(f_prompts, f_steps)]
    for i, r in enumerate(res):
        mine = [k for k, t in enumerate(texts) if question_of(t) == i]
        assert Counter(texts[k] for k in mine) == Counter(pool[i])
        best = max(mine, key=lambda k: (f_scores[k], -k))
        assert TASK.prompt(QUESTIONS[i]) + r["response"] == texts[best]
        assert r["score"] == f_scores[best]


@pytest.mark.parametrize("budget", [1, 8])
def test_token_accounting(sampler, budget):
    res, rec, step_fn, final_fn = run(sampler, budget)
    gen, prompt = Counter(), Counter()
    for prompts, _, _, out in rec.calls:
        for b, p in enumerate(prompts):
            gen[question_of(p)] += sum(len(c.tokens) for c in out.completions[b])
            prompt[question_of(p)] += out.prompt_tokens[b]
            assert out.prompt_tokens[b] == len(rec.sampler.encode([p])[0])  # encoded once
    ver, calls = Counter(), Counter()
    for s_prompts, s_steps, _, tokens in step_fn.calls + final_fn.calls:
        for p, s, t in zip(s_prompts, s_steps, tokens):
            ver[question_of(p + "".join(s))] += t
            calls[question_of(p + "".join(s))] += 1
    for i, r in enumerate(res):
        assert r["gen_tokens"] == gen[i] > 0
        assert r["prompt_tokens"] == prompt[i] > 0
        assert r["verifier_tokens"] == ver[i] > 0
        assert r["n_calls"] == calls[i]
    assert sum(r["gen_tokens"] for r in res) == sum(out.gen_tokens for *_, out in rec.calls)


def test_same_seed_same_results(sampler):
    a, rec_a, _, _ = run(sampler, 8, seed=3)
    b, rec_b, _, _ = run(sampler, 8, seed=3)
    c, _, _, _ = run(sampler, 8, seed=4)
    assert a == b
    assert [x[0] for x in rec_a.calls] == [x[0] for x in rec_b.calls]
    assert a != c
    seeds = [kw["seed"] for _, _, kw, _ in rec_a.calls]
    assert len(set(seeds)) == len(seeds)  # a fresh seed each round


class Scripted:
    """Fake sampler. Copy c of a prefix at depth d (steps so far) writes the step f"{c}\\n"; from depth
    `eos_depth` on, copy 0 writes the answer "A:1" and ends with EOS."""

    def __init__(self, eos_depth):
        self.eos_depth, self.calls = eos_depth, []

    def sample(self, prompts, n=1, **kw):
        self.calls.append((list(prompts), n))
        comps = []
        for p in prompts:
            depth = p.count("\n") - 1
            comps.append([Completion([0, 0, 0], "A:1", "eos") if c == 0 and depth >= self.eos_depth
                          else Completion([0, 0], f"{c}\n", "step") for c in range(n)])
        return Samples(comps, [len(p) for p in prompts])


def const(prompts, steps):
    return [0.0] * len(steps), [0] * len(steps)


def prefer_answer(prompts, steps):
    return [float(bool(s) and s[-1].startswith("A:")) for s in steps], [1] * len(steps)


def test_ties_keep_lower_index_and_max_steps_truncates():
    s = Scripted(eos_depth=99)
    res = beam_search(s, TASK, QUESTIONS[:2], search=SearchConfig(expansions=2, max_steps=3, max_step_tokens=4), budget=6, step_score_fn=const,
                      final_score_fn=const, seed=0)
    assert len(s.calls) == 3
    # B = 3, M = 2: the root gives 6 candidates "0\n".."5\n"; all tie -> the first 3 are kept
    assert s.calls[0][1] == 6 and s.calls[1][1] == 2
    p0 = TASK.prompt(QUESTIONS[0])
    assert [p for p in s.calls[1][0] if p.startswith(p0)] == [p0 + "0\n", p0 + "1\n", p0 + "2\n"]
    assert ([p for p in s.calls[2][0] if p.startswith(p0)]
            == [p0 + "0\n0\n", p0 + "0\n1\n", p0 + "1\n0\n"])
    for r in res:  # nothing finished: the pool is the last round's kept beams, first one wins the tie
        assert r["response"] == "0\n0\n0\n" and r["finish"] == "max_steps"
        assert r["gen_tokens"] == 2 * (6 + 3 * 2 + 3 * 2)
        assert r["n_calls"] == 6 + 6 + 6 + 3  # step scores of 3 rounds, then the final pool


def test_finished_beams_leave_and_search_stops():
    s = Scripted(eos_depth=2)
    res = beam_search(s, TASK, QUESTIONS, search=SearchConfig(expansions=2, max_steps=10, max_step_tokens=4), budget=4, step_score_fn=prefer_answer,
                      final_score_fn=const, seed=0)
    # rounds at depth 0, 1, 2; at depth 2 both beams' answers are kept, finish, and the search stops
    assert len(s.calls) == 3
    for r in res:
        assert r["finish"] == "eos" and r["response"] == "0\n0\nA:1"
        assert TASK.grade(r["response"], "1") == 1
        assert r["n_calls"] == 4 + 4 + 4 + 2


def test_effective_reward():
    steps = [["a\n", "b"], []]
    pqv = {0: np.array([0.1, 0.4, 0.7]), 1: np.array([0.6])}
    pav = {0: np.array([0.2, 0.5, 0.3]), 1: np.array([0.9])}
    pqv_fn = lambda p, s: ([pqv[i] for i in range(len(s))], [3, 5])
    pav_fn = lambda p, s: ([pav[i] for i in range(len(s))], [7, 11])
    scores, tokens = effective_reward(pqv_fn, pav_fn, 2.0)(["x", "y"], steps)
    assert scores == pytest.approx([0.7 + 2.0 * (0.3 - 0.5), 0.6])
    assert tokens == [10, 16]
    scores, tokens = effective_reward(pqv_fn, pav_fn, 0.5)(["x", "y"], steps)
    assert scores == pytest.approx([0.7 + 0.5 * (0.3 - 0.5), 0.6])

    def never(p, s):
        raise AssertionError("pav_fn called with alpha = 0")

    scores, tokens = effective_reward(pqv_fn, never, 0.0)(["x", "y"], steps)
    assert scores == pytest.approx([0.7, 0.6]) and tokens == [3, 5]
    assert last_value(pav_fn)(["x", "y"], steps) == ([0.3, 0.9], [7, 11])
    with pytest.raises(ValueError, match="one per state"):
        effective_reward(pqv_fn, pav_fn, 1.0)(["x", "y"], [["a\n"], []])
    with pytest.raises(ValueError, match="needs a pav"):
        effective_reward(pqv_fn, None, 1.0)


def test_beam_search_with_effective_reward():
    # per-state fakes shaped like the verifier's score_fn: values at h = 0..H, tokens per item
    def pqv_fn(prompts, steps):
        return [np.array([0.0] + [2.0 if a.startswith("A:") else float(a.startswith("1")) for a in s])
                for s in steps], [10] * len(steps)

    def pav_fn(prompts, steps):
        return [np.zeros(len(s) + 1) for s in steps], [1] * len(steps)

    s = Scripted(eos_depth=2)
    res = beam_search(s, TASK, QUESTIONS[:1], search=SearchConfig(expansions=2, max_steps=10, max_step_tokens=4), budget=4, step_score_fn=effective_reward(pqv_fn, pav_fn, 1.0),
                      final_score_fn=last_value(pqv_fn), seed=0)
    p = TASK.prompt(QUESTIONS[0])
    assert s.calls[1][0] == [p + "1\n", p + "0\n"]  # best first; the tie among the rest -> lower index
    assert s.calls[2][0] == [p + "1\n1\n", p + "0\n1\n"]
    (r,) = res
    assert r["response"] == "1\n1\nA:1" and r["score"] == 2.0 and r["finish"] == "eos"
    assert r["verifier_tokens"] == 3 * 4 * 11 + 2 * 10 and r["n_calls"] == 3 * 4 + 2
