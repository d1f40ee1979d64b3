"""How good is a verifier? Scored on held-out seed responses against a *fresh* MC pool (rollouts the
verifier's labels never came from), numpy + polars only.

Per verifier, over the states s_h (h = 0..H) of every held-out response:
    brier               mean (v_pred(s_h) - v_true(s_h))^2, v_true from the fresh pool under the
                        verifier's own target (V^mu of its prover for pav, Q^pi for the others)
    ece                 expected calibration error against the same truth (calibration curve alongside)
    spearman_progress   rank correlation of predicted progress (the verifier's own: value differences,
                        q_h - q_{h-1} for implicit PRMs) with the fresh MC progress of the same target
    outcome_auroc       v_pred(s_H) against the response's outcome, over all responses
    outcome_auroc_within  the same within each problem (mean over problems with both outcomes): what
                        search needs; the global AUROC also credits ranking problems by difficulty
    first_error_top1    among responses with a first error, the fraction whose most negative predicted
                        progress is at that step (no threshold shared across problems)
    first_error_f1      ProcessBench: the first step h whose fresh Q^pi(s_h) is 0 is the true first
                        error; the verifier predicts the first h with v_pred(s_h) < threshold, the
                        threshold fitted on the *train* split; F1 = harmonic mean of the accuracy on
                        erroneous and on error-free responses (responses already at 0 at s_0 excluded)
CIs: percentile bootstrap over responses (the states of one response are not independent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pavflow.data import CALIBRATION, METRICS
from pavflow.stats import cluster_bootstrap_ci
from pavflow.verifiers.metrics import (auroc, calibration_bins, ece, first_error, first_error_f1, first_error_top1,
                                       fit_threshold, predicted_first_error, spearman, within_auroc)


@dataclass
class Scored:
    """One verifier's predictions on a list of responses."""
    values: list[np.ndarray]  # v(s_h), h = 0..H, in [0, 1]
    progress: list[np.ndarray]  # predicted progress of steps 1..H, shape (H,)


def true_first_errors(q_pi: list[np.ndarray]) -> list[int | None]:
    return [first_error(v) for v in q_pi]


def quality_rows(name: str, val: Scored, truth: list[np.ndarray], truth_progress: list[np.ndarray],
                 q_pi_fresh: list[np.ndarray], outcomes: np.ndarray, threshold: float, groups: list[str], *,
                 n_bins: int = 10, n_boot: int = 1000, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(METRICS rows, CALIBRATION rows) of verifier `name`; `threshold` from `fit_first_error_threshold`;
    `groups` the problem of each response."""
    R = len(val.values)
    if len(groups) != R:
        raise ValueError(f"quality_rows({name}): {R} responses but {len(groups)} groups")
    for what, xs in (("truth", truth), ("truth_progress", truth_progress), ("q_pi_fresh", q_pi_fresh)):
        if len(xs) != R:
            raise ValueError(f"quality_rows({name}): {R} responses but {len(xs)} {what}")
    for i, (v, t) in enumerate(zip(val.values, truth)):
        if len(v) != len(t):
            raise ValueError(f"quality_rows({name}): response {i} has {len(v)} predicted states but {len(t)} true ones")
    sq = np.array([((v - t) ** 2).sum() for v, t in zip(val.values, truth)])
    cnt = np.array([len(v) for v in val.values], dtype=np.float64)
    final = np.array([v[-1] for v in val.values])
    outcomes = np.asarray(outcomes, dtype=np.float64)
    true_fe = true_first_errors(q_pi_fresh)
    keep = np.array([t != -1 for t in true_fe])  # problems pi cannot solve even from s_0: no first error
    pred_fe = [predicted_first_error(v, threshold) for v in val.values]

    def brier_of(idx):
        return float(sq[idx].sum() / cnt[idx].sum())

    def spearman_of(idx):
        if len(idx) == 0:
            return float("nan")
        return spearman(np.concatenate([val.progress[i] for i in idx] + [np.empty(0)]),
                        np.concatenate([truth_progress[i] for i in idx] + [np.empty(0)]))

    def f1_of(idx):
        if not np.isfinite(threshold):
            return float("nan")
        idx = [i for i in idx if keep[i]]
        return first_error_f1([pred_fe[i] for i in idx], [true_fe[i] for i in idx])["f1"]

    g = np.asarray(groups)
    problems = list(dict.fromkeys(groups))
    by_problem = [np.flatnonzero(g == p) for p in problems]

    def within_of(pidx):  # pidx: indices into `problems`, resampled as clusters
        idx = np.concatenate([by_problem[j] for j in pidx] + [np.empty(0, dtype=int)])
        # resampled copies of a problem are distinct groups
        grp = np.concatenate([np.full(len(by_problem[j]), r) for r, j in enumerate(pidx)] + [np.empty(0, dtype=int)])
        return within_auroc(final[idx], outcomes[idx], grp)[0]

    top1, n_top1 = first_error_top1(val.progress, [t if keep[i] else None for i, t in enumerate(true_fe)])
    everything = np.arange(R)
    f1 = first_error_f1([p for p, k in zip(pred_fe, keep) if k], [t for t, k in zip(true_fe, keep) if k]) \
        if np.isfinite(threshold) else {"f1": float("nan"), "acc_error": float("nan"), "acc_correct": float("nan"),
                                        "n_error": None, "n_correct": None}
    flat_pred = np.concatenate(val.values) if R else np.empty(0)
    flat_true = np.concatenate(truth) if R else np.empty(0)
    ci = lambda fn: cluster_bootstrap_ci(fn, R, n_boot=n_boot, seed=seed)
    rows = [
        (name, "brier", brier_of(everything) if R else float("nan"), *ci(brier_of), int(cnt.sum())),
        (name, "ece", ece(flat_pred, flat_true, n_bins), None, None, int(cnt.sum())),
        (name, "spearman_progress", spearman_of(everything), *ci(spearman_of), int(cnt.sum() - R)),
        (name, "outcome_auroc", auroc(final, outcomes), *ci(lambda i: auroc(final[i], outcomes[i])), R),
        (name, "outcome_auroc_within", *_within(within_auroc(final, outcomes, g),
                                                 cluster_bootstrap_ci(within_of, len(problems), n_boot=n_boot, seed=seed))),
        (name, "first_error_top1", top1, None, None, n_top1),
        (name, "first_error_f1", f1["f1"], *ci(f1_of), int(keep.sum())),
        (name, "first_error_acc_error", f1["acc_error"], None, None, f1["n_error"]),
        (name, "first_error_acc_correct", f1["acc_correct"], None, None, f1["n_correct"]),
        (name, "first_error_threshold", float(threshold), None, None, None),
    ]
    metrics = pl.DataFrame(rows, schema=METRICS, orient="row")
    calib = pl.DataFrame([(name, *b) for b in calibration_bins(flat_pred, flat_true, n_bins)],
                         schema=CALIBRATION, orient="row")
    return metrics, calib


def _within(value_n: tuple[float, int], ci: tuple[float, float]) -> tuple:
    return value_n[0], *ci, value_n[1]


def fit_first_error_threshold(train: Scored, q_pi_train: list[np.ndarray]) -> float:
    """The first-error threshold that maximises F1 on the train split's responses (their own MC pool);
    nan when train has no response with, or none without, a first error (F1 is then not reported)."""
    true_fe = true_first_errors(q_pi_train)
    keep = [i for i, t in enumerate(true_fe) if t != -1]
    if len({t is None for i, t in enumerate(true_fe) if i in set(keep)}) < 2:
        return float("nan")
    return fit_threshold([train.values[i] for i in keep], [true_fe[i] for i in keep])
