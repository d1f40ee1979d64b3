"""`countdown`: count a target down to 0 by subtracting distinct numbers of a pool (subset sum).

    Q:15:23578
    15-7=8
    8-3=5
    5-5=0
    A:357

The question is `target:pool`, the pool distinct digits 1..num_max in ascending order, the target the
sum of a random pick of them. A step `r-b=r'` subtracts an unused pool number b <= r from the current
remainder r (the first r is the target); at 0 the answer line lists the numbers used, ascending.

From most states several steps are legal, and some lead to dead ends: r' > 0 that no subset of the
unused numbers sums to (15-2=13 above is alive, 13 = 5+8; after 15-7=8, 8-2=6 is dead: {3,5,8} has
no subset summing to 6). A problem has as many correct answers as subsets hit the target, so
`Problem.answer` is the question itself and `grade` replays the whole chain against it; the answer
line alone earns nothing. `solvable` decides whether a prefix can still be completed (analysis and
tests only: the pipeline labels states by MC rollouts).

Reference solutions are random valid paths: each step uniform over the legal steps that are not dead
ends. The ideal policy's next-step distribution is then spread over every alive step, so SFT teaches
a branching policy (several valid next steps) whose only way to fail at a legal step is a dead end;
a shortest or sorted path would teach one deterministic order instead. Problems are a pure function
of (seed, split, index) and splits are hash-assigned, as in `arith`.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from pavflow.tasks.arith import draw_problems, split_of
from pavflow.tasks.base import Problem, Task

STEP_RE = re.compile(r"(0|[1-9][0-9]*)-([1-9])=(0|[1-9][0-9]*)")
ANSWER_RE = re.compile(r"A:([0-9]+)")
QUESTION_RE = re.compile(r"([1-9][0-9]*):([1-9]+)")


@dataclass(frozen=True)
class CountdownSpec:
    pool_min: int = 4
    pool_max: int = 6
    num_max: int = 9  # pool numbers are distinct digits 1..num_max
    pick_min: int = 2  # the target is the sum of pick_min..pick_max pool numbers
    pick_max: int = 4

    def __post_init__(self):
        if not 2 <= self.pool_min <= self.pool_max <= self.num_max <= 9:
            raise ValueError(f"countdown: need 2 <= pool_min <= pool_max <= num_max <= 9, got {self}")
        if not 1 <= self.pick_min <= self.pick_max <= self.pool_min:
            raise ValueError(f"countdown: need 1 <= pick_min <= pick_max <= pool_min, got {self}")


def parse_question(question: str) -> tuple[int, tuple[int, ...]]:
    m = QUESTION_RE.fullmatch(question)
    if m is None:
        raise ValueError(f"countdown: malformed question {question!r}")
    return int(m.group(1)), tuple(int(d) for d in m.group(2))


def subset_sums(nums) -> set[int]:
    sums = {0}
    for b in nums:
        sums |= {s + b for s in sums}
    return sums


def replay(question: str, lines: list[str]) -> tuple[int, list[int]] | None:
    """(remainder, numbers used) after the step lines `lines` (no separators), or None at the first
    line that is not a legal, correctly computed step."""
    r, pool = parse_question(question)
    used = []
    for line in lines:
        m = STEP_RE.fullmatch(line)
        if m is None:
            return None
        a, b, c = map(int, m.groups())
        if a != r or b not in pool or b in used or b > r or c != a - b:
            return None
        r = c
        used.append(b)
    return r, used


def legal_steps(question: str, lines: list[str]) -> list[str]:
    """Every legal next step line after `lines` (dead ends included), in pool order."""
    state = replay(question, lines)
    if state is None:
        return []
    r, used = state
    return [f"{r}-{b}={r - b}" for b in parse_question(question)[1] if b not in used and b <= r]


def is_alive(question: str, lines: list[str]) -> bool:
    """Whether the goal is reachable after the legal step lines `lines`."""
    state = replay(question, lines)
    if state is None:
        return False
    r, used = state
    return r in subset_sums(b for b in parse_question(question)[1] if b not in used)


def random_path(question: str, rng: random.Random) -> list[str]:
    """A random valid chain: each step uniform over the legal steps that are not dead ends."""
    lines = []
    while replay(question, lines)[0] > 0:
        lines.append(rng.choice([s for s in legal_steps(question, lines) if is_alive(question, lines + [s])]))
    return lines


def answer_line(question: str, lines: list[str]) -> str:
    return "A:" + "".join(map(str, sorted(replay(question, lines)[1])))


class Countdown(Task):
    def __init__(self, spec: CountdownSpec, sizes: dict[str, int], seed: int):
        self.spec, self.sizes, self.seed = spec, sizes, seed

    def prompt(self, question: str) -> str:
        return f"Q:{question}\n"

    def random_question(self, rng: random.Random) -> str:
        s = self.spec
        pool = sorted(rng.sample(range(1, s.num_max + 1), rng.randint(s.pool_min, s.pool_max)))
        target = sum(rng.sample(pool, rng.randint(s.pick_min, s.pick_max)))
        return f"{target}:{''.join(map(str, pool))}"

    def render(self, question: str, lines: list[str]) -> str:
        return "".join(s + self.step_sep for s in lines) + answer_line(question, lines)

    def solution(self, question: str) -> tuple[str, str]:
        """The reference solution (a random valid path seeded by the question) and the answer (the
        question: what the grader needs)."""
        return self.render(question, random_path(question, random.Random(f"countdown-{question}"))), question

    def sample_train(self, rng: random.Random) -> tuple[str, str]:
        """A fresh (prompt, solution) pair from the train split, a fresh random path each draw."""
        while True:
            q = self.random_question(rng)
            if split_of(q) == "train":
                return self.prompt(q), self.render(q, random_path(q, rng))

    def problems(self, split: str) -> list[Problem]:
        return draw_problems(self, "countdown", split)

    def extract_answer(self, response: str) -> str | None:
        """The numbers of the last line if it is exactly `A:<digits>`, else None."""
        m = ANSWER_RE.fullmatch(response.split(self.step_sep)[-1])
        return m.group(1) if m is not None else None

    def grade(self, response: str, answer: str) -> int:
        """1 iff every step is legal and correctly computed, the last one reaches 0 and the answer line
        lists the numbers used; `answer` is the question."""
        *lines, last = response.split(self.step_sep)
        state = replay(answer, lines)
        return int(state is not None and state[0] == 0 and last == answer_line(answer, lines))

    def solvable(self, question: str, steps: list[str]) -> bool:
        """Whether some continuation of the steps `steps` (as `split_steps` gives them) is graded 1.
        A last step without a separator ends the response: then it is whether the response is correct."""
        text = "".join(steps)
        if text and not text.endswith(self.step_sep):
            return bool(self.grade(text, question))
        return is_alive(question, text.split(self.step_sep)[:-1])
