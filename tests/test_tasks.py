import random
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pavflow.tasks import Arith, ArithSpec, Problem, Task, make_task
from pavflow.tasks.arith import ERRORS, SPLITS, solve, split_of

SIZES = {"train": 120, "val": 25, "test": 25}


def arith(seed=0, sizes=SIZES, **spec) -> Arith:
    return Arith(ArithSpec(**spec), dict(sizes), seed)


def task_cfg(**over) -> dict:
    cfg = {"name": "arith", "n_train": 7, "n_val": 3, "n_test": 4,
           **{k: f.default for k, f in ArithSpec.__dataclass_fields__.items()}}
    cfg.update(over)
    return cfg


# --- problems and splits -------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
def test_problems_deterministic_for_seed(split):
    assert arith(seed=3).problems(split) == arith(seed=3).problems(split)


@pytest.mark.parametrize("split", SPLITS)
def test_problems_differ_across_seeds(split):
    a = [p.question for p in arith(seed=0).problems(split)]
    b = [p.question for p in arith(seed=1).problems(split)]
    assert a != b
    assert len(set(a) & set(b)) < len(a) // 2  # not merely a reordering/shift


def test_splits_disjoint_sizes_honoured_ids_unique():
    task = arith(seed=0)
    by_split = {s: task.problems(s) for s in SPLITS}
    for s, probs in by_split.items():
        assert len(probs) == SIZES[s]
        assert all(isinstance(p, Problem) and p.split == s for p in probs)
        assert all(split_of(p.question) == s for p in probs)
        assert len({p.question for p in probs}) == len(probs)  # no duplicate within a split
    questions = [{p.question for p in probs} for probs in by_split.values()]
    for i in range(len(SPLITS)):
        for j in range(i + 1, len(SPLITS)):
            assert not questions[i] & questions[j], (SPLITS[i], SPLITS[j])
    ids = [p.problem_id for probs in by_split.values() for p in probs]
    assert len(ids) == len(set(ids))


def test_no_duplicate_questions_in_a_small_question_space():
    # 10 * 9 = 90 possible questions, ~72 of them in train: drawing 40 without dedup would repeat
    task = arith(sizes={"train": 40, "val": 3, "test": 3}, min_operands=2, max_operands=2,
                 modulus=10, ops="+")
    for split in SPLITS:
        qs = [p.question for p in task.problems(split)]
        assert len(qs) == task.sizes[split] == len(set(qs))


def test_split_sizes_zero_and_unknown_split():
    task = arith(sizes={"train": 0, "val": 2, "test": 0})
    assert task.problems("train") == []
    assert len(task.problems("val")) == 2
    with pytest.raises(ValueError, match="dev"):
        task.problems("dev")


def test_problem_fields_consistent_with_solution():
    task = arith(seed=5)
    for p in task.problems("test"):
        sol, ans = task.solution(p.question)
        assert (p.solution, p.answer) == (sol, ans)
        assert p.solution.endswith(f"\nA:{p.answer}")
        assert task.grade(p.solution, p.answer) == 1


# --- solve / solution ----------------------------------------------------------------------------

def test_solve_hand_example():
    assert solve("72*5-3", 100) == (["72*5=60", "60-3=57"], 57)


def test_solve_wraps_negative_into_modulus():
    assert solve("2-5+1", 10) == (["2-5=7", "7+1=8"], 8)


def test_solution_text_hand_example():
    task = arith()
    assert task.solution("72*5-3") == ("72*5=60\n60-3=57\nA:57", "57")
    assert task.prompt("72*5-3") == "Q:72*5-3\n"
    steps = task.split_steps(task.solution("72*5-3")[0])
    assert steps == ["72*5=60\n", "60-3=57\n", "A:57"]
    assert task.prefix("72*5-3", steps, 0) == "Q:72*5-3\n"
    assert task.prefix("72*5-3", steps, 2) == "Q:72*5-3\n72*5=60\n60-3=57\n"


# --- grading and answer extraction ---------------------------------------------------------------

SOL = "72*5=60\n60-3=57\nA:57"


def test_reference_graded_1_wrong_answer_0():
    task = arith()
    assert task.grade(SOL, "57") == 1
    assert task.grade(SOL.replace("A:57", "A:58"), "57") == 0
    assert task.grade("A:57", "57") == 1  # only the answer line counts


