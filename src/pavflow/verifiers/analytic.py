"""The analytic PAV: a trained pqv already implies the value under every Best-of-K prover over pi,

    V^{BoK(pi)}(s) = 1 - (1 - V^pi(s))^K,   so   A^mu(s_h, a_h) = (1 - V^pi(s_h))^K - (1 - V^pi(s_{h+1}))^K,

with no further training. Verifier `pav_analytic_k<K>` (prover `analytic_k<K>`) is this transform of the
pqv's values; whether it matches the trained `pav_base_k<K>` is an empirical question the quality
table, search and RL answer.
"""
from __future__ import annotations

import numpy as np

from pavflow.labels import bok_of_value


class AnalyticPAV:
    """`.score(prompts, steps) -> (values, tokens)` of V^{BoK(pi)} from a pqv verifier's scores."""

    def __init__(self, pqv, k: int):
        if k < 1:
            raise ValueError(f"AnalyticPAV: prover K must be >= 1, got {k}")
        self.pqv, self.k = pqv, k

    def score(self, prompts: list[str], steps: list[list[str]]) -> tuple[list[np.ndarray], list[int]]:
        values, tokens = self.pqv.score(prompts, steps)
        return [bok_of_value(np.clip(v, 0.0, 1.0), self.k) for v in values], tokens
