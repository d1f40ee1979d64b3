"""reasoning-gym tasks: `gsm_symbolic` (GSM8K-style templates with reference chains of thought) and
`reasoning_gym`, any registered reasoning-gym dataset by name, graded by the dataset's own scorer.

Problems are the items of `reasoning_gym.create_dataset(name, size=pool, seed=seed)` in index order,
each assigned to train/val/test by a hash of its question (so splits are disjoint and do not move
when sizes change); duplicates are dropped. A response is correct iff the dataset's `score_answer`
gives its extracted `Answer:` exactly 1.0 (partial credit counts as wrong: grades are 0/1).

gsm_symbolic items carry `metadata.answer_cot`: lines of reasoning ending in `#### <answer>`. Its
lines are the reference steps (the `####` line becomes `Answer: <answer>`), so SFT teaches the same
one-step-per-line format the step splitter cuts. A generic dataset has no reference reasoning: its
reference response is the answer line alone.
"""
from __future__ import annotations

import re
from typing import Any

from pavflow.tasks.base import Problem
from pavflow.tasks.text import SPLITS, Formatter, TextTask, solution_text, split_of

NUMBER_COMMAS = re.compile(r"(?<=\d),(?=\d{3}\b)")


class TaskDataError(ValueError):
    """The task's data cannot give the configured problems; the message names the key or file."""


def _create(name: str, size: int, seed: int, options: dict):
    import reasoning_gym  # imported here: it is slow to import and only these tasks need it

    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **options)
    except Exception as e:  # unknown name, bad options
        from reasoning_gym.factory import DATASETS
        known = "" if name in DATASETS else f"; known datasets include {sorted(DATASETS)[:12]} ..."
        raise TaskDataError(f"config task.dataset={name!r} options={options}: reasoning-gym cannot create "
                            f"it ({type(e).__name__}: {e}){known}") from None


class ReasoningGym(TextTask):
    def __init__(self, dataset: str, sizes: dict[str, int], seed: int, options: dict | None = None,
                 formatter: Formatter | None = None):
        super().__init__(sizes, seed, formatter)
        self.dataset_name, self.options = dataset, dict(options or {})
        # enough items that the 10% splits fill up, with room for duplicate questions
        self.pool = 12 * max(sizes.values()) + 4 * sum(sizes.values()) + 100
        self.ds = _create(dataset, self.pool, seed, self.options)
        self._splits: dict[str, list[tuple[Problem, dict]]] | None = None

    # --- problems ------------------------------------------------------------------------------------
    def solution(self, entry: dict) -> str:
        return solution_text([], str(entry["answer"]))

    def _build(self) -> dict[str, list[tuple[Problem, dict]]]:
        if self._splits is None:
            out: dict[str, list[tuple[Problem, dict]]] = {s: [] for s in SPLITS}
            seen = set()
            for idx in range(self.pool):
                entry = self.ds[idx]
                q = str(entry["question"])
                if q in seen:
                    continue
                seen.add(q)
                s = split_of(q)
                # train keeps every item (the SFT pool); val and test stop at their sizes
                if s != "train" and len(out[s]) >= self.sizes[s]:
                    continue
                out[s].append((Problem(f"{s}-{len(out[s]):05d}", s, q, str(entry["answer"]),
                                       self.solution(entry)), entry))
            for s in SPLITS:
                if len(out[s]) < self.sizes[s]:
                    raise TaskDataError(
                        f"config task.n_{s}={self.sizes[s]}: reasoning-gym dataset {self.dataset_name!r} "
                        f"gave only {len(out[s])} distinct {s} questions among {self.pool} items")
            self._splits = out
            by_answer: dict[str, list[dict]] = {}
            for s in SPLITS:
                for p, e in out[s]:
                    by_answer.setdefault(p.answer, []).append(e)
            self._by_answer = by_answer
        return self._splits

    def problems(self, split: str) -> list[Problem]:
        if split not in SPLITS:
            raise ValueError(f"{self.dataset_name}: unknown split {split!r}; expected one of {SPLITS}")
        return [p for p, _ in self._build()[split][:self.sizes[split]]]

    def train_problems(self) -> list[Problem]:
        return [p for p, _ in self._build()["train"]]

    # --- grading -------------------------------------------------------------------------------------
    def entries(self, answer: str) -> list[dict[str, Any]]:
        """The dataset items whose reference answer is `answer` (the scorer may read their metadata).
        An answer no item of the pool has is scored against a bare {"answer": answer} entry."""
        self._build()
        return self._by_answer.get(answer) or [{"answer": answer, "metadata": {}}]

    def normalise(self, got: str) -> str:
        return got

    def grade_answer(self, got: str, answer: str) -> bool:
        got = self.normalise(got)
        # items sharing a reference answer almost always score alike; if not, any one accepting counts
        for e in self.entries(answer):
            try:
                if float(self.ds.score_answer(got, e)) >= 1.0:
                    return True
            except Exception:  # a scorer choking on malformed model output: not correct
                continue
        return False


class GSMSymbolic(ReasoningGym):
    def __init__(self, sizes: dict[str, int], seed: int, options: dict | None = None,
                 formatter: Formatter | None = None):
        super().__init__("gsm_symbolic", sizes, seed, options, formatter)

    def solution(self, entry: dict) -> str:
        cot = str(entry["metadata"]["answer_cot"]).splitlines()
        steps = [line for line in cot if not line.lstrip().startswith("####")]
        return solution_text(steps, str(entry["answer"]))

    def normalise(self, got: str) -> str:
        """"28,080" -> "28080": the scorer reads the first number, which a thousands comma would cut."""
        return NUMBER_COMMAS.sub("", got)

    def grade_answer(self, got: str, answer: str) -> bool:
        # gsm_symbolic's scorer reads only entry["answer"] (its first number against the reference)
        return float(self.ds.score_answer(self.normalise(got), {"answer": answer})) >= 1.0
