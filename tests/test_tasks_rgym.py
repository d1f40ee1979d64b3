"""reasoning-gym tasks: gsm_symbolic (reference chains of thought as steps, reasoning-gym's scorer as
grader) and the generic `reasoning_gym` task with a dataset's own scorer; the shared line-step format."""
from __future__ import annotations

import random

import pytest

from pavflow.config import compose
from pavflow.config import ConfigError
from pavflow.tasks import make_task
from pavflow.tasks.rgym import GSMSymbolic, ReasoningGym, TaskDataError
from pavflow.tasks.text import INSTRUCTION

SIZES = {"train": 20, "val": 6, "test": 6}


@pytest.fixture(scope="module")
def gsm():
    return GSMSymbolic(SIZES, seed=0)


@pytest.fixture(scope="module")
def chain():
    return ReasoningGym("chain_sum", SIZES, seed=0)


# --- the line-step format shared by the real-data tasks --------------------------------------------

@pytest.mark.parametrize("response, steps", [
    ("a\nb\nAnswer: 3", ["a\n", "b\n", "Answer: 3"]),
    ("a\n\nb\nAnswer: 3\n", ["a\n\n", "b\n", "Answer: 3\n"]),  # a blank line stays with its step
    ("\n\na\nAnswer: 3", ["\n\na\n", "Answer: 3"]),
    ("\n\n", ["\n\n"]),
    ("", []),
    ("Answer: 3", ["Answer: 3"]),
])
def test_split_steps_lines(gsm, response, steps):
    assert gsm.split_steps(response) == steps
    assert "".join(gsm.split_steps(response)) == response


@pytest.mark.parametrize("response, answer", [
    ("x = 2\nAnswer: 28080", "28080"),
    ("x\nanswer : 28080  \n\n", "28080"),
    ("Answer: 28080\nI hope this helps", None),  # the answer line must be the last line
    ("The answer is 28080", None),
    ("Answer:", None),
    ("Answer:   \n", None),
    ("", None),
])
def test_extract_answer_reads_only_the_last_line(gsm, response, answer):
    assert gsm.extract_answer(response) == answer


# --- gsm_symbolic ----------------------------------------------------------------------------------

def test_gsm_problems_are_deterministic_disjoint_and_sized(gsm):
    again = GSMSymbolic(SIZES, seed=0)
    qs = {}
    for s, n in SIZES.items():
        ps = gsm.problems(s)
        assert len(ps) == n and ps == again.problems(s)
        assert [p.problem_id for p in ps] == [f"{s}-{i:05d}" for i in range(n)]
        assert all(p.split == s for p in ps)
        qs[s] = {p.question for p in ps}
    assert not (qs["train"] & qs["val"]) and not (qs["train"] & qs["test"]) and not (qs["val"] & qs["test"])
    other = GSMSymbolic(SIZES, seed=1)
    assert [p.question for p in other.problems("test")] != [p.question for p in gsm.problems("test")]


def test_gsm_reference_solution_is_the_cot_in_lines_and_grades_correct(gsm):
    for s in SIZES:
        for p in gsm.problems(s):
            steps = gsm.split_steps(p.solution)
            assert "".join(steps) == p.solution
            assert len(steps) >= 2 and steps[-1] == f"Answer: {p.answer}"
            assert not any("####" in a for a in steps)
            assert gsm.grade(p.solution, p.answer) == 1


def test_gsm_steps_come_from_answer_cot(gsm):
    entry = gsm.ds[0]
    cot = entry["metadata"]["answer_cot"].splitlines()
    sol = gsm.solution(entry)
    assert gsm.split_steps(sol) == [line + "\n" for line in cot[:-1]] + [f"Answer: {entry['answer']}"]
    assert cot[-1] == f"#### {entry['answer']}"


