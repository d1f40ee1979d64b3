"""Oracle provers from fresh MC rollouts, on a scripted sampler: counts, the Best-of-K values, caching
and deduplication of states, token accounting, and beam search on the oracle's scores."""
from collections import Counter

import numpy as np
import pytest

from pavflow.config import SearchConfig
from pavflow.labels import bok_value
from pavflow.oracle import MCOracle, effective_reward
from pavflow.policy.sampler import Completion, Samples
from pavflow.search.beam import beam_search
from pavflow.tasks.arith import Arith, ArithSpec

TASK = Arith(ArithSpec(), {"train": 1, "val": 1, "test": 1}, seed=0)
PROMPT = TASK.prompt("2+3")


class MCScripted:
    """Fake sampler. At the first step, copy c writes f"{c}\\n". A rollout from a prefix whose first step
    is "1\\n" answers "A:1" (correct for the question below) in copies 0 and 1 of every 4, else "A:2"; from
    any other prefix it answers "A:2". Every completion costs 3 tokens; every prompt len(prompt)."""

    def __init__(self):
        self.calls = []

    def sample(self, prompts, n=1, **kw):
        self.calls.append((list(prompts), n, kw))
        comps = []
        for p in prompts:
            body = p.split("\n", 1)[1] if "\n" in p else ""
            if kw.get("stop_at_step"):
                comps.append([Completion([0, 0, 0], f"{c}\n", "step") for c in range(n)])
            else:
                good = body.startswith("1\n")
                comps.append([Completion([0, 0, 0], "A:1" if good and c % 4 < 2 else "A:2", "eos")
                              for c in range(n)])
        return Samples(comps, [len(p) for p in prompts])


def oracle(s, n=4):
    return MCOracle(s, TASK, {PROMPT: "1"}, n=n, seed=0, temperature=1.0, max_new_tokens=8)


def test_oracle_scores_by_rollouts_and_counts_their_tokens():
    s = MCScripted()
    fn = oracle(s).last_value()
    scores, tokens = fn([PROMPT] * 4, [["1\n"], ["0\n"], ["1\n", "A:1"], ["A:2"]])
    # open states: the fraction of 4 rollouts that end correct; finished responses: their grade
    assert scores == [0.5, 0.0, 1.0, 0.0]
    (rollout_prompts, n, kw), = s.calls
    assert rollout_prompts == [PROMPT + "1\n", PROMPT + "0\n"] and n == 4 and not kw.get("stop_at_step")
    assert tokens == [len(PROMPT) + 2 + 4 * 3, len(PROMPT) + 2 + 4 * 3, 0, 0]


def test_a_state_is_rolled_out_once_however_often_it_is_visited():
    s = MCScripted()
    o = oracle(s)
    fn = o.last_value()
    # two items share their last state: one rollout set, charged to the first
    scores, tokens = fn([PROMPT, PROMPT], [["1\n"], ["1\n"]])
    assert scores == [0.5, 0.5] and tokens == [len(PROMPT) + 2 + 12, 0] and len(s.calls) == 1
    scores, tokens = fn([PROMPT], [["1\n"]])  # cached: no new rollouts, no cost
    assert scores == [0.5] and tokens == [0] and len(s.calls) == 1
    assert o.rollout_tokens == len(PROMPT) + 2 + 12


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_values_are_the_labels_best_of_k_estimate_on_the_same_counts(k):
    s = MCScripted()
    o = oracle(s)
    steps = [["1\n", "A:1"]]
    values, _ = o.values(k)([PROMPT], steps)
    n, c, _ = o.counts([PROMPT], steps, [[0, 1, 2]])
    # s_0 and s_1 sampled with n = 4 (c = 0 from the bare prompt, 2 from "1\n"); s_2 graded (n = 1, c = 1)
    assert n[0].tolist() == [4, 4, 1] and c[0].tolist() == [0, 2, 1]
    assert np.array_equal(values[0], bok_value(n[0], c[0], k))
    advantage = np.diff(values[0])
    assert np.array_equal(advantage, np.diff(bok_value(np.array([4, 4, 1]), np.array([0, 2, 1]), k)))


def test_effective_reward_adds_alpha_times_the_prover_advantage():
    s = MCScripted()
    o = oracle(s)
    fn = effective_reward(o, o, 4, alpha=2.0)
    (score,), _ = fn([PROMPT], [["1\n"]])
    v_mu = bok_value(np.array([4, 4]), np.array([0, 2]), 4)  # s_0, s_1
    assert score == pytest.approx(0.5 + 2.0 * (v_mu[1] - v_mu[0]))
    assert effective_reward(o, o, 4, alpha=0.0)([PROMPT], [["1\n"]])[0] == [0.5]


def test_oracle_beam_search_keeps_the_candidate_the_rollouts_favour():
    s = MCScripted()
    fn = oracle(s).last_value()
    (r,) = beam_search(s, TASK, ["2+3"], search=SearchConfig(expansions=4, max_steps=1, max_step_tokens=4),
                       budget=4, step_score_fn=fn, final_score_fn=fn, seed=0)
    # one beam of 4 candidates "0\n".."3\n": only "1\n" has correct rollouts
    assert r["response"] == "1\n" and r["score"] == 0.5
    rollouts = [c for c in s.calls if not c[2].get("stop_at_step")]
    assert Counter(len(c[0]) for c in rollouts) == Counter({4: 1})  # the final pool's states are cached
    # the oracle's rollouts are its verifier cost: prompt tokens + 4 x 3 generated per scored state
    expected = sum(len(p) + 4 * 3 for c in rollouts for p in c[0])
    assert r["verifier_tokens"] == expected and r["gen_tokens"] == 4 * 3
