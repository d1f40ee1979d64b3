"""The response format of the real-data tasks (gsm_symbolic, reasoning_gym, jsonl, parquet): free text,
one reasoning step per line, ending with a final line `Answer: <answer>`.

    The carpenter works 6 days/week * 2 weeks/month = 12 days/month
    He earns 195 * 12 = 2340 per month
    Answer: 28080

Steps are lines (the separator is the newline, as in the reference solutions and in what an
instruction-tuned model writes), so the model's steps and the reference's steps are cut the same way.
Blank lines are not steps of their own: a run of newlines stays with the step it ends. The answer is
read from the last non-blank line only, and only if it starts with `Answer:`; anything else (no answer
line, an answer in the middle, a truncated response) states no answer and grades 0.
"""
from __future__ import annotations

import hashlib
import random
import re
from typing import Callable

from pavflow.tasks.base import Problem, Task

SPLITS = ("train", "val", "test")
ANSWER_RE = re.compile(r"\s*answer\s*:\s*(.*?)\s*", re.IGNORECASE | re.DOTALL)
INSTRUCTION = ("Solve the problem step by step, one step per line. "
               "End with a last line of the form 'Answer: <final answer>'.")

Formatter = Callable[[str], str]  # the policy's chat template around a user message


def split_of(question: str) -> str:
    """Hash-assigned split: 80% train, 10% val, 10% test, independent of any seed."""
    r = int.from_bytes(hashlib.sha256(question.encode()).digest()[:4], "little") % 10
    return "train" if r < 8 else "val" if r == 8 else "test"


def solution_text(steps: list[str], answer: str) -> str:
    """A reference response: the non-blank steps, one per line, then `Answer: <answer>`."""
    lines = [s.strip() for s in steps if s.strip()]
    return "".join(line + "\n" for line in lines) + f"Answer: {answer}"


class TextTask(Task):
    """Shared by the real-data tasks: prompt (instruction + question, wrapped by the policy's chat
    template when it has one), line steps, `Answer:` extraction. Subclasses give `problems` and the
    grader `grade_answer(extracted, reference)`."""

    step_sep = "\n"

    def __init__(self, sizes: dict[str, int], seed: int, formatter: Formatter | None = None):
        self.sizes, self.seed = sizes, seed
        self.formatter = formatter

    # --- prompt -----------------------------------------------------------------------------------
    def message(self, question: str) -> str:
        return f"{question.strip()}\n\n{INSTRUCTION}"

    def prompt(self, question: str) -> str:
        m = self.message(question)
        return self.formatter(m) if self.formatter is not None else m + "\n"

    # --- steps and answers ------------------------------------------------------------------------
    def split_steps(self, response: str) -> list[str]:
        """Lines, each keeping its newline(s); blank lines join the step before them (or the first
        step, if the response starts with blank lines). `"".join(split_steps(r)) == r`."""
        if not response:
            return []
        steps: list[str] = []
        lead = ""
        for part in response.splitlines(keepends=True):
            if not part.strip():
                if steps:
                    steps[-1] += part
                else:
                    lead += part
                continue
            steps.append(lead + part)
            lead = ""
        if lead:  # only blank lines
            steps.append(lead)
        return steps

    def extract_answer(self, response: str) -> str | None:
        lines = [s for s in response.splitlines() if s.strip()]
        if not lines:
            return None
        m = ANSWER_RE.fullmatch(lines[-1])
        return m.group(1) if m is not None and m.group(1) else None

    def grade(self, response: str, answer: str) -> int:
        got = self.extract_answer(response)
        return 0 if got is None else int(self.grade_answer(got, answer))

    def grade_answer(self, got: str, answer: str) -> bool:
        raise NotImplementedError

    # --- SFT ----------------------------------------------------------------------------------------
    def train_problems(self) -> list[Problem]:
        """The pool SFT draws from: by default the train split itself."""
        return self.problems("train")

    def sample_train(self, rng: random.Random) -> tuple[str, str]:
        """A (prompt, reference response) pair from the train pool, for SFT."""
        pool = getattr(self, "_sft_pool", None)
        if pool is None:
            pool = self._sft_pool = [p for p in self.train_problems() if p.solution]
            if not pool:
                raise ValueError(f"{type(self).__name__}: no train problem has a reference solution to "
                                 "fine-tune on")
        p = pool[rng.randrange(len(pool))]
        return self.prompt(p.question), p.solution

    def check(self) -> None:
        """Build every split once (raising on bad data or too few problems) before any job runs."""
        for s in SPLITS:
            self.problems(s)
