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
