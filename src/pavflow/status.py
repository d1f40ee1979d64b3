"""What a running (or finished) study is doing, read from the logs: Snakemake's own log in
`.snakemake/log/` says which jobs started, finished or failed, and where each job logs; each job's
log holds its progress bars (pavflow.progress: redrawn every few seconds, also into files) and its
`<job> done:` line. `pavflow status` prints one line per running job: stage, wildcards, time
running, the last bar's step/total and ETA.

Nothing here changes a study: it only reads files, while Snakemake runs or after.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_START = re.compile(r"^\[(?P<when>\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (?P<rule>\w+):$")
_FIELD = re.compile(r"^ {4}(?P<key>\w+): (?P<value>.*)$")
_FINISHED = re.compile(r"^Finished jobid: (?P<id>\d+)")
_ERROR = re.compile(r"^Error in rule (?P<rule>\w+):")
_STEPS = re.compile(r"^(?P<done>\d+) of (?P<total>\d+) steps \(\d+%\) done")
# a tqdm bar as pavflow.progress writes it into a log file (ascii, carriage returns between redraws)
_BAR = re.compile(r"(?P<desc>[^\r\n|]*?):\s+\d+%\|[^|\r\n]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s+"
                  r"\[(?P<elapsed>[\d:]+)<(?P<eta>[\d:]+|\?)")
_DONE = re.compile(r"\]\[pavflow\]\[INFO\] - \S+ done: ")


@dataclass
class Bar:
    desc: str
    n: int
    total: int
    eta_s: float | None  # tqdm's remaining time at its last redraw; None before it can tell


@dataclass
class JobState:
    jobid: int
    rule: str
    wildcards: str = ""
    log: str = ""
    started: float | None = None  # epoch seconds
    state: str = "running"  # running | finishing (logged done, process not ended) | done | failed
    bar: Bar | None = None
    log_age_s: float | None = None


@dataclass
class Study:
    snakemake_log: Path
    jobs: dict[int, JobState] = field(default_factory=dict)
    steps_done: int = 0
    steps_total: int | None = None

    @property
    def running(self) -> list[JobState]:
        return [j for j in self.jobs.values() if j.state in ("running", "finishing")]


def _seconds(hms: str) -> float:
    s = 0.0
    for part in hms.split(":"):
        s = 60 * s + float(part)
    return s


def last_bar(text: str) -> Bar | None:
    """The last progress-bar redraw in a job log."""
    m = None
    for m in _BAR.finditer(text):
        pass
    if m is None:
        return None
    eta = None if m["eta"] == "?" else _seconds(m["eta"])
    return Bar(m["desc"].strip(), int(m["n"]), int(m["total"]), eta)


def latest_log(workdir: Path) -> Path | None:
    logs = sorted((Path(workdir) / ".snakemake" / "log").glob("*.snakemake.log"))
    return logs[-1] if logs else None


def read_study(workdir: str | Path, snakemake_log: Path | None = None, now: float | None = None) -> Study | None:
    """The jobs of the latest Snakemake run in `workdir` (None if it never ran there)."""
    workdir = Path(workdir)
    path = snakemake_log or latest_log(workdir)
    if path is None:
        return None
    now = time.time() if now is None else now
    study, job, when = Study(path), None, None
    for line in path.read_text(errors="replace").splitlines():
        if m := _START.match(line):
            when = datetime.strptime(m["when"], "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := _RULE.match(line):
            job = JobState(-1, m["rule"], started=when)
        elif (m := _FIELD.match(line)) and job is not None:
            if m["key"] == "jobid":
                job.jobid = int(m["value"])
                study.jobs[job.jobid] = job
            elif m["key"] in ("log", "wildcards"):
                setattr(job, m["key"], m["value"])
        elif m := _FINISHED.match(line):
            if int(m["id"]) in study.jobs:
                study.jobs[int(m["id"])].state = "done"
        elif m := _ERROR.match(line):
            job = None
            failed = [j for j in study.jobs.values() if j.rule == m["rule"] and j.state == "running"]
            if failed:
                failed[-1].state = "failed"
        elif m := _STEPS.match(line):
            study.steps_done, study.steps_total = int(m["done"]), int(m["total"])
        elif not line.startswith(" "):
            job = None
    for j in study.running:
        if j.rule == "all" or not j.log:
            continue
        log = workdir / j.log
        if not log.exists():
            continue
        text = log.read_text(errors="replace")
        j.bar, j.log_age_s = last_bar(text), now - log.stat().st_mtime
        if _DONE.search(text):
            j.state = "finishing"
    return study


def _dur(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def job_line(j: JobState, now: float) -> str:
    name = j.rule + (f" {j.wildcards}" if j.wildcards else "")
    out = f"  {j.state:<9} {name:<44} {_dur(now - j.started if j.started else None):>7}"
    if j.state == "finishing":
        return out + f"  logged done {_dur(j.log_age_s)} ago; ending (tracking shutdown)"
    if j.bar is not None:
        b = j.bar
        eta = "?" if b.eta_s is None else _dur(b.eta_s - (j.log_age_s or 0))
        out += f"  {b.desc}: {b.n}/{b.total}, ETA {eta}"
    elif j.rule != "all":
        out += "  (no progress bar yet)"
    return out


def lines(study: Study, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    failed = [j for j in study.jobs.values() if j.state == "failed"]
    total = study.steps_total if study.steps_total is not None else "?"
    head = (f"{study.steps_done} of {total} steps done; {len(study.running)} running"
            + (f", {len(failed)} failed" if failed else "") + f"  ({study.snakemake_log})")
    rows = [job_line(j, now) for j in study.running if j.rule != "all"]
    rows += [f"  failed    {j.rule} {j.wildcards}  log: {j.log}" for j in failed]
    return [head, *rows]
