import math
import sys

import numpy as np
import pytest

from pavflow.verifiers.metrics import advantages, auroc, brier, calibration_bins, ece, rankdata


def test_metrics_module_imports_no_torch():
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


def test_auroc_matches_mann_whitney():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    s, y = rng.integers(0, 7, 300).astype(float), rng.integers(0, 2, 300)
    u = stats.mannwhitneyu(s[y == 1], s[y == 0], method="asymptotic").statistic
    assert auroc(s, y) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-12)


def test_calibration_bins_out_of_range_predictions_go_to_the_ends():
    bins = calibration_bins([-0.1, 1.2, 0.5], [0, 1, 1], n_bins=4)
    assert [(b[0], b[3]) for b in bins] == [(0.125, 1), (0.625, 1), (0.875, 1)]
    assert bins[0][1] == pytest.approx(-0.1) and calibration_bins([], []) == []


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


# --- rank correlation and ProcessBench first-error metrics ---------------------------------------

from pavflow.verifiers.metrics import (  # noqa: E402
    first_error, first_error_f1, fit_threshold, predicted_first_error, spearman,
)


def test_spearman_hand_computed():
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (-1, 1, -1, 1, 0) -> 1 - 24 / 120
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # ties: ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4); centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # r = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))
    assert spearman([0.1, 0.5, 0.9], [3, 2, 1]) == pytest.approx(-1.0)
    x = np.array([0.3, 0.1, 0.7, 0.7, 0.2])
    assert spearman(x, np.exp(5 * x)) == pytest.approx(1.0)  # ranks only


