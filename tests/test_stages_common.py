"""What every stage does around its body: here, refusing a job whose outputs cannot be written, at its
start and naming the output (it used to fail after the whole job ran, naming a temp file)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pavflow.stages.common import not_writable

REPO = Path(__file__).resolve().parents[1]


def read_only(cmd: list[str], d: Path) -> list[str]:
    """`cmd` run with directory `d` read-only: chmod for a user, a read-only bind mount in a private
    mount namespace for root (whom permissions do not stop)."""
    if os.geteuid() != 0:
        d.chmod(0o555)
        return cmd
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("root without mount namespaces: no way to make a directory read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(d), *cmd]


def test_not_writable_names_the_output(tmp_path):
    ok = tmp_path / "a" / "b" / "table.parquet"
    assert not_writable([ok]) is None and ok.parent.is_dir() and not list(ok.parent.iterdir())  # no probe left
    blocked = tmp_path / "file"
    blocked.write_text("")
    out, why = not_writable([ok, blocked / "table.parquet"])
    assert out == blocked / "table.parquet" and why == f"{blocked}: File exists"


def test_a_read_only_results_dir_stops_the_job_at_its_start(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = [sys.executable, "-m", "pavflow.stages", "problems", "experiment=smoke", f"results_dir={ro}/results",
           "tracking=off", f"hydra.run.dir={tmp_path}/hydra"]
    out = subprocess.run(read_only(cmd, ro), capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert f"problems: cannot write its output {ro}/results/smoke/problems.parquet" in text, text[-3000:]
    assert "Read-only file system" in text or "Permission denied" in text
    assert "experiment smoke" not in text  # the job's body never started
