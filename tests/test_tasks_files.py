"""User files (jsonl / parquet): good files load into problems graded by math-verify; bad files are
rejected with a message naming the file, the row and the column, when the config is composed (before
any job runs) and when Snakemake builds the DAG."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pavflow.config import ConfigError
from pavflow.config import compose
from pavflow.tasks import make_task
from pavflow.tasks.files import FileTask, read_rows
from pavflow.tasks.rgym import TaskDataError

REPO = Path(__file__).resolve().parents[1]
SIZES = {"train": 3, "val": 2, "test": 2}


def good_rows() -> list[dict]:
    rows = []
    for i in range(4):
        rows.append({"question": f"What is {i} + {i}?", "answer": str(2 * i),
                     "solution": f"{i} + {i} = {2 * i}\n#### {2 * i}", "split": "train"})
    rows.append({"question": "Half of one?", "answer": "\\frac{1}{2}", "solution": None, "split": "val"})
    rows.append({"question": "Three times 0.5?", "answer": 1.5, "split": "val"})
    rows.append({"question": "What is 7 * 6?", "answer": "42", "solution": "7 * 6 = 42", "split": "test"})
    rows.append({"question": "Square root of 16?", "answer": 4, "split": "test"})
    return rows


def write_jsonl(path: Path, rows, raw_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    for i, text in (raw_lines or {}).items():
        lines[i - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def good_jsonl(tmp_path) -> Path:
    return write_jsonl(tmp_path / "good.jsonl", good_rows())


@pytest.fixture
def good_parquet(tmp_path) -> Path:
    rows = good_rows()
    df = pl.DataFrame({"question": [r["question"] for r in rows], "answer": [str(r["answer"]) for r in rows],
                       "solution": [r.get("solution") for r in rows], "split": [r["split"] for r in rows]})
    path = tmp_path / "good.parquet"
    df.write_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_good_file_loads_into_problems(fmt, good_jsonl, good_parquet):
    path = good_jsonl if fmt == "jsonl" else good_parquet
    task = FileTask(str(path), fmt, SIZES, seed=0)
    task.check()
    train, val, test = (task.problems(s) for s in ("train", "val", "test"))
    assert [p.question for p in train] == ["What is 0 + 0?", "What is 1 + 1?", "What is 2 + 2?"]
    assert len(task.train_problems()) == 4  # SFT draws from every train row
    assert [p.answer for p in val] == ["\\frac{1}{2}", "1.5"]
    assert [p.problem_id for p in test] == ["test-00000", "test-00001"]
    # a GSM8K-style solution: its lines are the steps, `#### x` becomes the answer line
    assert train[1].solution == "1 + 1 = 2\nAnswer: 2"
    assert task.split_steps(train[1].solution) == ["1 + 1 = 2\n", "Answer: 2"]
    assert val[0].solution == ""  # no reference reasoning ...
    import random
    rng = random.Random(0)
    assert all(sol.endswith("Answer: " + str(2 * int(pr.split("What is ")[1][0]))) for pr, sol in
               (task.sample_train(rng) for _ in range(10)))
    for p in train + test:
        assert task.grade(p.solution or f"Answer: {p.answer}", p.answer) == 1


def test_file_without_split_column_is_split_by_hash(tmp_path):
    rows = [{"question": f"q{i}: 1+{i}?", "answer": str(1 + i)} for i in range(200)]
    task = FileTask(str(write_jsonl(tmp_path / "nosplit.jsonl", rows)), "jsonl",
                    {"train": 100, "val": 5, "test": 5}, seed=0)
    task.check()
    qs = [{p.question for p in task.problems(s)} for s in ("train", "val", "test")]
    assert not (qs[0] & qs[1]) and not (qs[0] & qs[2]) and not (qs[1] & qs[2])


@pytest.mark.parametrize("response, gold, correct", [
    ("1/2 of it\nAnswer: 0.5", "\\frac{1}{2}", 1),
    ("Answer: \\frac{1}{2}", "1/2", 1),
    ("Answer: $\\frac{2}{4}$", "0.5", 1),
    ("Answer: 1.5", "1.5", 1),
    ("Answer: 42", "42", 1),
    ("Answer: 42.0", "42", 1),
    ("Answer: 43", "42", 0),
    ("Answer: banana", "42", 0),  # math-verify parses nothing: wrong, not an error
    ("42", "42", 0),  # no answer line
    ("Answer: 42\nor 43", "42", 0),
    ("", "42", 0),
])
def test_math_verify_grading(good_jsonl, response, gold, correct):
    task = FileTask(str(good_jsonl), "jsonl", SIZES, seed=0)
    assert task.grade(response, gold) == correct


# --- bad files: file, row and column in the message --------------------------------------------------

BAD_JSONL = [
    # (edit of the good rows, expected message fragment after "<file>: ")
    ({3: '{"question": "broken", "answer": '}, None, "row 3: not valid JSON"),
    ({2: '["question", "answer"]'}, None, "row 2: expected a JSON object"),
    (None, (4, "answer", "drop"), "row 4: column 'answer' is missing"),
    (None, (1, "question", "drop"), "row 1: column 'question' is missing"),
    (None, (2, "question", "   "), "row 2: column 'question' must be a non-empty string"),
    (None, (5, "answer", None), "row 5: column 'answer' must be a non-empty string or a number"),
    (None, (5, "answer", ""), "row 5: column 'answer' must be a non-empty string or a number"),
    (None, (6, "answer", "banana split"), "row 6: column 'answer' math-verify cannot parse 'banana split'"),
    (None, (7, "solution", 3), "row 7: column 'solution' must be a string or null"),
    (None, (8, "split", "dev"), "row 8: column 'split' must be one of ['train', 'val', 'test']"),
    (None, (3, "question", "What is 0 + 0?"), "row 3: column 'question' repeats row 1"),
]


@pytest.mark.parametrize("raw, edit, message", BAD_JSONL)
def test_bad_jsonl_rejected_naming_file_row_column(tmp_path, raw, edit, message):
    rows = good_rows()
    if edit is not None:
        i, col, value = edit
        if value == "drop":
            del rows[i - 1][col]
        else:
            rows[i - 1][col] = value
    path = write_jsonl(tmp_path / "bad.jsonl", rows, raw)
    with pytest.raises(TaskDataError) as e:
        FileTask(str(path), "jsonl", SIZES, seed=0).check()
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


def test_bad_parquet_rejected_naming_file_row_column(tmp_path, good_parquet):
    df = pl.read_parquet(good_parquet)
    no_answer = tmp_path / "no_answer.parquet"
    df.drop("answer").write_parquet(no_answer)
    with pytest.raises(TaskDataError, match=r"no_answer\.parquet: column 'answer' is missing"):
        read_rows(no_answer, "parquet")
    null_answer = tmp_path / "null_answer.parquet"
    df.with_columns(answer=pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise(pl.col("answer"))) \
        .write_parquet(null_answer)
    with pytest.raises(TaskDataError) as e:
        read_rows(null_answer, "parquet")
    assert str(e.value).startswith(f"{null_answer}: row 3: column 'answer'")
    not_parquet = tmp_path / "text.parquet"
    not_parquet.write_text("question,answer\n")
    with pytest.raises(TaskDataError, match=r"text\.parquet: not a readable Parquet file"):
        read_rows(not_parquet, "parquet")


def test_too_few_rows_for_a_split(good_jsonl):
    with pytest.raises(TaskDataError, match=r"task\.n_test=3: .*good\.jsonl has only 2 test rows"):
        FileTask(str(good_jsonl), "jsonl", {**SIZES, "test": 3}, seed=0).check()


# --- through the config and the workflow, before any job -------------------------------------------

def overrides(path: Path, fmt: str) -> list[str]:
    return ["policy=smollm2_135m", f"task={fmt}", f"task.path={path}", "task.n_train=3", "task.n_val=2", "task.n_test=2",
            "rl.problems_per_update=2"]


def test_compose_accepts_good_and_rejects_bad_files(tmp_path, good_jsonl, good_parquet):
    for path, fmt in ((good_jsonl, "jsonl"), (good_parquet, "parquet")):
        cfg = compose("smoke", overrides(path, fmt))
        task = make_task(cfg.task, cfg.seed, cfg.policy)
        assert isinstance(task, FileTask) and len(task.problems("val")) == 2
    rows = good_rows()
    rows[4]["answer"] = None
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ConfigError, match=rf"{bad}: row 5: column 'answer'"):
        compose("smoke", overrides(bad, "jsonl"))
    with pytest.raises(ConfigError, match=r"task\.path='/nonexistent/x\.jsonl': no such file"):
        compose("smoke", overrides(Path("/nonexistent/x.jsonl"), "jsonl"))
    with pytest.raises(ConfigError, match=r"task\.path='': task parquet needs the path"):
        compose("smoke", ["task=parquet"])


def test_snakemake_stops_before_any_job_on_a_bad_row(tmp_path):
    rows = good_rows()
    del rows[6]["answer"]
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          "--cores", "1", "--config", "experiment=smoke",
                          f"overrides={overrides(bad, 'jsonl')!r}"], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"{bad}: row 7: column 'answer' is missing" in text, text[-3000:]
    assert not (tmp_path / "results").exists()  # no job ran


def test_a_non_utf8_byte_names_the_file_the_row_and_the_byte(tmp_path, good_jsonl):
    lines = good_jsonl.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"What", b"Wh\xe4t")  # Latin-1 'ä'
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b"".join(lines))
    with pytest.raises(TaskDataError) as e:
        read_rows(bad, "jsonl")
    assert str(e.value) == (f"{bad}: row 3: not UTF-8 text (byte 0xe4 at byte 17 of the line); "
                            "save the file as UTF-8")
    with pytest.raises(ConfigError, match=r"latin1\.jsonl: row 3: not UTF-8"):
        compose("smoke", overrides(bad, "jsonl"))
