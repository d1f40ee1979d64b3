"""Oracle provers: values estimated from fresh Monte-Carlo rollouts at the states that search or RL
actually visits, so no verifier error enters. This is the paper's didactic setting and its section 7
"rollouts from prover policies during online RL"; VinePPO's MC advantages are the case mu = pi.

An `MCOracle` holds a sampler of the rollout policy rho. Asked about a state s_h = prompt + steps[:h],
it samples n continuations from it and counts the correct ones, c; a finished response (its last step
does not end with the step separator: EOS or out of tokens) is graded instead (n = 1, c = its grade).
Counts are cached by state text: a state is rolled out once per oracle however often it is visited,
and identical states of different items share one set of rollouts. From the counts, V^{BoK_K(rho)}
comes from the one Best-of-K estimator (labels.bok_value), so one set of rollouts serves every K.

Compute: the tokens a call's rollouts generated, plus the prompt tokens the sampler encoded for them,
are charged to the first item of the call that asked for the state; a cached state costs nothing.
"""
from __future__ import annotations

import numpy as np

from pavflow.labels import bok_value
from pavflow.seeds import derive_seed

MC_VERIFIER = "mc"  # SEARCH's verifier of beam search scored by this oracle (search_beam_mc)


class MCOracle:
    def __init__(self, sampler, task, answers: dict[str, str], *, n: int, seed: int, temperature: float,
                 max_new_tokens: int):
        """`answers` maps each prompt (task.prompt(question)) to its reference answer."""
        if n < 1:
            raise ValueError(f"MCOracle: n must be >= 1, got {n}")
        self.sampler, self.task, self.answers, self.n = sampler, task, answers, n
        self.seed, self.temperature, self.max_new_tokens = seed, temperature, max_new_tokens
        self.cache: dict[tuple[str, str], tuple[int, int]] = {}  # (prompt, steps text) -> (n, c)
        self.calls = 0
        self.rollout_tokens = 0  # every token the oracle's rollouts cost so far

    def counts(self, prompts: list[str], steps: list[list[str]], hs: list[list[int]]):
        """(n, c) at the states hs[i] of each item i (arrays like hs[i]) and the tokens each item cost."""
        sep, need, cost = self.task.step_sep, {}, [0] * len(prompts)
        for i, (p, st, h_list) in enumerate(zip(prompts, steps, hs)):
            for h in h_list:
                key = (p, "".join(st[:h]))
                if key in self.cache or key in need:
                    continue
                if h == len(st) and st and not st[-1].endswith(sep):  # finished: graded, not sampled
                    self.cache[key] = (1, self.task.grade(key[1], self.answers[p]))
                else:
                    need[key] = i
        if need:
            keys = list(need)
            out = self.sampler.sample([p + done for p, done in keys], self.n,
                                      seed=derive_seed(self.seed, "call", self.calls), temperature=self.temperature,
                                      max_new_tokens=self.max_new_tokens)
            self.calls += 1
            for b, (p, done) in enumerate(keys):
                comps = out.completions[b]
                self.cache[(p, done)] = (self.n, sum(self.task.grade(done + c.text, self.answers[p]) for c in comps))
                t = out.prompt_tokens[b] + sum(c.gen_tokens for c in comps)
                cost[need[(p, done)]] += t
                self.rollout_tokens += t
        n_c = [np.array([self.cache[(p, "".join(st[:h]))] for h in h_list], dtype=np.int64).reshape(-1, 2)
               for p, st, h_list in zip(prompts, steps, hs)]
        return [x[:, 0] for x in n_c], [x[:, 1] for x in n_c], cost

    def state_dict(self) -> dict:
        """What a resumed run needs to continue exactly: the counts so far and the call counter."""
        return {"cache": [(p, d, n, c) for (p, d), (n, c) in self.cache.items()], "calls": self.calls,
                "rollout_tokens": self.rollout_tokens}

    def load_state_dict(self, state: dict) -> None:
        self.cache = {(p, d): (n, c) for p, d, n, c in state["cache"]}
        self.calls, self.rollout_tokens = state["calls"], state["rollout_tokens"]

    def values(self, k: int):
        """ScoreFn: V^{BoK_k(rho)} at every state s_0..s_H of each item, and the tokens it cost. It carries
        the oracle's state_dict / load_state_dict, so a training loop can checkpoint it."""
        oracle = self

        class Values:
            state_dict, load_state_dict = oracle.state_dict, oracle.load_state_dict

            def __call__(self, prompts, steps):
                n, c, cost = oracle.counts(prompts, steps, [list(range(len(s) + 1)) for s in steps])
                return [bok_value(a, b, k) for a, b in zip(n, c)], cost
        return Values()

    def last_value(self, k: int = 1):
        """StepScoreFn: V^{BoK_k(rho)} at the last state s_H of each item (k = 1: Q^rho of its last step)."""
        def score(prompts, steps):
            n, c, cost = self.counts(prompts, steps, [[len(s)] for s in steps])
            return [float(bok_value(a, b, k)[0]) for a, b in zip(n, c)], cost
        return score


def effective_reward(q_pi: MCOracle, prover: MCOracle, k: int, alpha: float):
    """StepScoreFn of beam search on the MC effective reward of the newest step a_H of each item:
    Q^pi(s_{H-1}, a_H) + alpha * A^mu(s_{H-1}, a_H) = V^pi(s_H) + alpha * (V^mu(s_H) - V^mu(s_{H-1})),
    mu = BoK_k(rho), every value from fresh rollouts (q_pi's of the base policy, prover's of rho; the
    same oracle when rho = pi). An item with no steps has no progress: its score is V^pi(s_0)."""
    def score(prompts, steps):
        n, c, cost = q_pi.counts(prompts, steps, [[len(s)] for s in steps])
        out = [float(bok_value(a, b, 1)[0]) for a, b in zip(n, c)]
        if alpha != 0:
            hs = [[len(s) - 1, len(s)] if s else [0] for s in steps]
            n, c, cost_mu = prover.counts(prompts, steps, hs)
            for i, (a, b) in enumerate(zip(n, c)):
                v = bok_value(a, b, k)
                out[i] += alpha * (float(v[1] - v[0]) if len(v) == 2 else 0.0)
            cost = [x + y for x, y in zip(cost, cost_mu)]
        return out, cost
    return score
