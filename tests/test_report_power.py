"""Minimum detectable effects and the standard errors behind them."""
import math

import numpy as np
import pytest

from pavflow.report.power import mde, n_for_half_width, paired_se, se_from_ci, unpaired_se


def test_mde_is_2_8_standard_errors_at_the_usual_level_and_power():
    assert mde(1.0) == pytest.approx(1.96 + 0.8416, abs=1e-3)
    assert mde(0.02) == pytest.approx(0.056, abs=1e-3)


def test_paired_se_uses_the_per_problem_differences():
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1])
    assert paired_se(a, a) == 0.0
    b = np.array([1, 0, 0, 1, 1, 0, 0, 1])
    d = a - b
    assert paired_se(a, b) == pytest.approx(d.std(ddof=1) / math.sqrt(8))
    assert math.isnan(paired_se([1], [0]))


def test_unpaired_se_is_welch():
    assert unpaired_se([0.5, 0.6, 0.7], [0.5, 0.5, 0.5]) == pytest.approx(0.1 / math.sqrt(3))
    assert math.isnan(unpaired_se([0.5], [0.4, 0.6]))


def test_items_needed_for_a_half_width():
    # per-problem differences in {-1, 0, 1} with 30% discordant pairs: sd ~ 0.55 -> ~730 problems for +-4 points
    assert 700 < n_for_half_width(math.sqrt(0.3), 0.04) < 760


def test_mde_with_few_seeds_uses_t_quantiles():
    from scipy.stats import t
    assert mde(1.0, df=4) == pytest.approx(t(4).ppf(0.975) + t(4).ppf(0.8))
    assert mde(1.0, df=4) > mde(1.0) and mde(1.0, df=1e7) == pytest.approx(mde(1.0), abs=1e-4)


def test_the_se_a_ci_implies():
    assert se_from_ci(-0.0196, 0.0196) == pytest.approx(0.01, abs=1e-5)
    assert se_from_ci(0.0, 0.0) == 0.0


def test_n_for_ci_scales_the_width_as_one_over_root_n():
    from pavflow.report.power import n_for_ci
    # +-6 points on 256 problems: +-4 needs (6/4)^2 = 2.25 times as many
    assert n_for_ci(-0.06, 0.06, 256) == 576
    assert n_for_ci(0.0, 0.04, 3, half_width=0.04) == 1  # already narrower than asked
    assert n_for_ci(0.1, 0.1, 10) is None and n_for_ci(float("nan"), 0.1, 10) is None
    assert n_for_ci(-0.1, float("inf"), 10) is None
