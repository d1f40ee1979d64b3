import itertools
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from pavflow.config import CONF_DIR, TaskConfig
from pavflow.tasks import Countdown, CountdownSpec, Problem, make_task
from pavflow.tasks.arith import SPLITS, split_of
from pavflow.tasks.countdown import is_alive, legal_steps, parse_question, random_path, replay

SIZES = {"train": 120, "val": 25, "test": 25}
SOL = "15-7=8\n8-3=5\n5-5=0\nA:357"  # the module docstring's example
Q = "15:23578"


def countdown(seed=0, sizes=SIZES, **spec) -> Countdown:
    return Countdown(CountdownSpec(**spec), dict(sizes), seed)


def lines_of(response: str) -> list[str]:
    return response.split("\n")[:-1]


# --- problems and splits -------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
def test_problems_deterministic_for_seed_and_differ_across_seeds(split):
    assert countdown(seed=3).problems(split) == countdown(seed=3).problems(split)
    a = [p.question for p in countdown(seed=0).problems(split)]
    b = [p.question for p in countdown(seed=1).problems(split)]
    assert len(set(a) & set(b)) < len(a) // 2


def test_splits_disjoint_sizes_honoured_ids_unique():
    task = countdown(seed=0)
    by_split = {s: task.problems(s) for s in SPLITS}
    for s, probs in by_split.items():
        assert len(probs) == SIZES[s]
        assert all(isinstance(p, Problem) and p.split == s and split_of(p.question) == s for p in probs)
        assert len({p.question for p in probs}) == len(probs)
    for a, b in itertools.combinations(by_split.values(), 2):
        assert not {p.question for p in a} & {p.question for p in b}
    ids = [p.problem_id for probs in by_split.values() for p in probs]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="dev"):
        task.problems("dev")


def test_too_small_a_question_space_is_an_error_naming_the_size():
    with pytest.raises(ValueError, match="task.n_test=50"):
        countdown(sizes={"test": 50}, pool_min=2, pool_max=2, num_max=2, pick_min=2, pick_max=2).problems("test")


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), lo=st.integers(2, 6), extra=st.integers(0, 3), pick=st.integers(1, 6))
def test_random_question_respects_spec(seed, lo, extra, pick):
    spec = CountdownSpec(pool_min=lo, pool_max=min(9, lo + extra), num_max=9,
                         pick_min=min(pick, lo), pick_max=lo)
    target, pool = parse_question(Countdown(spec, {}, 0).random_question(random.Random(seed)))
    assert list(pool) == sorted(set(pool)) and spec.pool_min <= len(pool) <= spec.pool_max
    assert all(1 <= b <= spec.num_max for b in pool)
    assert any(sum(c) == target for k in range(spec.pick_min, spec.pick_max + 1)
               for c in itertools.combinations(pool, k))


@pytest.mark.parametrize("bad", [dict(pool_min=1), dict(pool_min=5, pool_max=4), dict(num_max=10, pool_max=6),
                                 dict(pool_max=7, num_max=6), dict(pick_min=0), dict(pick_min=3, pick_max=2),
                                 dict(pick_max=5)])
def test_spec_rejects_bad_ranges(bad):
    with pytest.raises(ValueError, match="countdown"):
        CountdownSpec(**bad)


# --- reference solutions -------------------------------------------------------------------------

def test_hand_example():
    task = countdown()
    assert task.prompt(Q) == "Q:15:23578\n"
    assert task.grade(SOL, Q) == 1
    assert task.extract_answer(SOL) == "357"
    assert task.split_steps(SOL) == ["15-7=8\n", "8-3=5\n", "5-5=0\n", "A:357"]
    assert legal_steps(Q, ["15-7=8"]) == ["8-2=6", "8-3=5", "8-5=3", "8-8=0"]
    assert [is_alive(Q, ["15-7=8", s]) for s in legal_steps(Q, ["15-7=8"])] == [False, True, True, True]


@pytest.mark.parametrize("split", SPLITS)
def test_reference_solutions_grade_1(split):
    task = countdown(seed=2)
    for p in task.problems(split):
        assert p.answer == p.question
        assert (p.solution, p.answer) == task.solution(p.question)
        assert task.grade(p.solution, p.answer) == 1
        used = [int(line.split("-")[1].split("=")[0]) for line in lines_of(p.solution)]
        assert task.extract_answer(p.solution) == "".join(map(str, sorted(used)))


