import logging
import shutil

import numpy as np
import polars as pl
import pytest
import wandb

import time

from pavflow import tracking
from pavflow.tracking import Tracker, _bounded, _log_records, find_offline_runs, read_offline_run, to_builtin

CONFIG = {"lr": 1e-4, "model": "qwen-0.5b", "search": {"k": 4, "budgets": [1, 4, 16]}, "seed": 0}


def make(root, name="job-a", group="g1", mode="offline", **kw):
    return Tracker(mode, project="pavflow-test", root_dir=root, group=group, job_type="search",
                   name=name, config=kw.pop("config", CONFIG), tags=kw.pop("tags", ["smoke", "t2"]))


def warnings_of(caplog):
    return [r for r in caplog.records if r.name == "pavflow.tracking" and r.levelno == logging.WARNING]


def test_offline_roundtrip(tmp_path):
    blob = tmp_path / "data.parquet"
    blob.write_bytes(b"not really parquet")
    df = pl.DataFrame({"method": ["bok", "beam"], "budget": [4, 16], "acc": [0.25, None]})
    notes = "".join(f"{i:06d}" for i in range(12_000))  # a 72 KB config value: FIRST/MIDDLE/LAST chunks
    with make(tmp_path / "runs", config={**CONFIG, "np_val": np.float32(0.5), "notes": notes}) as t:
        assert t.active and t.run_dir.name.startswith("offline-run-")
        t.define_metric("acc", step_metric="budget")
        for step, (b, acc) in enumerate([(1, 0.1), (4, np.float64(0.3)), (16, 0.5)]):
            t.log({"budget": b, "acc": acc, "flag": np.bool_(step == 2), "n": np.int64(10 * step)}, step=step)
        for step in range(3, 60):  # spread records over several 32 KiB blocks
            t.log({"budget": step, "pad": f"{step:03d}" * 300}, step=step)
        t.summary({"best_acc": np.float32(0.5), "final": {"n": 3}})
        t.table("search", df)
        t.artifact("search-results", "dataset", blob)
    assert not t.active

    runs = find_offline_runs(tmp_path / "runs")
    assert len(runs) == 1
    r = runs[0]
    assert r.path == t.run_dir
    assert (r.name, r.group, r.job_type, r.tags) == ("job-a", "g1", "search", ["smoke", "t2"])
    assert r.run_id and r.path.name.endswith(r.run_id)
    assert r.config == {**CONFIG, "np_val": 0.5, "notes": notes}
    assert r.config["search"] == {"k": 4, "budgets": [1, 4, 16]}

    rows = {h["_step"]: h for h in r.history}
    assert sorted(rows) == list(range(60))
    assert all(rows[s]["pad"] == f"{s:03d}" * 300 for s in range(3, 60))
    assert [(rows[s]["budget"], rows[s]["acc"], rows[s]["n"]) for s in range(3)] == [
        (1, 0.1, 0), (4, 0.3, 10), (16, 0.5, 20)]
    assert [rows[s]["flag"] for s in range(3)] == [False, False, True]
    assert all(isinstance(rows[s]["flag"], bool) for s in range(3))

    assert r.summary["best_acc"] == 0.5 and r.summary["final"] == {"n": 3}
    assert r.summary["acc"] == 0.5 and r.summary["_step"] == 59
    assert r.tables == {"search": [{"method": "bok", "budget": 4, "acc": 0.25},
                                   {"method": "beam", "budget": 16, "acc": None}]}
    assert r.artifacts == ["search-results"] and r.references == {"search-results": [blob.as_uri()]}
    assert r.axes == {"acc": "budget"}
    assert r.exit_code == 0
    assert read_offline_run(r.path) == r
    assert (r.path / f"run-{r.run_id}.wandb").stat().st_size > 3 * 32 * 1024
    # the exit-record wait reads the last blocks only: the records there, in order
    full = list(_log_records(r.path / f"run-{r.run_id}.wandb"))
    tail = list(_log_records(r.path / f"run-{r.run_id}.wandb", tail_blocks=2))
    assert 0 < len(tail) < len(full) and tail == full[-len(tail):]

    # A crashed job leaves a truncated log: everything before the cut is still read.
    cut = tmp_path / "cut" / r.path.name
    shutil.copytree(r.path, cut)
    log_file = cut / f"run-{r.run_id}.wandb"
    data = log_file.read_bytes()
    log_file.write_bytes(data[:len(data) - 3000])
    c = read_offline_run(cut)
    assert c.exit_code is None and c.config == r.config and c.name == "job-a"
    assert 0 < len(c.history) < len(r.history) and c.history == r.history[:len(c.history)]


def test_two_runs_in_one_root(tmp_path):
    for name, group in [("job-a", "g1"), ("job-b", "g2")]:
        with make(tmp_path, name=name, group=group, config={"name": name}) as t:
            t.log({"x": len(name)})
    runs = find_offline_runs(tmp_path)
    assert sorted((r.name, r.group, r.config["name"]) for r in runs) == [
        ("job-a", "g1", "job-a"), ("job-b", "g2", "job-b")]
    assert [r.path.name for r in runs] == sorted(r.path.name for r in runs)
    assert len({r.run_id for r in runs}) == 2
    assert all(r.history[0]["x"] == 5 for r in runs)


def test_off_mode_is_noop(tmp_path, monkeypatch):
    monkeypatch.setattr(wandb, "init", lambda *a, **k: pytest.fail("off mode must not start wandb"))
    with make(tmp_path / "runs", mode="off") as t:
        assert not t.active and t.run_dir is None
        t.define_metric("acc", "budget")
        t.log({"acc": 1.0}, step=0)
        t.summary({"acc": 1.0})
        t.table("tab", pl.DataFrame({"a": [1]}))
        t.artifact("art", "dataset", tmp_path)
    t.finish()
    assert not (tmp_path / "runs").exists()
    assert find_offline_runs(tmp_path / "runs") == []