@pytest.mark.parametrize("response", [
    SOL + " extra",      # extra text after the answer
    SOL + "\nmore",      # extra line after the answer
    SOL + " ",           # trailing space
    SOL + "\n",          # trailing newline: last line is empty
    "72*5=60\n60-3=57\n57",  # missing "A:"
    "72*5=60\n60-3=57\na:57",
    "72*5=60\n60-3=57\nA: 57",
    " A:57",
    "A:057",
    "A:57\n60-3=57",     # answer not on the last line
    "",
])
def test_grader_is_strict(response):
    assert arith().grade(response, "57") == 0


def test_extract_answer():
    task = arith()
    assert task.extract_answer(SOL) == "57"
    assert task.extract_answer("A:0") == "0"
    assert task.extract_answer("A:007") == "007"
    for bad in ["", "A:", "A:57 ", SOL + "\n", "57", "A:5x", "x A:5", "A:57\nfoo", "A:-3"]:
        assert task.extract_answer(bad) is None, bad


def test_base_task_extract_answer_is_abstract():
    with pytest.raises(NotImplementedError):
        Task().extract_answer("A:1")


specs = st.builds(
    lambda lo, extra, mod, add_max, mul_min, mul_extra, ops: ArithSpec(
        min_operands=lo, max_operands=lo + extra, modulus=mod, add_max=add_max, mul_min=mul_min,
        mul_max=mul_min + mul_extra, ops=ops),
    st.integers(2, 4), st.integers(0, 3), st.integers(2, 1000), st.integers(1, 20), st.integers(1, 6),
    st.integers(0, 6), st.sampled_from(["+", "-", "*", "+-", "+*", "-*", "+-*", "*+"]))


@settings(max_examples=150, deadline=None)
@given(spec=specs, seed=st.integers(0, 2**32))
def test_extract_answer_of_solution_is_answer(spec, seed):
    task = Arith(spec, {}, 0)
    q = task.random_question(random.Random(seed))
    sol, ans = task.solution(q)
    assert task.extract_answer(sol) == ans
    assert task.grade(sol, ans) == 1
    assert 0 <= int(ans) < spec.modulus
    # one step per operation, then the answer step
    assert len(task.split_steps(sol)) == len(re.findall(r"[+\-*]", q)) + 1


@settings(max_examples=150, deadline=None)
@given(spec=specs, seed=st.integers(0, 2**32))
def test_random_question_respects_spec(spec, seed):
    q = Arith(spec, {}, 0).random_question(random.Random(seed))
    tokens = re.findall(r"\d+|[+\-*]", q)
    assert "".join(tokens) == q
    operands, ops = [int(t) for t in tokens[::2]], tokens[1::2]
    assert spec.min_operands <= len(operands) <= spec.max_operands
    assert 0 <= operands[0] < spec.modulus
    for op, b in zip(ops, operands[1:]):
        assert op in spec.ops
        if op == "*":
            assert spec.mul_min <= b <= spec.mul_max
        else:
            assert 1 <= b <= spec.add_max


# --- steps ---------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab1=\n \r\t\u00e9"), max_size=40) | st.text(max_size=40))
def test_split_steps_partitions_response(r):
    steps = arith().split_steps(r)
    assert "".join(steps) == r
    assert all(s for s in steps)  # no empty step
    for s in steps[:-1]:
        assert s.endswith("\n")
    for s in steps:
        assert "\n" not in s[:-1]  # a step is one line
    assert len(steps) == r.count("\n") + (0 if r.endswith("\n") or not r else 1)


# --- SFT sampling --------------------------------------------------------------------------------

def test_sample_train_only_yields_train_questions():
    task = arith()
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        prompt, solution = task.sample_train(rng)
        m = re.fullmatch(r"Q:(.*)\n", prompt)
        assert m is not None, prompt
        q = m.group(1)
        assert split_of(q) == "train"
        assert solution == task.solution(q)[0]
        seen.add(q)
    assert len(seen) > 200  # fresh examples, not one repeated pair
    # deterministic given the rng
    assert task.sample_train(random.Random(7)) == task.sample_train(random.Random(7))


# --- construction --------------------------------------------------------------------------------

TINY = {"kind": "tiny_llama", "chat_template": False}  # the policy that reads the prompts