@pytest.mark.parametrize("response, correct", [
    ("6 * 2 = 12 days\n195 * 12 * 12 = 28080\nAnswer: 28080", 1),
    ("Answer: 28,080", 1),  # a thousands comma is not a different number
    ("Answer: £28080", 1),
    ("Answer: 28080.0", 1),
    ("Answer: 28081", 0),
    ("Answer: 2808", 0),
    ("195 * 144 = 28080", 0),  # the right number, but no answer line
    ("Answer: 28080\nwait, no", 0),
    ("Answer: many", 0),
    ("", 0),
])
def test_gsm_grade_known_example(gsm, response, correct):
    assert gsm.grade(response, "28080") == correct


def test_gsm_prompt_and_sft_pairs(gsm):
    q = gsm.problems("test")[0].question
    assert gsm.prompt(q) == f"{q}\n\n{INSTRUCTION}\n"
    wrapped = GSMSymbolic(SIZES, 0, formatter=lambda m: f"<user>{m}</user><assistant>")
    assert wrapped.prompt(q) == f"<user>{q}\n\n{INSTRUCTION}</user><assistant>"
    rng = random.Random(0)
    train = {gsm.prompt(p.question): p.solution for p in gsm.train_problems()}
    held_out = {gsm.prompt(p.question) for s in ("val", "test") for p in gsm.problems(s)}
    pairs = [gsm.sample_train(rng) for _ in range(50)]
    assert all(train[pr] == sol for pr, sol in pairs)
    assert not {pr for pr, _ in pairs} & held_out
    assert len({pr for pr, _ in pairs}) > 10


def test_make_task_builds_gsm_from_config():
    cfg = compose("smoke", ["policy=smollm2_135m", "task=gsm_symbolic", "task.n_train=5", "task.n_val=2", "task.n_test=3"])
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    assert isinstance(task, GSMSymbolic)
    assert [len(task.problems(s)) for s in ("train", "val", "test")] == [5, 2, 3]


# --- any reasoning-gym dataset ---------------------------------------------------------------------

def test_generic_dataset_uses_its_own_scorer(chain):
    p = chain.problems("test")[0]
    assert p.solution == f"Answer: {p.answer}"
    assert chain.grade(p.solution, p.answer) == 1
    assert chain.grade(f"I add the terms\nAnswer: {p.answer}", p.answer) == 1
    wrong = str(int(p.answer) + 1)
    assert chain.grade(f"Answer: {wrong}", p.answer) == 0
    assert chain.grade(f"Answer: {p.answer} or {wrong}", p.answer) == 0  # partial credit is wrong
    assert chain.grade(p.answer, p.answer) == 0  # no answer line
    for q in chain.problems("val"):
        assert chain.grade(q.solution, q.answer) == 1


def test_generic_dataset_scorer_reads_the_entry():
    """basic_arithmetic's scorer compares with entry['answer']; the entry is found by the answer."""
    t = ReasoningGym("basic_arithmetic", SIZES, seed=3)
    for p in t.problems("val"):
        assert t.grade(f"Answer: {p.answer}", p.answer) == 1
        assert t.grade(f"Answer: {p.answer}0", p.answer) == 0
        assert t.entries(p.answer)[0]["question"] in {q.question for s in SIZES for q in t.problems(s)} | \
               {q.question for q in t.train_problems()}


def test_unknown_dataset_is_an_error_naming_the_key():
    with pytest.raises(TaskDataError, match=r"task\.dataset='no_such_dataset'"):
        ReasoningGym("no_such_dataset", SIZES, seed=0)
    with pytest.raises(ConfigError, match=r"task\.dataset='no_such_dataset'"):
        compose("smoke", ["task=reasoning_gym", "task.dataset=no_such_dataset"])
    with pytest.raises(ConfigError, match=r"task\.dataset=''.*needs a dataset name"):
        compose("smoke", ["task=reasoning_gym", "task.dataset="])


def test_dataset_options_reach_reasoning_gym():
    cfg = compose("smoke", ["policy=smollm2_135m", "task=reasoning_gym", "task.dataset=chain_sum", "+task.options.min_terms=2",
                            "+task.options.max_terms=2"])
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    for p in task.problems("test"):
        assert p.question.count("+") + p.question.count(" - ") == 1, p.question