def test_bad_mode_raises(tmp_path):
    with pytest.raises(ValueError):
        make(tmp_path, mode="disabled")


def test_init_failure_is_a_warning(tmp_path, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("no service")
    monkeypatch.setattr(wandb, "init", boom)
    t = make(tmp_path)
    assert not t.active
    t.log({"a": 1}, step=0)
    t.summary({"a": 1})
    t.table("tab", pl.DataFrame({"a": [1]}))
    t.finish()
    with make(tmp_path) as t2:
        t2.log({"a": 1})
    w = warnings_of(caplog)
    assert len(w) == 2 and all("init" in x.getMessage() and "no service" in x.getMessage() for x in w)


def test_log_failure_mid_run_is_a_warning_and_keeps_earlier_results(tmp_path, caplog):
    t = make(tmp_path)
    t.log({"acc": 0.5}, step=0)
    t.log({"acc": 0.6}, step=1)

    def boom(*a, **k):
        raise OSError("disk full")
    t.run.log = boom
    t.log({"acc": 0.7}, step=2)  # must not raise
    assert not t.active
    t.log({"acc": 0.8}, step=3)
    t.summary({"x": 1})
    t.finish()
    w = warnings_of(caplog)
    assert len(w) == 1 and "log" in w[0].getMessage() and "disk full" in w[0].getMessage()
    (r,) = find_offline_runs(tmp_path)
    assert [(h["_step"], h["acc"]) for h in r.history] == [(0, 0.5), (1, 0.6)]
    assert r.exit_code == 1 and "x" not in r.summary


class RaisingRun:
    """A wandb Run whose every call raises; records how it was finished."""

    def __init__(self):
        self.finished = []
        self.summary = self  # run.summary[k] = v goes to __setitem__

    def _boom(self, *a, **k):
        raise OSError("wandb is gone")

    log = define_metric = log_artifact = __setitem__ = _boom

    def finish(self, exit_code):
        self.finished.append(exit_code)


CALLS = {"log": lambda t: t.log({"a": 1}, step=0), "define_metric": lambda t: t.define_metric("a", "b"),
         "summary": lambda t: t.summary({"a": 1}), "table": lambda t: t.table("tab", pl.DataFrame({"a": [1]})),
         "artifact": lambda t: t.artifact("art", "dataset", ".")}


@pytest.mark.parametrize("what", CALLS)
def test_a_raising_wandb_call_is_one_warning_then_tracking_is_off(tmp_path, caplog, what):
    t = make(tmp_path, mode="off")
    t.run = run = RaisingRun()
    CALLS[what](t)  # must not raise
    assert not t.active and run.finished == [1]  # the run is closed as failed
    for call in CALLS.values():  # every later call is a no-op: no second warning, no wandb call
        call(t)
    t.finish()
    w = warnings_of(caplog)
    assert len(w) == 1, [x.getMessage() for x in w]
    assert f"wandb {what} failed" in w[0].getMessage() and "wandb is gone" in w[0].getMessage()
    assert run.finished == [1]


def test_exception_in_context_marks_run_failed(tmp_path):
    with pytest.raises(KeyError):
        with make(tmp_path) as t:
            t.log({"acc": 0.5}, step=0)
            raise KeyError("job crashed")
    (r,) = find_offline_runs(tmp_path)
    assert r.exit_code == 1 and r.history[0]["acc"] == 0.5


def test_to_builtin_converts_scalars():
    torch = pytest.importorskip("torch")
    out = to_builtin({"a": np.float32(0.5), "b": [np.int64(3), torch.tensor(2.5)], "c": np.array(7),
                      "d": "s", "e": None, "f": np.array([1, 2])})
    assert out["a"] == 0.5 and type(out["a"]) is float
    assert out["b"] == [3, 2.5] and type(out["b"][0]) is int and type(out["b"][1]) is float
    assert out["c"] == 7 and type(out["c"]) is int
    assert out["d"] == "s" and out["e"] is None and isinstance(out["f"], np.ndarray)


def test_bounded_waits_at_most_its_timeout_and_reraises():
    t0 = time.monotonic()
    assert _bounded(lambda: time.sleep(30), 0.2, "hung") is False
    assert time.monotonic() - t0 < 5
    assert _bounded(lambda: None, 5, "quick") is True
    with pytest.raises(KeyError):
        _bounded(lambda: {}["x"], 5, "raises")


def test_a_hung_wandb_does_not_hold_the_job(tmp_path, monkeypatch, caplog):
    """run.finish() and wandb's service shutdown that never return: the job ends after the bound."""
    monkeypatch.setattr(tracking, "FINISH_WAIT_S", 0.3)
    t = make(tmp_path)
    real_finish = t.run.finish
    monkeypatch.setattr(t.run, "finish", lambda exit_code=0: time.sleep(30))
    t0 = time.monotonic()
    t.finish()
    assert time.monotonic() - t0 < 5 and not t.active
    assert "did not finish within" in warnings_of(caplog)[-1].getMessage()
    real_finish()
    monkeypatch.setattr(wandb, "teardown", lambda *a, **k: time.sleep(30))
    t0 = time.monotonic()
    assert tracking.shutdown() is False and time.monotonic() - t0 < 5
    assert "did not shut down within" in warnings_of(caplog)[-1].getMessage()
