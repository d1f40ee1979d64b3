"""The analytic PAV: V^{BoK(pi)} = 1 - (1 - V^pi)^K from a pqv, no training."""
import numpy as np
import pytest

from pavflow.labels import bok_value
from pavflow.verifiers.analytic import AnalyticPAV
from pavflow.verifiers.metrics import advantages


class FixedPQV:
    """A pqv stand-in returning given values and token counts."""

    def __init__(self, values, tokens):
        self.values, self.tokens, self.calls = values, tokens, 0

    def score(self, prompts, steps):
        self.calls += 1
        return [np.asarray(v, dtype=np.float64) for v in self.values], list(self.tokens)


def test_values_are_bok_of_the_pqv_and_progress_the_paper_formula():
    pqv = FixedPQV([[0.5, 0.25, 0.0], [0.2, 0.9]], [7, 5])
    pav = AnalyticPAV(pqv, 2)
    values, tokens = pav.score(["p", "q"], [["a", "b"], ["c"]])
    assert np.allclose(values[0], [0.75, 0.4375, 0.0]) and np.allclose(values[1], [0.36, 0.99])
    assert tokens == [7, 5] and pqv.calls == 1  # costs exactly the pqv's scoring
    # A^mu(s_h, a_h) = (1 - V(s_h))^K - (1 - V(s_{h+1}))^K
    v = np.array([0.5, 0.25, 0.0])
    assert np.allclose(advantages(values[0]), (1 - v[:-1]) ** 2 - (1 - v[1:]) ** 2)


def test_k1_is_the_pqv_and_values_stay_in_range():
    pqv = FixedPQV([[0.0, 0.3, 1.0], [1.0000001, -1e-7]], [1, 1])  # a sigmoid never leaves [0, 1]; be safe
    same, _ = AnalyticPAV(pqv, 1).score(["p", "q"], [["a", "b"], ["c"]])
    assert np.allclose(same[0], [0.0, 0.3, 1.0])
    big, _ = AnalyticPAV(pqv, 32).score(["p", "q"], [["a", "b"], ["c"]])
    assert all(((0 <= v) & (v <= 1)).all() for v in big)


def test_matches_the_label_estimator_on_exact_values():
    # a pqv that predicted c/n exactly gives the plug-in BoK labels of the same pool
    n, c = np.array([8, 8, 8]), np.array([0, 3, 8])
    values, _ = AnalyticPAV(FixedPQV([c / n], [1]), 16).score(["p"], [["a", "b"]])
    assert np.allclose(values[0], bok_value(n, c, 16))  # K > n: plug-in


def test_rejects_bad_k():
    with pytest.raises(ValueError, match="K must be >= 1"):
        AnalyticPAV(FixedPQV([], []), 0)