def test_sample_train_draws_train_questions_and_fresh_valid_paths():
    task = countdown()
    rng = random.Random(0)
    seen, paths = set(), set()
    for _ in range(300):
        prompt, solution = task.sample_train(rng)
        q = re.fullmatch(r"Q:(.*)\n", prompt).group(1)
        assert split_of(q) == "train" and task.grade(solution, q) == 1
        seen.add(q)
    assert len(seen) > 200
    for seed in range(30):  # one question, many draws: several different valid paths
        paths.add(task.render(Q, random_path(Q, random.Random(seed))))
    assert len(paths) >= 5 and all(task.grade(s, Q) for s in paths)
    assert task.sample_train(random.Random(7)) == task.sample_train(random.Random(7))


def test_alphabet_covers_prompts_and_solutions():
    alphabet = set(OmegaConf.load(Path(CONF_DIR) / "policy" / "tiny.yaml").alphabet)
    task = countdown(sizes={"train": 300, "val": 50, "test": 50})
    for s in SPLITS:
        for p in task.problems(s):
            assert set(task.prompt(p.question) + p.solution) <= alphabet
            assert len(task.prompt(p.question) + p.solution) < 64  # tiny policy: 128 positions


# --- grading -------------------------------------------------------------------------------------

@pytest.mark.parametrize("response", [
    "A:357",                              # the answer line alone
    "15-7=8\n8-3=5\nA:357",               # short: stops at 5
    "15-7=8\n8-3=5\nA:37",                # short, answer of the steps taken
    "15-7=8\n8-3=5\n5-5=0\n0-2=-2\nA:2357",  # overlong: past 0
    SOL + "\n",                           # trailing empty line
    SOL + "\nA:357",                      # two answer lines
    SOL.replace("A:357", "A:735"),        # answer not ascending
    SOL.replace("A:357", "A:35"),         # answer misses a number
    SOL.replace("A:357", "A:0"),
    "15-7=8\n8-3=5\n5-5=0",               # no answer line
    "15-7=8\n8-3=6\n6-6=0\nA:367",        # miscomputed (then 6 not in the pool)
    "15-7=9\n9-9=0\nA:79",                # miscomputed, consistent afterwards
    "15-6=9\n9-9=0\nA:69",                # 6 is not in the pool
    "15-5=10\n10-5=5\n5-5=0\nA:555",      # 5 used three times
    "15-8=7\n7-8=-1\nA:88",               # b > r
    "14-7=7\n7-7=0\nA:77",                # does not start from the target
    "15-7=8\n9-9=0\nA:79",                # does not continue from the remainder
    "15-07=8\n8-3=5\n5-5=0\nA:357",       # leading zero
    "15-7=08\n08-8=0\nA:78",
    "15-7=8 \n8-8=0\nA:78",               # stray space
    "15-7-8=0\nA:78",                     # two numbers in one step
    "15-15=0\nA:15",
    "",
])
def test_grader_rejects(response):
    assert countdown().grade(response, Q) == 0


def test_grader_accepts_other_valid_chains():
    task = countdown()
    for r in ["15-8=7\n7-7=0\nA:78", "15-2=13\n13-5=8\n8-8=0\nA:258", "15-5=10\n10-3=7\n7-7=0\nA:357"]:
        assert task.grade(r, Q) == 1, r
    assert task.grade("15-2=13\n13-5=8\n8-8=0\nA:258", "15:235789") == 1  # graded against the question given
    assert task.grade("15-2=13\n13-5=8\n8-8=0\nA:258", "15:2359") == 0


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), where=st.floats(0, 1, exclude_max=True), char=st.sampled_from("0123456789-=\nA:Q+"),
       delete=st.booleans())
def test_any_one_character_edit_of_a_correct_chain_is_wrong(seed, where, char, delete):
    task = countdown()
    rng = random.Random(seed)
    q = task.random_question(rng)
    sol = task.render(q, random_path(q, rng))
    i = int(where * len(sol))
    if not delete and sol[i] == char:
        return
    edited = sol[:i] + ("" if delete else char) + sol[i + 1:]
    assert task.grade(edited, q) == 0, (q, sol, edited)


@settings(max_examples=200, deadline=None)
@given(r=st.text(alphabet=st.sampled_from("0123456789A:Q-=\n \u0663"), max_size=40) | st.text(max_size=40))
def test_grade_and_extract_never_raise(r):
    task = countdown()
    got = task.extract_answer(r)
    assert got is None or (got.isdigit() and r.endswith("A:" + got))
    assert task.grade(r, Q) in (0, 1)
    assert task.grade(r, Q) == 0 or got is not None


@settings(max_examples=300, deadline=None)
@given(r=st.text(alphabet=st.sampled_from("15-=\nA:"), max_size=40) | st.text(max_size=40))
def test_split_steps_partitions_response(r):
    steps = countdown().split_steps(r)
    assert "".join(steps) == r and all(steps)
    assert all(s.endswith("\n") for s in steps[:-1]) and all("\n" not in s[:-1] for s in steps)