def test_make_task_builds_arith_from_config():
    task = make_task(task_cfg(modulus=50, ops="+"), seed=2, policy_cfg=TINY)
    assert isinstance(task, Arith)
    assert task.spec == ArithSpec(modulus=50, ops="+")
    assert [len(task.problems(s)) for s in SPLITS] == [7, 3, 4]
    assert task.problems("val") == arith(seed=2, sizes={"val": 3}, modulus=50, ops="+").problems("val")


def test_make_task_unknown_name():
    with pytest.raises(ValueError, match="'gsm8k'"):
        make_task(task_cfg(name="gsm8k"), seed=0, policy_cfg=TINY)


@pytest.mark.parametrize("bad", [
    dict(min_operands=1), dict(min_operands=4, max_operands=3), dict(modulus=1), dict(add_max=0),
    dict(mul_min=0), dict(mul_min=6, mul_max=5), dict(ops=""), dict(ops="+/"), dict(ops="x"),
])
def test_arith_spec_rejects_bad_ranges(bad):
    with pytest.raises(ValueError, match="arith"):
        ArithSpec(**bad)


def test_arith_spec_accepts_edge_ranges():
    ArithSpec(min_operands=2, max_operands=2, modulus=2, add_max=1, mul_min=1, mul_max=1, ops="*")


def test_too_small_a_question_space_is_an_error_naming_the_size():
    spec = ArithSpec(min_operands=2, max_operands=2, modulus=2, add_max=1, mul_min=2, mul_max=2, ops="+")
    with pytest.raises(ValueError, match="task.n_test=50"):
        Arith(spec, {"train": 1, "val": 1, "test": 50}, seed=0).problems("test")


# --- answers and grading on arbitrary text -------------------------------------------------------

any_response = (st.text(alphabet=st.sampled_from("0123456789A:Q+-*=\n \u0663"), max_size=40)
                | st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(r=any_response, answer=st.from_regex(r"[0-9]{1,3}", fullmatch=True))
@example(r="1+2=3\nA:\u0663", answer="3")  # a non-ASCII digit is not the answer 3
def test_extract_and_grade_never_raise_and_agree(r, answer):
    task = arith()
    got = task.extract_answer(r)
    assert got is None or (got.isascii() and got.isdigit() and r.endswith("A:" + got))
    assert task.grade(r, answer) == int(got == answer)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.from_regex(r"[0-9+\-*=]{1,8}", fullmatch=True), max_size=5),
       answer=st.from_regex(r"[0-9]{1,3}", fullmatch=True))
def test_answer_step_is_graded_whatever_precedes_it(steps, answer):
    task = arith()
    r = "".join(s + "\n" for s in steps) + "A:" + answer
    assert task.extract_answer(r) == answer and task.grade(r, answer) == 1
    assert task.grade(r + "\n", answer) == 0  # a trailing empty line is not an answer step
    assert task.grade(r + "0", answer) == 0


@pytest.mark.parametrize("response, kind", [
    ("72*5=60\n60-3=57\nA:57", "correct"), ("72*5=61\n61-3=58\nA:58", "arithmetic slip"),
    ("72*5=60\n60-4=56\nA:56", "copy error"), ("72*5=60\n57-3=54\nA:54", "copy error"),
    ("72*5=60\n60-3=57\nA:58", "copy error"), ("72*5=60\nA:60", "wrong step count"),
    ("72*5=60\n60-3=57\n57+1=58\nA:58", "wrong step count"), ("72*5=60\n60-3=57", "missing answer"),
    ("72*5=60\n6-3=57x\nA:57", "malformed step"), ("", "missing answer")])
def test_diagnose_names_the_first_error(response, kind):
    assert arith().diagnose("72*5-3", response, "57") == kind


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 5), st.sampled_from("0123456789+-*=\nA:x"))
def test_diagnose_agrees_with_the_grade(seed, pos, ch):
    task = arith(seed=seed % 7)
    p = task.problems("val")[seed % 3]
    assert task.diagnose(p.question, p.solution, p.answer) == "correct"
    broken = p.solution[:pos] + ch + p.solution[pos + 1:]
    kind = task.diagnose(p.question, broken, p.answer)
    assert kind == "correct" or kind in ERRORS
    if kind == "correct":
        assert task.grade(broken, p.answer) == 1
    if task.grade(broken, p.answer) == 0:
        assert kind != "correct"
