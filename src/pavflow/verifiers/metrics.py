"""Verifier quality and step progress, numpy only."""
from __future__ import annotations

import numpy as np


def _pair(pred, target, name: str) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(target, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{name}: {p.size} predictions but {y.size} targets")
    return p, y


def brier(pred, target) -> float:
    """Mean squared error of probabilities against (possibly soft) targets; nan if empty."""
    p, y = _pair(pred, target, "brier")
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def rankdata(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each tied group
    return (last - (counts - 1) / 2.0)[inv]


def auroc(scores, labels) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2
    (Mann-Whitney U from average ranks). nan if either class is absent."""
    s, y = _pair(scores, labels, "auroc")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("auroc: labels must be 0/1")
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    u = rankdata(s)[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def within_auroc(scores, labels, groups) -> tuple[float, int]:
    """Mean over groups (problems) that have both outcomes of the AUROC among that group's items, and the
    number of such groups: how well a verifier ranks the responses to one problem, which is what search
    needs (the global AUROC also credits ranking easy problems above hard ones). nan if no group has both."""
    s, y = _pair(scores, labels, "within_auroc")
    g = np.asarray(groups).ravel()
    if g.size != s.size:
        raise ValueError(f"within_auroc: {s.size} scores but {g.size} groups")
    per = [auroc(s[g == k], y[g == k]) for k in dict.fromkeys(g.tolist())]
    per = [a for a in per if not np.isnan(a)]
    return (float(np.mean(per)) if per else float("nan")), len(per)


def first_error_top1(progress: list[np.ndarray], true: list[int | None]) -> tuple[float, int]:
    """Among responses with a true first error h* (>= 1), the fraction whose most negative predicted step
    progress is at step h* (ties: the first step): finding the error within the response, whatever the
    problem's difficulty (no threshold shared across problems). nan if no response has an error."""
    hits = [int(np.argmin(p)) + 1 == t for p, t in zip(progress, true) if t is not None and t >= 1 and len(p)]
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def calibration_bins(pred, target, n_bins: int = 10) -> list[tuple[float, float, float, int]]:
    """Reliability diagram: equal-width bins on [0, 1] (pred = 1 falls in the last bin).
    One (bin_mid, mean_pred, mean_target, count) per non-empty bin, in increasing order."""
    p, y = _pair(pred, target, "calibration_bins")
    b = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    out = []
    for k in range(n_bins):
        m = b == k
        if m.any():
            out.append(((k + 0.5) / n_bins, float(p[m].mean()), float(y[m].mean()), int(m.sum())))
    return out


def ece(pred, target, n_bins: int = 10) -> float:
    """Expected calibration error: count-weighted |mean_pred - mean_target| over the bins."""
    bins = calibration_bins(pred, target, n_bins)
    n = sum(c for *_, c in bins)
    return float(sum(c * abs(mp - mt) for _, mp, mt, c in bins) / n) if n else float("nan")


def advantages(values) -> np.ndarray:
    """Step progress from state values v(s_0..s_H): A at step h (1..H) = v(s_h) - v(s_{h-1}).
    Returns H values; element h-1 belongs to step h."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"advantages: expected one sequence of state values, got shape {v.shape}")
    return v[1:] - v[:-1]


def spearman(x, y) -> float:
    """Spearman rank correlation: the Pearson correlation of the ranks (ties given their average
    rank). nan with fewer than 2 items or when either side is constant."""
    a, b = _pair(x, y, "spearman")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = rankdata(a) - (a.size + 1) / 2.0, rankdata(b) - (b.size + 1) / 2.0  # mean rank (n+1)/2
    return float(np.sum(ra * rb) / np.sqrt(np.sum(ra**2) * np.sum(rb**2)))


def _values(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name}: expected state values v(s_0..s_H), got shape {v.shape}")
    return v


def first_error(values, zero: float = 0.0) -> int | None:
    """The first erroneous step (ProcessBench) from MC state values v(s_0..s_H) under pi:
    min{h in 1..H : v(s_h) <= zero}, i.e. after step h no continuation succeeds; None if there is none.
    -1 if v(s_0) <= zero: the problem is unsolved from the start, no step is to blame, and callers
    exclude the response."""
    v = _values(values, "first_error")
    if v[0] <= zero:
        return -1
    hits = np.flatnonzero(v[1:] <= zero)
    return int(hits[0]) + 1 if hits.size else None


def predicted_first_error(values, threshold: float) -> int | None:
    """A verifier's first erroneous step: min{h in 1..H : predicted v(s_h) < threshold}; None if none."""
    v = _values(values, "predicted_first_error")
    hits = np.flatnonzero(v[1:] < threshold)
    return int(hits[0]) + 1 if hits.size else None


def _f1(acc_error: float, acc_correct: float) -> float:
    if np.isnan(acc_error) or np.isnan(acc_correct):
        return float("nan")
    if acc_error == 0 or acc_correct == 0:
        return 0.0
    return 2 * acc_error * acc_correct / (acc_error + acc_correct)


def first_error_f1(pred: list[int | None], true: list[int | None]) -> dict:
    """ProcessBench scores of predicted first-error steps against true ones (None = no error).

    acc_error   = #{true not None, pred == true} / n_error  (exact step)
    acc_correct = #{true None, pred None} / n_correct
    f1          = 2 acc_error acc_correct / (acc_error + acc_correct), 0 if either is 0,
                  nan if either class is empty (its accuracy is nan too).
    True labels of -1 (unsolvable from s_0) must be excluded beforehand."""
    if len(pred) != len(true):
        raise ValueError(f"first_error_f1: {len(pred)} predictions but {len(true)} labels")
    if any(t is not None and t < 1 for t in true):
        raise ValueError("first_error_f1: true first errors must be None or >= 1; "
                         "exclude responses unsolvable from the start (first_error = -1)")
    err = [p == t for p, t in zip(pred, true) if t is not None]
    cor = [p is None for p, t in zip(pred, true) if t is None]
    acc_error = float(np.mean(err)) if err else float("nan")
    acc_correct = float(np.mean(cor)) if cor else float("nan")
    return {"acc_error": acc_error, "acc_correct": acc_correct, "f1": _f1(acc_error, acc_correct),
            "n_error": len(err), "n_correct": len(cor)}


def fit_threshold(preds: list[np.ndarray], trues: list[int | None], grid=None) -> float:
    """The threshold t maximising first_error_f1 of predicted_first_error(pred, t) against `trues`;
    ties go to the smallest t. Fit on the train split, apply to held-out responses.

    Default grid: 0, 1 and the distinct predicted values at steps h >= 1. It is exact: which states
    fall below t changes only at a predicted value, and t = 1 flags every step predicted below 1.
    For one response let m_h = min(v(s_1..s_h)) (non-increasing); the prediction at t is the first h
    with m_h < t, so it is None iff #{h : m_h >= t} = H and otherwise #{h : m_h >= t} + 1."""
    if len(preds) != len(trues):
        raise ValueError(f"fit_threshold: {len(preds)} predictions but {len(trues)} labels")
    preds = [_values(p, "fit_threshold") for p in preds]
    if grid is None:
        grid = np.concatenate([[0.0, 1.0]] + [p[1:] for p in preds])
    grid = np.unique(np.asarray(grid, dtype=np.float64))
    first_error_f1([None] * len(trues), trues)  # validates the labels
    hit_err, hit_cor = np.zeros(grid.size), np.zeros(grid.size)
    for p, t in zip(preds, trues):
        H = p.size - 1
        m_asc = np.minimum.accumulate(p[1:])[::-1]  # m_H..m_1, ascending
        above = H - np.searchsorted(m_asc, grid, side="left")  # #{h : m_h >= t}
        if t is None:
            hit_cor += above == H
        elif t <= H:
            hit_err += above == t - 1
    n_err = sum(t is not None for t in trues)
    n_cor = len(trues) - n_err
    if n_err == 0 or n_cor == 0:
        raise ValueError(f"fit_threshold: needs responses with and without a first error, "
                         f"got {n_err} and {n_cor}")
    a, b = hit_err / n_err, hit_cor / n_cor
    f1 = np.where((a > 0) & (b > 0), 2 * a * b / np.where(a + b > 0, a + b, 1), 0.0)
    return float(grid[int(np.argmax(f1))])
