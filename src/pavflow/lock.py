"""Resuming after a crash without hurting a live run, and ending a run promptly on SIGTERM.

    python -m pavflow.lock [snakemake arguments]        # e.g. --config experiment=smoke

resumes a study: if the working directory's Snakemake lock (.snakemake/locks/) is held by a process
that is still alive, it refuses and names it; otherwise it removes the stale lock (what `snakemake
--unlock` does, whoever holds it) and runs `snakemake --cores all --rerun-incomplete` with the given
arguments. A live holder is found two ways: the record each run writes beside its lock when it starts
(pid, host, start time; Snakemake removes it with the lock), and any process running Snakemake in that
directory (a run between taking the lock and writing its record).

`terminate_on_sigterm()` (installed by the workflow when its jobs start) makes SIGTERM end the run the
way Ctrl-C does: running jobs are terminated, their outputs left incomplete for --rerun-incomplete, the
lock released. Snakemake's own SIGTERM handler waits for every running job to finish.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

LOCKS = Path(".snakemake") / "locks"
OWNER = "pavflow-owner.json"  # not a Snakemake lock file: Snakemake reads only <n>.{input,output}.lock


class LockHeld(RuntimeError):
    """The lock belongs to a run that is (or may be) alive; the message names it."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    cmdline: str


def record_owner(workdir: str | os.PathLike = ".") -> None:
    """Write this process's identity beside the lock it holds (the workflow does, when its jobs start)."""
    import psutil
    locks = Path(workdir) / LOCKS
    if locks.is_dir():  # no lock dir: --nolock
        me = psutil.Process()
        (locks / OWNER).write_text(json.dumps({"pid": me.pid, "host": socket.gethostname(),
                                               "started": me.create_time(), "cmdline": " ".join(sys.argv)}))


def is_locked(workdir: str | os.PathLike = ".") -> bool:
    return any((Path(workdir) / LOCKS).glob("*.lock"))


def holders(workdir: str | os.PathLike = ".") -> list[Holder]:
    """Processes that hold, or may hold, the lock of `workdir`: its recorded owner, if alive (or on
    another host, where this cannot be checked), and every Snakemake process running in it."""
    import psutil
    workdir = Path(workdir).resolve()
    out = []
    try:
        owner = json.loads((workdir / LOCKS / OWNER).read_text())
    except (OSError, ValueError):
        owner = None
    if owner is not None:
        if owner["host"] != socket.gethostname():
            out.append(Holder(owner["pid"], owner["host"], owner["cmdline"]))
        else:
            try:  # a zombie (killed, never reaped: an orphan under a PID 1 that does not reap) holds nothing
                p = psutil.Process(owner["pid"])
                if p.status() != psutil.STATUS_ZOMBIE and abs(p.create_time() - owner["started"]) < 1:  # not a reused pid
                    out.append(Holder(owner["pid"], owner["host"], owner["cmdline"]))
            except psutil.NoSuchProcess:
                pass
    for p in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        cmd, cwd = p.info["cmdline"] or [], p.info["cwd"]
        if p.info["status"] == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: holds nothing
            continue
        if p.info["pid"] != os.getpid() and cwd and Path(cwd) == workdir and runs_snakemake(cmd) and \
                all(h.pid != p.info["pid"] for h in out):
            out.append(Holder(p.info["pid"], socket.gethostname(), " ".join(cmd)))
    return out


def runs_snakemake(cmd: list[str]) -> bool:
    """`snakemake ...`, `python -m snakemake ...` or `python .../bin/snakemake ...`."""
    return bool(cmd) and (Path(cmd[0]).name == "snakemake" or (len(cmd) > 1 and Path(cmd[1]).name == "snakemake")
                          or any(a == "-m" and b == "snakemake" for a, b in zip(cmd, cmd[1:])))


def resume(snakemake_args: Sequence[str] = (), *, force: bool = False) -> int:
    """Resume the study in Snakemake's working directory (`-d`/`--directory` in `snakemake_args`, else
    the current one) after a crash: refuse (LockHeld) while a process holding its lock is alive, else
    remove the stale lock and run `snakemake --cores all --rerun-incomplete <snakemake_args>`; its exit
    code. `force` unlocks even a holder that cannot be checked (another host's)."""
    workdir = _directory(list(snakemake_args))
    if is_locked(workdir):
        live = holders(workdir)
        here = [h for h in live if h.host == socket.gethostname()]
        if here or (live and not force):
            who = "; ".join(f"pid {h.pid} on {h.host}: {h.cmdline}" for h in live)
            hint = ("wait for it to finish, or stop it (kill -TERM <pid>: it ends its jobs and releases the lock) "
                    "and resume again" if here else
                    "resume from that host, or pass --force if you know that run is dead")
            raise LockHeld(f"{workdir}: the Snakemake lock is held by a live run ({who}); {hint}")
        shutil.rmtree(workdir / LOCKS)
        print(f"pavflow: removed the stale lock of {workdir} (no live run holds it)", file=sys.stderr)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "all", "--rerun-incomplete",
                             *snakemake_args])
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))  # Ctrl-C reaches it directly
    return proc.wait()


def _directory(args: list[str]) -> Path:
    for i, a in enumerate(args):
        if a in ("-d", "--directory") and i + 1 < len(args):
            return Path(args[i + 1])
        if m := re.fullmatch(r"--directory=(.+)", a):
            return Path(m.group(1))
    return Path(".")


def terminate_on_sigterm() -> None:
    """SIGTERM: terminate every process this one started (the running jobs and their children), then
    raise KeyboardInterrupt, Snakemake's own path for ending a run now (it cancels the jobs and releases
    the lock)."""
    import psutil

    def handler(signum, frame):
        for child in psutil.Process().children(recursive=True):
            try:
                child.terminate()
            except psutil.NoSuchProcess:
                pass
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    try:
        return resume([a for a in args if a != "--force"], force=force)
    except LockHeld as e:
        print(f"pavflow: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
