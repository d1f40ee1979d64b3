"""Tables between stages: one schema per table, declared once, checked on read; atomic writes.

Keys are explicit columns. `h` always counts the steps of a response already taken:
state `s_h` is the prompt plus steps 1..h, so `h = 0` is the bare problem and `h = H` the finished
response.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import polars as pl

Schema = dict[str, pl.DataType]

PROBLEMS: Schema = {
    "problem_id": pl.String, "split": pl.String, "question": pl.String,
    "answer": pl.String, "solution": pl.String,
}
# n_seed sampled responses per problem from one policy.
SAMPLES: Schema = {
    "problem_id": pl.String, "split": pl.String, "policy": pl.String, "sample_id": pl.Int32,
    "response": pl.String, "n_steps": pl.Int32, "correct": pl.Int8,
    "prompt_tokens": pl.Int32, "gen_tokens": pl.Int32,
}
# Monte-Carlo pool: from the prefix of seed (problem_id, sample_id) with h steps, rollout policy rho
# sampled n continuations and c of them ended correct. Terminal states (h = H) are graded, not sampled:
# n = 1, c = correct, gen_tokens = 0.
MC: Schema = {
    "problem_id": pl.String, "split": pl.String, "sample_id": pl.Int32, "rollout_policy": pl.String,
    "h": pl.Int32, "n": pl.Int32, "c": pl.Int32, "gen_tokens": pl.Int64,
}
# The MC pool's continuations as complete responses: seed (problem_id, sample_id)'s first h steps, then
# continuation `rollout` (0..n-1) of the rollout policy, graded. The training set of the orm.rollouts ORM.
CONTINUATIONS: Schema = {
    "problem_id": pl.String, "split": pl.String, "sample_id": pl.Int32, "h": pl.Int32, "rollout": pl.Int32,
    "response": pl.String, "correct": pl.Int8,
}
# Labels under prover mu = BoK(rho), per state s_h of each seed:
#   q_pi = V^pi(s_h) (= Q^pi(s_{h-1}, a_h) for h >= 1), from the base policy's pool;
#   v_mu = V^mu(s_h); a_mu = A^mu(s_{h-1}, a_h) = v_mu(s_h) - v_mu(s_{h-1}), null at h = 0.
LABELS: Schema = {
    "problem_id": pl.String, "split": pl.String, "sample_id": pl.Int32, "h": pl.Int32,
    "prover": pl.String, "rollout_policy": pl.String, "k": pl.Int32,
    "q_pi": pl.Float64, "v_mu": pl.Float64, "a_mu": pl.Float64,
}
# Training log of any trained model (policy SFT, verifier): one row per logged step.
TRAIN_LOG: Schema = {
    "model": pl.String, "step": pl.Int64, "tokens_seen": pl.Int64, "loss": pl.Float64,
    "val_metric": pl.String, "val_value": pl.Float64,
}
# Long-format evaluation metrics: (subject, metric) -> value, with a 95% CI where one exists.
METRICS: Schema = {
    "subject": pl.String, "metric": pl.String, "value": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "n": pl.Int64,
}
# Calibration curve of a verifier (pavflow.verifiers.quality): equal-width bins of predicted value.
CALIBRATION: Schema = {
    "subject": pl.String, "bin_mid": pl.Float64, "mean_pred": pl.Float64, "mean_target": pl.Float64,
    "count": pl.Int64,
}
# Per-problem search results: one row per (problem, method, scorer, budget).
SEARCH: Schema = {
    "problem_id": pl.String, "split": pl.String, "method": pl.String, "verifier": pl.String,
    "prover": pl.String, "k": pl.Int32, "alpha": pl.Float64, "budget": pl.Int32,
    "correct": pl.Int8, "gen_tokens": pl.Int64, "prompt_tokens": pl.Int64,
    "verifier_tokens": pl.Int64,
}
# A verifier's score of every sample of the search pool (best-of-N picks the highest of the first N).
SCORES: Schema = {"problem_id": pl.String, "sample_id": pl.Int32, "verifier": pl.String, "score": pl.Float64}
# RL learning curve: one row per evaluation point (pavflow.rl.pg.evaluate: pass_at_n over eval_samples
# samples; response_tokens, n_steps and kl_ref (nats per response) are means over sampled test
# responses; newly_solved = fraction of the test problems unsolved at update 0 solved now).
# gen_tokens / verifier_tokens: spent by training so far. stop_reason: null, or why a guardrail
# stopped the run (then the last row is the evaluation that tripped it).
RL_CURVE: Schema = {
    "arm": pl.String, "prover": pl.String, "alpha": pl.Float64, "seed": pl.Int32,
    "update": pl.Int32, "samples_seen": pl.Int64, "train_reward": pl.Float64,
    "test_acc_greedy": pl.Float64, "test_acc_sampled": pl.Float64, "pass_at_n": pl.Float64,
    "response_tokens": pl.Float64, "n_steps": pl.Float64, "kl_ref": pl.Float64,
    "newly_solved": pl.Float64, "gen_tokens": pl.Int64, "verifier_tokens": pl.Int64,
    "stop_reason": pl.String,
}

# --- the report's tables (pavflow.report): accuracies are fractions, CIs 95% bootstraps over problems
CURVE_KEYS = ["method", "verifier", "prover", "k", "alpha", "budget"]
# One row per search configuration and budget (SEARCH's keys), aggregated over problems.
CURVES: Schema = {
    **{c: SEARCH[c] for c in CURVE_KEYS}, "acc": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
    "gen_tokens": pl.Float64, "verifier_tokens": pl.Float64, "n_problems": pl.Int64,
}
# Per-problem success rate of a policy's sampled responses.
RATES: Schema = {
    "policy": pl.String, "split": pl.String, "problem_id": pl.String,
    "n_samples": pl.Int64, "n_correct": pl.Int64, "success_rate": pl.Float64,
}
# Histogram of per-problem success rates: N_BINS bins [0, .1), ..., [.9, 1.0], then exactly 0 and exactly 1.
N_BINS = 10
HISTOGRAM: Schema = {
    "policy": pl.String, "split": pl.String, "bin": pl.String, "lo": pl.Float64, "hi": pl.Float64,
    "count": pl.Int64,
}
# A policy's accuracy on its sampled responses: mean per-problem success rate; samples per problem.
POOL: Schema = {
    "policy": pl.String, "split": pl.String, "n_problems": pl.Int64, "min_samples": pl.Int64,
    "max_samples": pl.Int64, "acc": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
}
# Unbiased pass@n from the pool, mean over problems, for every n <= the policy's fewest samples.
PASS_AT: Schema = {"policy": pl.String, "split": pl.String, "n": pl.Int64, "pass_at": pl.Float64}
# A beam curve against a best-of-N curve (both CURVES, by label): the gain at best-of-N's largest budget
# (null if beam did not run it), and compute_efficiency = best-of-N's tokens at its best accuracy over
# the fewest beam tokens reaching it (null if beam never does).
GAINS: Schema = {
    "beam": pl.String, "bon": pl.String, "bon_budget": pl.Int32, "gain": pl.Float64, "bon_best_acc": pl.Float64,
    "bon_best_budget": pl.Int32, "bon_best_tokens": pl.Float64, "beam_tokens": pl.Float64,
    "compute_efficiency": pl.Float64,
}
# Beam-PAV vs BoN-ORM per beam budget N (paired over the problems both ran).
HEADLINE: Schema = {
    "budget": pl.Int32, "beam_acc": pl.Float64, "beam_gen_tokens": pl.Float64, "bon_acc_same_n": pl.Float64,
    "bon_gen_tokens_same_n": pl.Float64, "gain_same_n": pl.Float64, "gain_same_n_ci_low": pl.Float64,
    "gain_same_n_ci_high": pl.Float64, "gain_at_equal_tokens": pl.Float64,
    "gain_at_equal_tokens_ci_low": pl.Float64, "gain_at_equal_tokens_ci_high": pl.Float64,
    "compute_efficiency": pl.Float64, "compute_efficiency_bound": pl.String,
    "compute_efficiency_ci_low": pl.Float64, "compute_efficiency_ci_high": pl.Float64, "n_problems": pl.Int64,
}
# A method minus a baseline at one budget, paired over the problems both ran.
PAIRED: Schema = {
    "method": pl.String, "baseline": pl.String, "budget": pl.Int32, "method_acc": pl.Float64,
    "baseline_acc": pl.Float64, "diff": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
    "n_problems": pl.Int64,
}
# Final RL metrics per arm: mean over seeds of each seed's last evaluation (null where none has one).
RL_METRICS = ("test_acc_sampled", "test_acc_greedy", "pass_at_n", "newly_solved", "kl_ref", "response_tokens")
RL_ARMS: Schema = {"arm": pl.String, **{m: pl.Float64 for m in RL_METRICS}}
# An RL arm against the outcome arm: the final accuracy difference of the seed means with a Welch t CI
# over seeds and its MDE; the sample efficiency (outcome's samples to its final accuracy over the arm's
# samples to reach it) with a bootstrap CI over seeds, and the same in tokens (token_efficiency: generated
# plus verifier tokens, an oracle prover's MC rollouts included; report.tables.RL_COSTS).
RL_COMPARE: Schema = {
    "arm": pl.String, "baseline": pl.String, "metric": pl.String, "n_seeds": pl.Int64, "n_seeds_baseline": pl.Int64,
    "acc": pl.Float64, "baseline_acc": pl.Float64, "diff": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
    "mde": pl.Float64, "sample_efficiency": pl.Float64, "sample_efficiency_ci_low": pl.Float64,
    "sample_efficiency_ci_high": pl.Float64, "token_efficiency": pl.Float64, "token_efficiency_ci_low": pl.Float64,
    "token_efficiency_ci_high": pl.Float64,
}
RL_EFFICIENCIES = tuple(c for c in RL_COMPARE if "efficiency" in c)
# The prover-K curve of the oracle provers (no verifier error), one row per prover and source: "beam"
# (beam search on MC Q^pi + alpha A^mu at search.k_budget; CI: bootstrap over problems, n problems) or
# "rl" (the pav_mc arm's final accuracy; CI: t over seeds, n seeds; minus the outcome arm and its
# sample efficiencies: RL_COMPARE). Tokens: mean per problem (beam), spent by training (rl).
ORACLE_K: Schema = {
    "source": pl.String, "prover": pl.String, "policy": pl.String, "K": pl.Int64, "acc": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "n": pl.Int64, "gen_tokens": pl.Float64,
    "verifier_tokens": pl.Float64, "baseline_acc": pl.Float64, "diff": pl.Float64, "diff_ci_low": pl.Float64,
    "diff_ci_high": pl.Float64, **{c: pl.Float64 for c in RL_EFFICIENCIES},
}

# The verifier data-scaling curve: a verifier's quality (a METRICS metric of stages/quality) per training-
# data point of one `base` verifier (its name without the .s<n>m<m> variant): trained on the first
# n_seed seeds of each train problem and n_mc rollouts of each of their states; the base itself is the
# point (rollouts.n_seed, rollouts.n_mc). budget = n_seed * n_mc, the MC rollouts per train problem at
# each step depth (equal-budget points trade seeds for rollouts); label_rollouts: the MC rollouts its
# train targets actually cost (null if not recorded).
DATA_SCALING: Schema = {
    "base": pl.String, "verifier": pl.String, "n_seed": pl.Int64, "n_mc": pl.Int64, "budget": pl.Int64,
    "label_rollouts": pl.Float64, "metric": pl.String, "value": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "n": pl.Int64,
}

SCHEMAS: dict[str, Schema] = {
    "problems": PROBLEMS, "samples": SAMPLES, "mc": MC, "continuations": CONTINUATIONS, "labels": LABELS, "train_log": TRAIN_LOG,
    "metrics": METRICS, "calibration": CALIBRATION, "search": SEARCH, "scores": SCORES, "rl_curve": RL_CURVE,
}


class TableError(ValueError):
    """A table on disk is missing, unreadable or does not match its schema."""


def conform(df: pl.DataFrame, schema: Schema, name: str = "table") -> pl.DataFrame:
    """Select and cast `df` to `schema` (column order included); raise naming any missing column."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise TableError(f"{name}: missing columns {missing}; has {df.columns}")
    return df.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])


