"""`arith`: operations applied left to right, every intermediate result mod `modulus`.

    Q:72*5-3
    72*5=60
    60-3=57
    A:57

One step per operation, then the answer step. Problems are a pure function of (seed, split, index);
splits are disjoint by construction (a question is assigned to the split its hash picks) so that SFT
examples can be drawn freshly from `train` without ever meeting a val/test question.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from pavflow.tasks.base import Problem, Task

SPLITS = ("train", "val", "test")
ANSWER_RE = re.compile(r"A:([0-9]+)")  # ASCII digits only: \d also matches e.g. Arabic-Indic digits
STEP_RE = re.compile(r"([0-9]+)([+*-])([0-9]+)=([0-9]+)")
ERRORS = ("arithmetic slip", "copy error", "malformed step", "missing answer", "wrong step count")


@dataclass(frozen=True)
class ArithSpec:
    min_operands: int = 3
    max_operands: int = 6
    modulus: int = 100
    add_max: int = 9  # + and - operands are 1..add_max
    mul_min: int = 2
    mul_max: int = 5  # * operands are mul_min..mul_max
    ops: str = "+-*"

    def __post_init__(self):
        if not 2 <= self.min_operands <= self.max_operands:
            raise ValueError(f"arith: need 2 <= min_operands <= max_operands, got "
                             f"{self.min_operands}, {self.max_operands}")
        if self.modulus < 2 or self.add_max < 1 or not 1 <= self.mul_min <= self.mul_max:
            raise ValueError(f"arith: bad operand ranges {self}")
        if not self.ops or set(self.ops) - set("+-*"):
            raise ValueError(f"arith: ops must be a non-empty subset of '+-*', got {self.ops!r}")


def apply(a: int, op: str, b: int, modulus: int) -> int:
    return (a + b if op == "+" else a - b if op == "-" else a * b) % modulus


def solve(question: str, modulus: int) -> tuple[list[str], int]:
    """Reference steps (without the answer step) and the answer of a question like '72*5-3'."""
    tokens = re.findall(r"\d+|[+\-*]", question)
    acc, steps = int(tokens[0]), []
    for op, b in zip(tokens[1::2], tokens[2::2]):
        nxt = apply(acc, op, int(b), modulus)
        steps.append(f"{acc}{op}{b}={nxt}")
        acc = nxt
    return steps, acc


def split_of(question: str) -> str:
    """Hash-assigned split: 80% train, 10% val, 10% test, independent of any seed."""
    r = int.from_bytes(hashlib.sha256(question.encode()).digest()[:4], "little") % 10
    return "train" if r < 8 else "val" if r == 8 else "test"


def draw_problems(task, name: str, split: str) -> list[Problem]:
    """task.sizes[split] distinct questions of `split` (split_of), drawn from task.random_question with a
    stream seeded by the task's name, seed and split, each with task.solution's steps and answer."""
    if split not in SPLITS:
        raise ValueError(f"{name}: unknown split {split!r}; expected one of {SPLITS}")
    rng = random.Random(f"{name}-{task.seed}-{split}")
    seen, out, draws = set(), [], 0
    while len(out) < task.sizes[split]:
        draws += 1
        if draws > 1000 * (task.sizes[split] + 100):
            raise ValueError(f"{name}: found only {len(out)} distinct {split} questions for "
                             f"task.n_{split}={task.sizes[split]}; the spec {task.spec} has too few")
        q = task.random_question(rng)
        if q in seen or split_of(q) != split:
            continue
        seen.add(q)
        sol, ans = task.solution(q)
        out.append(Problem(f"{split}-{len(out):05d}", split, q, ans, sol))
    return out


class Arith(Task):
    def __init__(self, spec: ArithSpec, sizes: dict[str, int], seed: int):
        self.spec, self.sizes, self.seed = spec, sizes, seed

    def prompt(self, question: str) -> str:
        return f"Q:{question}\n"

    def random_question(self, rng: random.Random) -> str:
        s = self.spec
        n = rng.randint(s.min_operands, s.max_operands)
        q = str(rng.randint(0, s.modulus - 1))
        for _ in range(n - 1):
            op = rng.choice(s.ops)
            b = rng.randint(1, s.add_max) if op in "+-" else rng.randint(s.mul_min, s.mul_max)
            q += f"{op}{b}"
        return q

    def solution(self, question: str) -> tuple[str, str]:
        steps, answer = solve(question, self.spec.modulus)
        return "".join(s + self.step_sep for s in steps) + f"A:{answer}", str(answer)

    def sample_train(self, rng: random.Random) -> tuple[str, str]:
        """A fresh (prompt, solution) pair from the train split, for SFT."""
        while True:
            q = self.random_question(rng)
            if split_of(q) == "train":
                return self.prompt(q), self.solution(q)[0]

    def problems(self, split: str) -> list[Problem]:
        return draw_problems(self, "arith", split)

    def extract_answer(self, response: str) -> str | None:
        """Digits of the last line if it is exactly `A:<digits>`, else None."""
        m = ANSWER_RE.fullmatch(response.split(self.step_sep)[-1])
        return m.group(1) if m is not None else None

    def grade(self, response: str, answer: str) -> int:
        return int(self.extract_answer(response) == answer)

    def diagnose(self, question: str, response: str, answer: str) -> str:
        """The first error of a response (one of ERRORS), or "correct": an arithmetic slip (a step's
        result is wrong), a copy error (a step does not continue from the last result with the
        question's next operation, or the answer is not the last result), a malformed step, a missing
        answer line, or too few / too many steps."""
        ops = re.findall(r"[+\-*]", question[1:])  # the first operand may not start with a sign
        operands = re.findall(r"[0-9]+", question)
        lines = response.split(self.step_sep)
        value = int(operands[0])
        for i, line in enumerate(lines):
            if ANSWER_RE.fullmatch(line):
                if i != len(lines) - 1:
                    return "wrong step count"
                if i != len(ops):
                    return "wrong step count"
                return "correct" if int(line[2:]) == value and str(value) == answer else \
                    ("copy error" if int(line[2:]) != value else "arithmetic slip")
            m = STEP_RE.fullmatch(line)
            if m is None:  # a last line that is empty or no step: the response ended without an answer
                last = i == len(lines) - 1 and (i >= len(ops) or not line)
                return "missing answer" if last else "malformed step"
            if i >= len(ops):
                return "wrong step count"
            a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            if a != value or op != ops[i] or b != int(operands[i + 1]):
                return "copy error"
            if c != apply(a, op, b, self.spec.modulus):
                return "arithmetic slip"
            value = c
        return "missing answer"
