"""Resuming after a crash: a lock held by a live process is never removed; a stale one is, and the study
reruns with --rerun-incomplete. (The same against real Snakemake runs: tests/test_dag.py.)"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pavflow import lock


def locked(workdir: Path) -> Path:
    locks = workdir / lock.LOCKS
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("results/smoke/problems.parquet\n")
    return locks


@pytest.fixture
def fake_snakemake(tmp_path):
    """A live process that looks like Snakemake running in tmp_path (a script named snakemake)."""
    script = tmp_path / "bin" / "snakemake"
    script.parent.mkdir()
    script.write_text("import time\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    yield proc
    proc.kill()
    proc.wait()


def recording_owner(workdir: Path) -> subprocess.Popen:
    """A live process in `workdir` that has written its owner record beside the lock (as a run does)."""
    proc = subprocess.Popen([sys.executable, "-c", f"import os, sys, time; os.chdir({str(workdir)!r}); "
                             "from pavflow.lock import record_owner; record_owner(); print('ok', flush=True); time.sleep(120)"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline() == "ok\n"
    return proc


def test_runs_snakemake():
    assert lock.runs_snakemake(["/venv/bin/snakemake", "--cores", "2"])
    assert lock.runs_snakemake(["python", "-m", "snakemake", "-n"])
    assert lock.runs_snakemake(["/usr/bin/python3", "/venv/bin/snakemake"])
    assert not lock.runs_snakemake(["python", "-m", "pavflow.stages", "mc", "results_dir=/x/snakemake"])
    assert not lock.runs_snakemake([])


def test_a_live_snakemake_in_the_directory_keeps_its_lock(tmp_path, fake_snakemake):
    locks = locked(tmp_path)
    assert [h.pid for h in lock.holders(tmp_path)] == [fake_snakemake.pid]
    with pytest.raises(lock.LockHeld, match=rf"held by a live run \(pid {fake_snakemake.pid} on "):
        lock.resume(["-d", str(tmp_path), "--version"])
    assert (locks / "0.input.lock").exists()  # untouched
    out = subprocess.run([sys.executable, "-m", "pavflow.lock", "-d", str(tmp_path), "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "kill -TERM" in out.stderr and (locks / "0.input.lock").exists()


def test_the_recorded_owner_is_a_holder_while_alive(tmp_path):
    locks = locked(tmp_path)
    proc = recording_owner(tmp_path)
    try:
        owner = json.loads((locks / lock.OWNER).read_text())
        assert owner["pid"] == proc.pid and owner["host"] == socket.gethostname()
        assert [h.pid for h in lock.holders(tmp_path)] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    assert lock.holders(tmp_path) == []  # dead: the record alone holds nothing


def test_a_killed_owner_not_yet_reaped_holds_nothing(tmp_path):
    """An orphaned Snakemake killed with its run (started by `python -m pavflow.lock`) stays a zombie when
    PID 1 does not reap orphans; its record still names its pid and start time. It holds no lock."""
    import psutil
    locks = locked(tmp_path)
    proc = recording_owner(tmp_path)
    try:
        proc.kill()
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:  # killed, not reaped: we hold it
            pass
        assert json.loads((locks / lock.OWNER).read_text())["pid"] == proc.pid
        assert lock.holders(tmp_path) == []
    finally:
        proc.kill()
        proc.wait()


def test_another_hosts_run_is_not_unlocked_without_force(tmp_path):
    locks = locked(tmp_path)
    (locks / lock.OWNER).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0, "cmdline": "snakemake"}))
    with pytest.raises(lock.LockHeld, match="resume from that host, or pass --force"):
        lock.resume(["-d", str(tmp_path), "--version"])
    assert lock.resume(["-d", str(tmp_path), "--version"], force=True) == 0 and not locks.exists()


def test_a_stale_lock_is_removed_and_snakemake_runs(tmp_path, capfd):
    locks = locked(tmp_path)
    (locks / lock.OWNER).write_text(json.dumps({"pid": 2**22 + 7, "host": socket.gethostname(), "started": 0,
                                                 "cmdline": "snakemake"}))  # a pid no process has
    assert lock.resume(["--directory", str(tmp_path), "--version"]) == 0
    assert not locks.exists()
    out = capfd.readouterr()
    assert "removed the stale lock" in out.err and out.out.strip()[0].isdigit()  # snakemake --version ran
