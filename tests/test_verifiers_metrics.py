import math
import sys

import numpy as np
import pytest

from pavflow.verifiers.metrics import advantages, auroc, brier, calibration_bins, ece, rankdata


def test_metrics_module_is_numpy_only():
    import subprocess
    code = ("import sys; import pavflow.verifiers.metrics; "
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[1] / "src")})


def test_brier():
    assert brier([0.0, 1.0, 0.5, 0.8], [0, 1, 1, 0]) == pytest.approx((0 + 0 + 0.25 + 0.64) / 4)
    assert brier([0.3, 0.3], [0.3, 0.5]) == pytest.approx(0.02)  # soft targets
    assert math.isnan(brier([], []))
    with pytest.raises(ValueError, match="3 predictions but 2 targets"):
        brier([0.1, 0.2, 0.3], [0, 1])


def test_rankdata_ties_averaged():
    np.testing.assert_array_equal(rankdata(np.array([10, 20, 20, 5, 20])), [2, 4, 4, 1, 4])


def test_auroc_hand_computed_with_ties():
    # positives: 0.8, 0.4, 0.4 ; negatives: 0.4, 0.1
    # pairs (pos > neg = 1, tie = 1/2): 0.8: 1 + 1; 0.4: 0.5 + 1; 0.4: 0.5 + 1 -> 5 / 6
    scores = [0.8, 0.4, 0.4, 0.4, 0.1]
    labels = [1, 1, 1, 0, 0]
    assert auroc(scores, labels) == pytest.approx(5 / 6)
    # brute force over pairs agrees on a random case with many ties
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 200), rng.integers(0, 2, 200)
    pos, neg = s[y == 1], s[y == 0]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert auroc(s, y) == pytest.approx(brute)


def test_auroc_edges():
    assert auroc([0.1, 0.2, 0.9], [0, 0, 1]) == 1.0
    assert auroc([0.9, 0.2, 0.1], [0, 0, 1]) == 0.0
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))
    assert math.isnan(auroc([0.1, 0.2], [0, 0]))
    with pytest.raises(ValueError, match="0/1"):
        auroc([0.1, 0.2], [0.5, 1])


def test_calibration_bins():
    pred = [0.05, 0.15, 0.12, 0.95, 1.0]
    target = [0, 1, 0, 1, 1]
    bins = calibration_bins(pred, target, n_bins=10)
    assert [b[0] for b in bins] == pytest.approx([0.05, 0.15, 0.95])
    assert [b[3] for b in bins] == [1, 2, 2]  # 1.0 falls in the last bin
    assert bins[1][1] == pytest.approx(0.135) and bins[1][2] == pytest.approx(0.5)
    assert bins[2][1] == pytest.approx(0.975) and bins[2][2] == 1.0
    assert ece(pred, target, 10) == pytest.approx((1 * 0.05 + 2 * abs(0.135 - 0.5) + 2 * 0.025) / 5)
    assert calibration_bins([0.3], [1], n_bins=2) == [(0.25, 0.3, 1.0, 1)]


def test_advantages():
    v = np.array([0.2, 0.5, 0.4, 1.0])
    np.testing.assert_allclose(advantages(v), [0.3, -0.1, 0.6])
    assert advantages(np.array([0.7])).shape == (0,)
    assert advantages(v).sum() == pytest.approx(v[-1] - v[0])  # progress telescopes
    with pytest.raises(ValueError, match="shape"):
        advantages(np.zeros((2, 3)))
