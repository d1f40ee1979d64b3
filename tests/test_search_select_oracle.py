"""The val choice of (prover, alpha) and the oracle scorer, on hand-built toys."""
from collections import Counter

import polars as pl
import pytest

from pavflow.data import SEARCH, conform
from pavflow.policy.sampler import Completion, Samples
from pavflow.config import SearchConfig
from pavflow.search.beam import beam_search
from pavflow.search.oracle import mc_value_fn
from pavflow.search.select import choose_on_val
from pavflow.tasks.arith import Arith, ArithSpec

TASK = Arith(ArithSpec(), {"train": 1, "val": 1, "test": 1}, seed=0)


def val_rows(configs: dict, n_problems: int = 4, budget: int = 16) -> pl.DataFrame:
    """configs: (verifier, prover, k, alpha) -> number of problems solved."""
    rows = [dict(problem_id=f"v{i}", split="val", method="beam", verifier=v, prover=p, k=k, alpha=a,
                 budget=budget, correct=int(i < solved), gen_tokens=10, prompt_tokens=5, verifier_tokens=3)
            for (v, p, k, a), solved in configs.items() for i in range(n_problems)]
    return conform(pl.DataFrame(rows), SEARCH, "val")


def test_choose_on_val_takes_the_best_and_breaks_ties_the_documented_way():
    val = val_rows({("pqv", "", 0, 0.0): 2, ("pqv+pav", "base_k1", 1, 1.0): 3,
                    ("pqv+pav", "base_k4", 4, 2.0): 3, ("pqv+pav", "base_k4", 4, 0.5): 3,
                    ("pqv+pav", "base_k16", 16, 0.5): 3, ("pqv+pav", "base_k2", 2, 4.0): 1})
    c = choose_on_val(val)
    # four configurations tie at 3/4: the smallest alpha (0.5), then the smallest K (4)
    assert (c["prover"], c["k"], c["alpha"], c["val_acc"], c["n_problems"], c["budget"]) == \
        ("base_k4", 4, 0.5, 0.75, 4, 16)
    assert choose_on_val(val.sample(fraction=1.0, shuffle=True, seed=3)) == c  # row order is irrelevant
    best_alone = val_rows({("pqv", "", 0, 0.0): 4, ("pqv+pav", "base_k4", 4, 1.0): 4})
    assert choose_on_val(best_alone)["alpha"] == 0.0 and choose_on_val(best_alone)["prover"] == ""
    with pytest.raises(ValueError, match="one budget"):
        choose_on_val(pl.concat([val, val_rows({("pqv", "", 0, 0.0): 1}, budget=4)]))
    with pytest.raises(ValueError, match="no validation"):
        choose_on_val(val.clear())


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


def test_oracle_scores_by_rollouts_and_counts_their_tokens():
    s = MCScripted()
    q = "2+3"
    prompt = TASK.prompt(q)
    fn = mc_value_fn(s, TASK, {prompt: "1"}, n=4, seed=0, temperature=1.0, max_new_tokens=8)
    scores, tokens = fn([prompt, prompt, prompt, prompt], [["1\n"], ["0\n"], ["1\n", "A:1"], ["A:2"]])
    # open states: the fraction of 4 rollouts that end correct; finished responses: their grade
    assert scores == [0.5, 0.0, 1.0, 0.0]
    (rollout_prompts, n, kw), = s.calls
    assert rollout_prompts == [prompt + "1\n", prompt + "0\n"] and n == 4 and not kw.get("stop_at_step")
    assert tokens == [len(prompt) + 2 + 4 * 3, len(prompt) + 2 + 4 * 3, 0, 0]
    seeds = {kw["seed"]}
    fn([prompt], [["1\n"]])
    assert s.calls[-1][2]["seed"] not in seeds  # a fresh seed per call


def test_oracle_beam_search_keeps_the_candidate_the_rollouts_favour():
    s = MCScripted()
    prompt = TASK.prompt("2+3")
    fn = mc_value_fn(s, TASK, {prompt: "1"}, n=4, seed=0, temperature=1.0, max_new_tokens=8)
    (r,) = beam_search(s, TASK, ["2+3"], search=SearchConfig(expansions=4, max_steps=1, max_step_tokens=4), budget=4, step_score_fn=fn, final_score_fn=fn,
                       seed=0)
    # one beam of 4 candidates "0\n".."3\n": only "1\n" has correct rollouts
    assert r["response"] == "1\n" and r["score"] == 0.5
    rollouts = [c for c in s.calls if not c[2].get("stop_at_step")]
    assert Counter(len(c[0]) for c in rollouts) == Counter({4: 1, 1: 1})  # 4 candidates, then the final pool
    # the oracle's rollouts are its verifier cost: prompt tokens + 4 x 3 generated per scored state
    expected = sum(len(p) + 4 * 3 for c in rollouts for p in c[0])
    assert r["verifier_tokens"] == expected and r["gen_tokens"] == 4 * 3