def test_spearman_edges():
    assert math.isnan(spearman([], []))
    assert math.isnan(spearman([0.4], [0.2]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1, 2, 3], [0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="3 predictions but 2 targets"):
        spearman([1, 2, 3], [1, 2])


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        x, y = rng.integers(0, 6, n), rng.integers(0, 4, n) + 0.1 * rng.integers(0, 2, n)
        want = stats.spearmanr(x, y).statistic if np.ptp(x) and np.ptp(y) else float("nan")
        got = spearman(x, y)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("values, zero, want", [
    ([0.5, 0.25, 0.0, 0.0], 0.0, 2),
    ([0.5, 0.5, 1.0], 0.0, None),
    ([0.5], 0.0, None),               # empty response: no steps
    ([0.5, 0.0, 0.5, 0.0], 0.0, 1),   # the first zero counts even if values recover
    ([0.0, 0.5, 1.0], 0.0, -1),       # unsolved from s_0: callers exclude it
    ([0.0], 0.0, -1),
    ([0.5, 0.2, 0.1, 0.05], 0.1, 2),  # a value equal to `zero` counts
    ([0.1, 0.5], 0.1, -1),
])
def test_first_error(values, zero, want):
    assert first_error(values, zero) == want


@pytest.mark.parametrize("values, threshold, want", [
    ([0.9, 0.6, 0.4, 0.2], 0.5, 2),
    ([0.9, 0.6, 0.4, 0.2], 0.4, 3),    # strict: 0.4 is not below 0.4
    ([0.9, 0.6, 0.4, 0.2], 0.1, None),
    ([0.1, 0.9, 0.8], 0.5, None),      # v(s_0) is not a step
    ([0.1], 1.0, None),
    ([0.9, 0.3, 0.8, 0.1], 0.5, 1),
])
def test_predicted_first_error(values, threshold, want):
    assert predicted_first_error(values, threshold) == want


def test_first_error_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        first_error([])
    with pytest.raises(ValueError, match="shape"):
        predicted_first_error(np.zeros((2, 2)), 0.5)


def test_first_error_f1_hand_computed():
    pred = [2, 3, None, None, 1]
    true = [2, 2, None, 1, None]
    # errors: 2 == 2 hit, 3 != 2, None != 1 -> 1/3; correct: None hit, 1 miss -> 1/2
    # f1 = 2 (1/3)(1/2) / (5/6) = 0.4
    assert first_error_f1(pred, true) == pytest.approx(
        {"acc_error": 1 / 3, "acc_correct": 0.5, "f1": 0.4, "n_error": 3, "n_correct": 2})


def test_first_error_f1_edges():
    r = first_error_f1([None, None], [1, 2])  # no error-free responses: f1 undefined
    assert r["acc_error"] == 0.0 and math.isnan(r["acc_correct"]) and math.isnan(r["f1"])
    assert (r["n_error"], r["n_correct"]) == (2, 0)
    r = first_error_f1([None], [None])
    assert r["acc_correct"] == 1.0 and math.isnan(r["acc_error"]) and math.isnan(r["f1"])
    assert first_error_f1([1, None], [2, None])["f1"] == 0.0  # acc_error = 0
    assert first_error_f1([1, 1], [1, None])["f1"] == 0.0     # acc_correct = 0
    assert first_error_f1([1, None], [1, None])["f1"] == 1.0
    assert math.isnan(first_error_f1([], [])["f1"])
    with pytest.raises(ValueError, match="-1"):
        first_error_f1([None, 1], [-1, 1])
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        first_error_f1([None, 1], [1])


PREDS = [np.array([0.9, 0.8, 0.3, 0.1]), np.array([0.9, 0.7, 0.6, 0.9]), np.array([0.8, 0.2, 0.1])]
TRUES = [2, None, 1]


def test_fit_threshold_hand_computed():
    # t = 0.3: r1 -> 3 (miss), r3 -> 1, r2 None: f1 = 2/3.  t = 0.6: r1 -> 2, r3 -> 1, r2 None (0.6 is
    # not below 0.6): f1 = 1.  t = 0.7: r2 -> 2: f1 = 0.  Default grid {0, .1, .2, .3, .6, .7, .8, .9, 1}
    assert fit_threshold(PREDS, TRUES) == 0.6
    # every t in (0.3, 0.6] scores 1: ties go to the smallest grid point
    assert fit_threshold(PREDS, TRUES, grid=np.linspace(0, 1, 101)) == pytest.approx(0.31)
    assert fit_threshold(PREDS, TRUES, grid=[0.5, 0.4, 0.35]) == 0.35  # grid order does not matter
    f1 = first_error_f1([predicted_first_error(p, 0.6) for p in PREDS], TRUES)["f1"]
    assert f1 == 1.0


def test_fit_threshold_needs_both_classes():
    with pytest.raises(ValueError, match="got 2 and 0"):
        fit_threshold(PREDS[:1] + PREDS[2:], [2, 1])
    with pytest.raises(ValueError, match="-1"):
        fit_threshold(PREDS, [-1, None, 1])
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        fit_threshold(PREDS, [None, 1])


def test_fit_threshold_matches_brute_force():
    rng = np.random.default_rng(7)
    for trial in range(15):
        preds, trues = [], []
        for _ in range(int(rng.integers(4, 30))):
            H = int(rng.integers(0, 8))
            v = np.round(rng.random(H + 1), 1)  # coarse values: many ties
            preds.append(v)
            trues.append(None if H == 0 or rng.random() < 0.4 else int(rng.integers(1, H + 1)))
        if all(t is None for t in trues) or all(t is not None for t in trues):
            continue
        grid = np.unique(np.concatenate([[0.0, 1.0], np.linspace(0, 1, 41)] + [p[1:] for p in preds]))
        brute = [first_error_f1([predicted_first_error(p, t) for p in preds], trues)["f1"] for t in grid]
        t = fit_threshold(preds, trues, grid=grid)
        assert t == grid[int(np.argmax(brute))], trial
        # the default grid loses nothing against the finer one
        t0 = fit_threshold(preds, trues)
        f1_0 = first_error_f1([predicted_first_error(p, t0) for p in preds], trues)["f1"]
        assert f1_0 == pytest.approx(max(brute)), trial