# --- dead ends: `solvable` against brute force ---------------------------------------------------

def brute_force_solvable(task: Countdown, question: str, steps: list[str]) -> bool:
    """Does any continuation the grader accepts exist? Tries every sequence of pool numbers as
    correctly computed steps and every ascending subset of the pool as the answer line."""
    text = "".join(steps)
    if text and not text.endswith("\n"):
        return bool(task.grade(text, question))
    lines = text.split("\n")[:-1]
    r = int(re.fullmatch(r"\d+-\d=(\d+)", lines[-1]).group(1)) if lines and re.fullmatch(r"\d+-\d=\d+", lines[-1]) \
        else parse_question(question)[0]
    pool = parse_question(question)[1]
    answers = ["A:" + "".join(map(str, c)) for k in range(len(pool) + 1) for c in itertools.combinations(pool, k)]
    for k in range(len(pool) + 1):
        for seq in itertools.product(pool, repeat=k):
            rest, cur = "", r
            for b in seq:
                rest += f"{cur}-{b}={cur - b}\n"
                cur -= b
            if cur == 0 and any(task.grade(text + rest + a, question) for a in answers):
                return True
    return False


def test_solvable_agrees_with_brute_force_on_small_cases():
    task = countdown(pool_min=3, pool_max=4, num_max=6, pick_min=1, pick_max=3)
    rng = random.Random(0)
    n_dead = n_alive = 0
    for _ in range(60):
        q = task.random_question(rng)
        target, pool = parse_question(q)
        lines, r = [], target
        for _ in range(rng.randint(0, 3)):  # random steps: legal or not, some miscomputed
            b = rng.choice(pool + (9,))
            c = r - b + (rng.random() < 0.1)
            lines.append(f"{r}-{b}={c}")
            r = c
        steps = [s + "\n" for s in lines]
        got = task.solvable(q, steps)
        assert got == brute_force_solvable(task, q, steps), (q, steps)
        n_dead, n_alive = n_dead + (not got), n_alive + got
        full = task.render(q, random_path(q, rng))
        assert task.solvable(q, task.split_steps(full)) and not task.solvable(q, task.split_steps(full + "1"))
    assert n_dead > 10 and n_alive > 10  # both kinds were checked


def test_solvable_on_the_example():
    task = countdown()
    assert task.solvable(Q, []) and task.solvable(Q, ["15-7=8\n"]) and task.solvable(Q, ["15-7=8\n", "8-8=0\n"])
    assert not task.solvable(Q, ["15-7=8\n", "8-2=6\n"])  # legal, dead: {3,5,8} misses 6
    assert not task.solvable(Q, ["15-7=9\n"])  # miscomputed
    assert replay(Q, ["15-7=8", "8-2=6"]) == (6, [7, 2])


def test_several_valid_next_steps_and_dead_ends_along_reference_paths():
    task = countdown(seed=0, sizes={"train": 1, "val": 100, "test": 1})
    alive, legal, dead_states, states = 0, 0, 0, 0
    for p in task.problems("val"):
        lines = lines_of(p.solution)
        for h in range(len(lines)):
            nxt = legal_steps(p.question, lines[:h])
            ok = [s for s in nxt if is_alive(p.question, lines[:h] + [s])]
            assert lines[h] in ok
            states, legal, alive = states + 1, legal + len(nxt), alive + len(ok)
            dead_states += len(ok) < len(nxt)
    assert alive / states > 1.5  # several valid next steps on average
    assert dead_states / states > 0.3  # and a dead-end step is on offer at many states


# --- construction --------------------------------------------------------------------------------

def test_make_task_builds_countdown_and_group_file_equals_schema():
    yaml = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "task" / "countdown.yaml"))
    schema = OmegaConf.to_container(OmegaConf.structured(TaskConfig()))
    assert all(schema[k] == v for k, v in yaml.items() if k != "name")
    assert set(CountdownSpec.__dataclass_fields__) <= set(yaml)
    cfg = {**schema, **yaml, "n_train": 7, "n_val": 3, "n_test": 4, "pool_max": 5}
    task = make_task(cfg, seed=2, policy_cfg={"kind": "tiny_llama", "chat_template": False})
    assert isinstance(task, Countdown) and task.spec == CountdownSpec(pool_max=5)
    assert [len(task.problems(s)) for s in SPLITS] == [7, 3, 4]


def test_compose_with_task_countdown():
    from pavflow.config import compose
    cfg = compose("didactic", ["task=countdown"])
    assert cfg.task.name == "countdown" and cfg.task.pool_max == 6
