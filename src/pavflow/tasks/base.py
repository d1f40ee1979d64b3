"""What a task gives the pipeline: problems, a prompt format, a step splitter and a strict grader."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    problem_id: str
    split: str
    question: str
    answer: str
    solution: str  # reference response: steps joined by the step separator, ending in the answer


class Task:
    """A response is a list of steps; every step but the last ends with `step_sep`."""

    step_sep = "\n"

    def prompt(self, question: str) -> str:
        raise NotImplementedError

    def problems(self, split: str) -> list[Problem]:
        raise NotImplementedError

    def grade(self, response: str, answer: str) -> int:
        """1 if `response` ends in exactly the reference answer, else 0 (the paper's Rex)."""
        raise NotImplementedError

    def extract_answer(self, response: str) -> str | None:
        """The final answer a response states, or None if it states none in the task's format."""
        raise NotImplementedError

    def diagnose(self, question: str, response: str, answer: str) -> str:
        """What is wrong with a response, for the report's analysis of search: "correct", or the kind of
        its first error. Tasks that can check steps say more than "missing answer" / "wrong answer"."""
        if self.grade(response, answer):
            return "correct"
        return "missing answer" if self.extract_answer(response) is None else "wrong answer"

    def split_steps(self, response: str) -> list[str]:
        """Steps of a response; `"".join(split_steps(r)) == r`. Empty response -> no steps."""
        if not response:
            return []
        parts = response.split(self.step_sep)
        steps = [p + self.step_sep for p in parts[:-1]]
        if parts[-1]:
            steps.append(parts[-1])
        return steps

    def prefix(self, question: str, steps: list[str], h: int) -> str:
        """Text of state s_h: the prompt followed by the first h steps."""
        return self.prompt(question) + "".join(steps[:h])
