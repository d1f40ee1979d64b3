"""The verifier-quality table on hand-built predictions and fresh MC truths."""
import math

import numpy as np
import pytest

from pavflow.verifiers.metrics import spearman
from pavflow.verifiers.quality import Scored, fit_first_error_threshold, quality_rows

A = np.array

# three held-out responses: fresh Q^pi, the verifier's values, outcomes
TRUTH = [A([0.5, 0.5, 0.0, 0.0]),  # first error at step 2
         A([1.0, 1.0, 1.0]),  # no error
         A([0.0, 0.0])]  # unsolvable from s_0: excluded from first-error F1
PRED = [A([0.6, 0.5, 0.1, 0.0]), A([0.9, 0.8, 0.95]), A([0.2, 0.1])]
OUTCOMES = A([0, 1, 0])
GROUPS = ["p0", "p0", "p1"]  # responses 0 and 1 answer one problem


def scored(values):
    return Scored(values, [np.diff(v) for v in values])


def table(threshold=0.3, **kw):
    metrics, calib = quality_rows("v", scored(PRED), TRUTH, [np.diff(t) for t in TRUTH], TRUTH, OUTCOMES,
                                  threshold, GROUPS, n_boot=200, **kw)
    return {m: (x, lo, hi, n) for m, x, lo, hi, n in metrics.select("metric", "value", "ci_low", "ci_high", "n")
            .iter_rows()}, calib


def test_hand_computed_metrics():
    m, calib = table()
    # Brier pools the 9 states: (0.01 + 0 + 0.01 + 0) + (0.01 + 0.04 + 0.0025) + (0.04 + 0.01)
    assert m["brier"][0] == pytest.approx(0.1225 / 9) and m["brier"][3] == 9
    assert m["brier"][1] <= m["brier"][0] <= m["brier"][2]
    assert m["outcome_auroc"][0] == 1.0 and m["outcome_auroc"][3] == 3
    # threshold 0.3: response 0's first value below it is at h = 2 (the true first error), response 1 none
    assert m["first_error_f1"][0] == 1.0 and m["first_error_f1"][3] == 2
    assert m["first_error_acc_error"][0] == 1.0 and m["first_error_acc_correct"][0] == 1.0
    assert m["first_error_threshold"][0] == 0.3
    progress = np.concatenate([np.diff(v) for v in PRED]), np.concatenate([np.diff(t) for t in TRUTH])
    assert m["spearman_progress"][0] == pytest.approx(spearman(*progress)) and m["spearman_progress"][3] == 6
    assert calib["count"].sum() == 9 and calib["subject"].unique().to_list() == ["v"]


def test_a_wrong_threshold_misses_the_first_error():
    m, _ = table(threshold=0.05)  # response 0 is then flagged at h = 3, a step late
    assert m["first_error_acc_error"][0] == 0.0 and m["first_error_f1"][0] == 0.0


def test_perfect_predictions_score_perfectly():
    metrics, _ = quality_rows("oracle", scored(TRUTH), TRUTH, [np.diff(t) for t in TRUTH], TRUTH, OUTCOMES, 0.5,
                              GROUPS, n_boot=50)
    m = dict(zip(metrics["metric"], metrics["value"]))
    assert m["brier"] == 0.0 and m["ece"] == 0.0 and m["first_error_f1"] == 1.0


def test_threshold_is_fitted_on_train_and_nan_without_both_classes():
    train_truth = [A([0.5, 0.0]), A([0.5, 0.5, 1.0]), A([0.7, 0.4, 0.0])]
    train_pred = [A([0.5, 0.2]), A([0.6, 0.6, 0.9]), A([0.7, 0.5, 0.1])]
    thr = fit_first_error_threshold(scored(train_pred), train_truth)
    assert 0.2 < thr <= 0.5  # separates 0.2 / 0.1 (errors) from 0.5+ (no error at that step)
    assert math.isnan(fit_first_error_threshold(scored([A([0.5, 0.6])]), [A([0.5, 1.0])]))
    m, _ = table(threshold=float("nan"))
    assert math.isnan(m["first_error_f1"][0]) and m["brier"][0] == pytest.approx(0.1225 / 9)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="response 1 has 3 predicted states but 2 true ones"):
        quality_rows("v", scored(PRED), [TRUTH[0], A([1.0, 1.0]), TRUTH[2]], [np.diff(t) for t in TRUTH], TRUTH,
                     OUTCOMES, 0.3, GROUPS)
    with pytest.raises(ValueError, match="3 responses but 2 truth"):
        quality_rows("v", scored(PRED), TRUTH[:2], [np.diff(t) for t in TRUTH], TRUTH, OUTCOMES, 0.3, GROUPS)


def test_within_problem_auroc_ignores_ranking_problems_by_difficulty():
    from pavflow.verifiers.metrics import within_auroc
    # problem a is easy (high scores), b hard; within each, the verifier ranks the wrong response first
    scores, labels, groups = A([0.9, 0.95, 0.1, 0.15]), A([1, 0, 1, 0]), ["a", "a", "b", "b"]
    from pavflow.verifiers.metrics import auroc
    assert auroc(scores, labels) == 0.25 and within_auroc(scores, labels, groups) == (0.0, 2)
    # a verifier that only knows difficulty: globally good (a's responses above b's), within problems chance
    assert auroc(A([0.9, 0.9, 0.1, 0.1]), A([1, 1, 0, 1])) > 0.5
    assert within_auroc(A([0.9, 0.9, 0.1, 0.1]), A([1, 0, 1, 0]), groups) == (0.5, 2)
    assert within_auroc(A([0.1, 0.9]), A([1, 1]), ["a", "a"])[1] == 0  # no problem with both outcomes
    m, _ = table()
    assert m["outcome_auroc_within"][0] == 1.0 and m["outcome_auroc_within"][3] == 1  # only p0 has both


def test_first_error_top1_finds_the_step_with_the_largest_predicted_drop():
    from pavflow.verifiers.metrics import first_error_top1
    assert first_error_top1([A([0.0, -0.5, 0.1]), A([-0.2, 0.0])], [2, 2]) == (0.5, 2)
    assert first_error_top1([A([0.1])], [None])[1] == 0
    m, _ = table()
    assert m["first_error_top1"][0] == 1.0 and m["first_error_top1"][3] == 1  # response 0's drop is at step 2