# Rows of a table being built are kept as Python objects for at most this many rows, then as columns.
CHUNK_ROWS = 1 << 14


class Rows:
    """A table built row by row in columnar chunks: per-row Python objects (~1 KB a row) never outlive
    their chunk, so a pool of millions of rows costs its Arrow size. `frame()` is the whole table, one
    chunk (written by write_table exactly as a table built at once)."""

    def __init__(self, schema: Schema, chunk_rows: int | None = None):
        self.schema, self.chunk_rows = schema, chunk_rows or CHUNK_ROWS
        self.rows: list[dict] = []
        self.chunks: list[pl.DataFrame] = []

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.chunks.append(pl.DataFrame(self.rows, schema=self.schema))
            self.rows = []

    def frame(self) -> pl.DataFrame:
        self._flush()
        if not self.chunks:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(self.chunks, rechunk=True)


@contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temp file path beside `path`; on success it replaces `path` in one rename, so a
    killed writer never leaves a partial file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_table(df: pl.DataFrame, path: str | os.PathLike, schema: Schema) -> Path:
    """Write `df` as Parquet atomically."""
    df = conform(df, schema, str(path))
    with atomic_file(path) as tmp:
        df.write_parquet(tmp, statistics=False)
    return Path(path)


def read_table(path: str | os.PathLike, schema: Schema) -> pl.DataFrame:
    """Read a Parquet table and check it against `schema`; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: table does not exist")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several types for corrupt files
        raise TableError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    for col, dtype in schema.items():
        if col not in df.columns:
            raise TableError(f"{path}: missing column {col!r}; has {df.columns}")
        if df.schema[col] != dtype:
            raise TableError(f"{path}: column {col!r} has type {df.schema[col]}, expected {dtype}")
    return df.select(list(schema))


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temp directory beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
