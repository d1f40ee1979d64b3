"""Label variants from Monte-Carlo pools: hard vs soft targets, and which prefixes get a label.

Soft targets are MC values (c/n for pqv, v_mu for pav). Hard targets (Math-Shepherd) are 1 if any
continuation from the state succeeded (c > 0), else 0; for a BoK(rho) prover v_mu > 0 iff c > 0 for
every K >= 1, so the hard label of a pav target is the same indicator on the rho pool.

Prefix selection picks the states s_h (h = 0..H) of each seed response that carry a training target
and counts what reading their MC counts costs. A response is (problem_id, split, sample_id); its pool
rows have h = 0..H. Reading ("probing") a state costs its n rollouts, except the graded terminal state
h = H (H >= 1), which costs 0. An empty response (H = 0) has only the sampled state s_0, which costs n.
Numpy and polars only.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from pavflow.seeds import derive_seed

KEY = ["problem_id", "split", "sample_id", "h"]
RESPONSE = ["problem_id", "split", "sample_id"]
HOWS = ("all", "random", "first_pit")


def _states(df: pl.DataFrame) -> str:
    rows = df.select(KEY).rows()
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return ", ".join(f"{p}/{s}/sample {i}/h={h}" for p, s, i, h in rows[:5]) + more


def hard_targets(targets: pl.DataFrame, pool: pl.DataFrame) -> pl.DataFrame:
    """`targets` (rows problem_id, split, sample_id, h, target, ...) with target replaced by the hard
    label 1[c > 0] (Float64) from `pool`, the MC table of the rollout policy that defines the targets
    (pi's pool for pqv, the prover's rho pool for pav). Row order and other columns are kept."""
    p = pool.select(KEY, hard=(pl.col("c") > 0).cast(pl.Float64)).with_columns(
        pl.col("h").cast(targets.schema["h"]), pl.col("sample_id").cast(targets.schema["sample_id"]))
    dup = p.select(KEY).is_duplicated()
    if dup.any():
        raise ValueError(f"hard_targets: the pool has duplicate states: {_states(p.filter(dup))}")
    missing = targets.join(p, on=KEY, how="anti")
    if missing.height:
        raise ValueError(f"hard_targets: the pool does not cover {missing.height} target states: "
                         f"{_states(missing)}")
    out = targets.join(p, on=KEY, how="left", maintain_order="left")
    return out.with_columns(target=pl.col("hard")).drop("hard").select(targets.columns)


def first_pit_probes(values: Sequence[float]) -> tuple[int | None, list[int]]:
    """Binary search for the first "pit" h* = min{h : values[h] <= 0} over h = 0..H (H = len - 1),
    assuming zeros are absorbing (values[h] <= 0 implies values[h'] <= 0 for h' > h).

    Invariant: lo = 0 or values[lo-1] > 0 was probed; hi = H + 1 (no pit) or values[hi] <= 0 was
    probed. Each step probes mid = (lo + hi) // 2 and keeps one half. Returns (h* or None if no pit,
    the probed indices in order). Without the assumption the result is still a probed transition:
    values[h*] <= 0 and (h* = 0 or values[h* - 1] > 0).

    Bound: an interval of length L = hi - lo shrinks to at most floor(L / 2) per probe, starting at
    L = H + 1, so the search probes at most floor(log2(H + 1)) + 1 = (H + 1).bit_length() states
    (<= ceil(log2(H + 1)) + 1), and exactly that many when the pit is at h = 0 (every probe then
    keeps the left half).
    """
    if len(values) == 0:
        raise ValueError("first_pit_probes: no states")
    lo, hi, probed = 0, len(values), []
    while lo < hi:
        mid = (lo + hi) // 2
        probed.append(mid)
        if values[mid] <= 0:
            hi = mid
        else:
            lo = mid + 1
    return (lo if lo < len(values) else None), probed


def select_states(pool: pl.DataFrame, how: str, *, m: int | None = None,
                  seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Select the states of each seed response that carry a training target.

    Returns (selected, cost). `selected`: the chosen pool rows (all pool columns) plus `inferred`
    (bool), sorted by state. `cost`: one row per response (problem_id, split, sample_id, probes,
    rollouts) with probes = number of states whose MC counts were read and rollouts = sum of n over
    the probed non-terminal states (see the module docstring).

      all        every state, probed.
      random     m states per response drawn uniformly without replacement from h = 0..H (all if
                 H + 1 <= m), seeded per response by `derive_seed(seed, ...)`. Only random uses
                 m (required) and seed; m is still checked when given.
      first_pit  `first_pit_probes` on c over h = 0..H: the probed states carry their observed counts;
                 the states after the pit h* that were not probed get an inferred target 0 (c set to
                 0, n kept, inferred = True, no cost); unprobed states before the pit are not returned.
                 With no pit (no probed c == 0) only the probed states are returned.
    """
    if how not in HOWS:
        raise ValueError(f"select_states: unknown how={how!r}; expected one of {HOWS}")
    if (m is not None or how == "random") and (
            isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
        raise ValueError(f"select_states: m must be an integer >= 1 (states per response for random), "
                         f"got m={m!r}")
    df = pool.sort(KEY)
    dup = df.select(KEY).is_duplicated()
    if dup.any():
        raise ValueError(f"select_states: duplicate states: {_states(df.filter(dup))}")
    gap = df.filter(pl.col("h") != pl.int_range(pl.len()).over(RESPONSE))
    if gap.height:
        raise ValueError(f"select_states: each response needs states h = 0..H; gap at {_states(gap)}")
    H = df.select(pl.col("h").max().over(RESPONSE))["h"].to_numpy()
    h, n, c = (df[col].to_numpy().astype(np.int64) for col in ("h", "n", "c"))
    row_cost = np.where((h == H) & (H >= 1), 0, n)

    probed, inferred = np.zeros(df.height, bool), np.zeros(df.height, bool)
    responses = df.group_by(RESPONSE, maintain_order=True).len()
    sizes = responses["len"].to_numpy().astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    for (pid, split, sid, size), s in zip(responses.iter_rows(), starts):
        if how == "all":
            probed[s:s + size] = True
        elif how == "random":
            rng = np.random.default_rng(derive_seed(seed, pid, split, sid))
            probed[s + rng.choice(size, size=min(m, size), replace=False)] = True
        else:
            pit, idx = first_pit_probes(c[s:s + size])
            probed[s + np.asarray(idx)] = True
            if pit is not None:
                inferred[s + pit + 1:s + size] = ~probed[s + pit + 1:s + size]

    cost = df.select(RESPONSE).with_columns(
        probes=pl.Series(probed.astype(np.int64)), rollouts=pl.Series(np.where(probed, row_cost, 0))
    ).group_by(RESPONSE, maintain_order=True).sum()
    selected = df.with_columns(inferred=pl.Series(inferred)).filter(pl.Series(probed | inferred))
    selected = selected.with_columns(
        c=pl.when(pl.col("inferred")).then(pl.lit(0, df.schema["c"])).otherwise(pl.col("c")))
    return selected, cost
