"""`jsonl` / `parquet`: the user's own problems, graded by math-verify.

The file has one problem per row (a JSON object per line, or a Parquet table) with columns
    question  (string, required, non-empty)
    answer    (string or number, required, something math-verify can parse: 72, 1/2, \\frac{1}{2}, ...)
    solution  (string, optional: reference reasoning, one step per line; it becomes the SFT target)
    split     (optional: train | val | test; without it a hash of the question assigns 80/10/10)
Rows are numbered from 1 (for JSONL, the line number). Any problem is an error naming the file, the row
and the column, raised when the workflow builds its DAG, before any job runs.

A GSM8K-style solution's last line `#### <answer>` is dropped (the response format ends with
`Answer: <answer>` instead), as are blank lines. Answers are compared with math_verify.verify(gold,
prediction) after parsing both; a prediction math-verify cannot parse is wrong.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from pavflow.tasks.base import Problem
from pavflow.tasks.rgym import TaskDataError
from pavflow.tasks.text import SPLITS, Formatter, TextTask, solution_text, split_of

REQUIRED = ("question", "answer")
OPTIONAL = ("solution", "split")


def _parse(text: str):
    import math_verify
    return math_verify.parse(text, parsing_timeout=None)


def _bad(path, row, column, why) -> TaskDataError:
    return TaskDataError(f"{path}: row {row}: column {column!r} {why}")


def read_rows(path: str | Path, fmt: str) -> list[dict]:
    """Rows of a user file, checked: every required column present with a usable value."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file (config task.path)")
    rows: list[tuple[int, dict]] = []
    if fmt == "jsonl":
        with open(path, "rb") as f:
            for i, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise TaskDataError(f"{path}: row {i}: not UTF-8 text (byte 0x{raw[e.start]:02x} at byte "
                                        f"{e.start + 1} of the line); save the file as UTF-8") from None
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TaskDataError(f"{path}: row {i}: not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise TaskDataError(f"{path}: row {i}: expected a JSON object with columns "
                                        f"{list(REQUIRED)}, got {type(obj).__name__}")
                rows.append((i, obj))
    elif fmt == "parquet":
        import polars as pl
        try:
            df = pl.read_parquet(path)
        except Exception as e:
            raise TaskDataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
        for c in REQUIRED:
            if c not in df.columns:
                raise TaskDataError(f"{path}: column {c!r} is missing (columns: {df.columns}); "
                                    f"required: {list(REQUIRED)}, optional: {list(OPTIONAL)}")
        rows = list(enumerate(df.iter_rows(named=True), 1))
    else:
        raise TaskDataError(f"{path}: unknown format {fmt!r}; expected jsonl or parquet")
    if not rows:
        raise TaskDataError(f"{path}: no rows")
    out = []
    for i, r in rows:
        q, a = r.get("question"), r.get("answer")
        for c in REQUIRED:
            if c not in r:
                raise _bad(path, i, c, f"is missing (row has {sorted(r)})")
        if not isinstance(q, str) or not q.strip():
            raise _bad(path, i, "question", f"must be a non-empty string, got {q!r}")
        if isinstance(a, bool) or not isinstance(a, (str, int, float)) or \
                (isinstance(a, float) and not math.isfinite(a)) or not str(a).strip():
            raise _bad(path, i, "answer", f"must be a non-empty string or a number, got {a!r}")
        a = str(a).strip()
        if not _parse(a):
            raise _bad(path, i, "answer", f"math-verify cannot parse {a!r}")
        sol = r.get("solution")
        if sol is not None and not isinstance(sol, str):
            raise _bad(path, i, "solution", f"must be a string or null, got {sol!r}")
        split = r.get("split")
        if split is not None and split not in SPLITS:
            raise _bad(path, i, "split", f"must be one of {list(SPLITS)} or null, got {split!r}")
        out.append({"row": i, "question": q, "answer": a, "solution": sol, "split": split})
    return out


class FileTask(TextTask):
    def __init__(self, path: str, fmt: str, sizes: dict[str, int], seed: int,
                 formatter: Formatter | None = None):
        super().__init__(sizes, seed, formatter)
        self.path, self.fmt = path, fmt
        self._splits: dict[str, list[Problem]] | None = None

    def _build(self) -> dict[str, list[Problem]]:
        if self._splits is None:
            out: dict[str, list[Problem]] = {s: [] for s in SPLITS}
            seen: dict[str, int] = {}
            for r in read_rows(self.path, self.fmt):
                if r["question"] in seen:
                    raise _bad(self.path, r["row"], "question", f"repeats row {seen[r['question']]}")
                seen[r["question"]] = r["row"]
                s = r["split"] or split_of(r["question"])
                steps = [line for line in (r["solution"] or "").splitlines()
                         if not line.lstrip().startswith("####")]
                sol = solution_text(steps, r["answer"]) if r["solution"] is not None else ""
                out[s].append(Problem(f"{s}-{len(out[s]):05d}", s, r["question"], r["answer"], sol))
            for s in SPLITS:
                if len(out[s]) < self.sizes[s]:
                    raise TaskDataError(f"config task.n_{s}={self.sizes[s]}: {self.path} has only "
                                        f"{len(out[s])} {s} rows")
            self._splits = out
        return self._splits

    def problems(self, split: str) -> list[Problem]:
        if split not in SPLITS:
            raise ValueError(f"{self.path}: unknown split {split!r}; expected one of {SPLITS}")
        return self._build()[split][:self.sizes[split]]

    def train_problems(self) -> list[Problem]:
        return self._build()["train"]

    def sample_train(self, rng):
        """SFT on the train rows that have a solution; rows without one teach the answer line alone."""
        pool = getattr(self, "_sft_pool", None)
        if pool is None:
            pool = self._sft_pool = self.train_problems()
        p = pool[rng.randrange(len(pool))]
        return self.prompt(p.question), p.solution or solution_text([], p.answer)

    def grade_answer(self, got: str, answer: str) -> bool:
        import math_verify
        gold, pred = _parse(answer), _parse(got)
        if not gold or not pred:
            return False
        try:
            return bool(math_verify.verify(gold, pred, timeout_seconds=None))
        except Exception:
            return False
