"""Process labels from Monte-Carlo pools: the one home of the Best-of-K value estimator.

A prover mu = BoK(rho) succeeds from a state if any of K independent rho-continuations does, so
V^mu(s) = 1 - (1 - V^rho(s))^K. From a pool of n rho-rollouts with c correct, the unbiased estimate
(the pass@k estimator) is 1 - C(n-c, K) / C(n, K) for K <= n; for K > n we fall back to plug-in.
One rollout pool therefore serves every K: a K sweep never resamples.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from pavflow.data import LABELS
from pavflow.names import Prover
from pavflow.stats import pass_at_k


def bok_of_value(v, k: int) -> np.ndarray:
    """V^{BoK(rho)} from V^rho: 1 - (1 - v)^K (elementwise)."""
    return 1.0 - (1.0 - np.asarray(v, dtype=np.float64)) ** k


def bok_value(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Estimate V^{BoK(rho)} from n rollouts with c correct (elementwise)."""
    if k < 1:
        raise ValueError(f"prover K must be >= 1, got {k}")
    n, c = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    if (n < 1).any() or (c < 0).any() or (c > n).any():
        raise ValueError("MC counts need n >= 1 and 0 <= c <= n")
    out = bok_of_value(c / n, k)  # plug-in, kept where K > n
    unbiased = k <= n
    out[unbiased] = pass_at_k(n[unbiased], c[unbiased], k)
    return out


def make_labels(pi_pool: pl.DataFrame, rho_pool: pl.DataFrame, prover: Prover) -> pl.DataFrame:
    """LABELS rows for prover BoK(rho) on every state of every seed.

    `pi_pool` and `rho_pool` are MC tables on the same seeds' prefixes, from the base policy pi and the
    prover's rollout policy rho (the same table when rho = pi).
    """
    key = ["problem_id", "split", "sample_id", "h"]
    pi = pi_pool.select(*key, q_pi=pl.col("c") / pl.col("n"))
    rho = rho_pool.select(*key, "n", "c")
    df = pi.join(rho, on=key, how="full", coalesce=True)
    rollout_policy, k = prover.policy, prover.k
    if df["q_pi"].null_count() or df["n"].null_count():
        raise ValueError(f"MC pools of pi and {rollout_policy} cover different states; "
                         "both must be collected on the same seeds' prefixes")
    df = df.with_columns(v_mu=pl.Series(bok_value(df["n"].to_numpy(), df["c"].to_numpy(), k)))
    df = df.sort(key).with_columns(
        a_mu=pl.when(pl.col("h") > 0).then(
            pl.col("v_mu") - pl.col("v_mu").shift(1).over(["problem_id", "sample_id"])))
    return df.with_columns(prover=pl.lit(str(prover)),
                           rollout_policy=pl.lit(rollout_policy), k=pl.lit(k)).select(list(LABELS))
