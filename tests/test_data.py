import polars as pl
import pytest

from pavflow.data import MC, PROBLEMS, TableError, atomic_dir, conform, read_table, write_table


def mc_frame() -> pl.DataFrame:
    # deliberately out of schema order, with an extra column and loose (Int64) integer types
    return pl.DataFrame({
        "extra": [1.5, 2.5],
        "c": [1, 4], "n": [4, 4], "h": [0, 1], "sample_id": [0, 0],
        "problem_id": ["p0", "p0"], "split": ["train", "train"], "rollout_policy": ["base", "base"],
        "gen_tokens": [10, 2**40],
    })


def test_round_trip_conforms_to_schema(tmp_path):
    path = tmp_path / "sub" / "mc.parquet"  # parent does not exist yet
    assert write_table(mc_frame(), path, MC) == path
    df = read_table(path, MC)
    assert df.columns == list(MC)
    assert dict(df.schema) == MC
    assert df.to_dicts() == [
        {"problem_id": "p0", "split": "train", "sample_id": 0, "rollout_policy": "base", "h": 0,
         "n": 4, "c": 1, "gen_tokens": 10},
        {"problem_id": "p0", "split": "train", "sample_id": 0, "rollout_policy": "base", "h": 1,
         "n": 4, "c": 4, "gen_tokens": 2**40},
    ]


def test_round_trip_strings_with_nulls_and_newlines(tmp_path):
    df = pl.DataFrame({"problem_id": ["a", "b"], "split": ["test", "val"], "question": ["1+2", None],
                       "answer": ["3", ""], "solution": ["1+2=3\nA:3", "x\n\n"]})
    path = write_table(df, tmp_path / "p.parquet", PROBLEMS)
    assert read_table(path, PROBLEMS).equals(df)


def test_write_overwrites_existing_table(tmp_path):
    path = tmp_path / "mc.parquet"
    write_table(mc_frame(), path, MC)
    write_table(mc_frame().head(1), path, MC)
    assert read_table(path, MC).height == 1


def test_write_leaves_no_temp_files(tmp_path):
    write_table(mc_frame(), tmp_path / "mc.parquet", MC)
    write_table(mc_frame(), tmp_path / "mc.parquet", MC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc.parquet"]


def test_failed_write_leaves_no_temp_files_and_keeps_old_table(tmp_path):
    path = tmp_path / "mc.parquet"
    write_table(mc_frame(), path, MC)
    bad = mc_frame().with_columns(n=pl.Series(["four", "x"]))  # cannot be cast to Int32
    with pytest.raises(Exception):
        write_table(bad, path, MC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc.parquet"]
    assert read_table(path, MC).height == 2


def test_write_error_after_temp_file_cleans_up_and_keeps_old_table(tmp_path, monkeypatch):
    path = tmp_path / "mc.parquet"
    write_table(mc_frame(), path, MC)

    def failing_write(self, file, **kw):
        with open(file, "wb") as f:
            f.write(b"partial")  # a half-written temp file
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_table(mc_frame().head(1), path, MC)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc.parquet"]
    assert read_table(path, MC).height == 2


def test_read_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.parquet"
    with pytest.raises(TableError, match="nope.parquet"):
        read_table(path, MC)
    with pytest.raises(TableError) as e:
        read_table(path, MC)
    assert str(path) in str(e.value)


def test_read_corrupt_file_names_path(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all \x00\xff\x13" * 7)
    with pytest.raises(TableError) as e:
        read_table(path, MC)
    assert str(path) in str(e.value)


def test_read_wrong_column_type_names_path_and_column(tmp_path):
    path = tmp_path / "mc.parquet"
    # `n` written as Float64 instead of Int32
    conform(mc_frame(), MC).with_columns(pl.col("n").cast(pl.Float64)).write_parquet(path)
    with pytest.raises(TableError) as e:
        read_table(path, MC)
    assert str(path) in str(e.value) and "'n'" in str(e.value)


def test_read_missing_column_names_path_and_column(tmp_path):
    path = tmp_path / "mc.parquet"
    write_table(mc_frame(), path, MC)
    with pytest.raises(TableError) as e:
        read_table(path, {**MC, "k": pl.Int32})
    assert str(path) in str(e.value) and "'k'" in str(e.value)


def test_conform_names_missing_columns():
    df = mc_frame().drop("h", "gen_tokens")
    with pytest.raises(TableError) as e:
        conform(df, MC, "my_table")
    msg = str(e.value)
    assert "my_table" in msg and "'h'" in msg and "'gen_tokens'" in msg
    assert "'n'" not in msg.split(";")[0]  # present columns are not reported missing


def test_conform_selects_orders_and_casts():
    out = conform(mc_frame(), MC)
    assert out.columns == list(MC)
    assert dict(out.schema) == MC


def test_atomic_dir_creates_and_replaces_on_success(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as d:
        assert d != target and d.parent == tmp_path
        assert not target.exists()  # nothing visible until success
        (d / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"

    with atomic_dir(target) as d:
        (d / "b.txt").write_text("two")
        assert (target / "a.txt").exists()  # old content visible during the body
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp dir left


def test_atomic_dir_keeps_old_dir_if_body_raises(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(target) as d:
            (d / "a.txt").write_text("new")
            (d / "b.txt").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # temp dir cleaned up


def test_atomic_dir_failure_without_old_dir_creates_nothing(tmp_path):
    target = tmp_path / "new"
    with pytest.raises(KeyError):
        with atomic_dir(target) as d:
            (d / "x").write_text("x")
            raise KeyError("x")
    assert list(tmp_path.iterdir()) == []
