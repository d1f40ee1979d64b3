"""W&B tracking: one run per pipeline job, and a reader for offline runs.

Tracking never loses or breaks a result: any exception from wandb becomes one warning on the
`pavflow.tracking` logger, and the tracker is a no-op from then on. The results themselves live in
the pipeline's own tables; W&B is a view of them. Nor does it hold a job up: finishing a run
(`run.finish`, the offline exit record) and shutting wandb's service down at process exit
(`shutdown`, hooked to run before wandb's own unbounded exit hook) each wait at most FINISH_WAIT_S,
then the job ends with a warning (a job seen waiting 34 minutes in wandb's shutdown, under load, after
logging `done`, is what this bound is for).

Offline runs (wandb 0.31) write no `wandb-summary.json` / `config.yaml`, and `wandb.Api` cannot read
them, so `read_offline_run` parses the transaction log `offline-run-<time>-<id>/run-<id>.wandb`
itself. Format, as written by wandb-core (core/pkg/leveldb/record.go): a 7-byte header
`:W&B` + uint16 0xBEE1 (LE) + uint8 version, then the leveldb log format, in 32 KiB blocks counted
from the start of the file (the header sits in block 0). Each chunk: uint32 checksum (LE) =
`zlib.crc32(type byte + payload)` (plain IEEE CRC-32, not masked crc32c), uint16 payload length
(LE), uint8 type (FULL=1, FIRST=2, MIDDLE=3, LAST=4), payload. A block tail shorter than a chunk
header is zero padding. Reassembled payloads are `wandb_internal_pb2.Record` messages.
"""
from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import struct
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("pavflow.tracking")

MODES = ("offline", "online", "off")
FINISH_WAIT_S = 10.0  # at most, per wait: run.finish() and its exit record on disk; the service's shutdown


def _bounded(fn, timeout: float, name: str) -> bool:
    """Run `fn()` on a daemon thread; True when it returned within `timeout` seconds (re-raising what it
    raised), False when it is still running (the thread is abandoned and cannot keep the process up)."""
    done, error = threading.Event(), []

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            error.append(e)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    if not done.wait(timeout):
        return False
    if error:
        raise error[0]
    return True


def shutdown(timeout: float | None = None) -> bool:
    """End wandb's service process now, waiting at most `timeout` (FINISH_WAIT_S) instead of in wandb's
    own exit hook, which waits without a bound. True when it ended in time (or wandb was never used)."""
    if "wandb" not in sys.modules:
        return True
    import wandb
    timeout = FINISH_WAIT_S if timeout is None else timeout
    try:
        if _bounded(wandb.teardown, timeout, "wandb-teardown"):
            return True
    except Exception as e:
        log.warning("wandb shutdown failed (%s: %s); results are written", type(e).__name__, e)
        return False
    log.warning("wandb did not shut down within %.0fs; the job ends without waiting for it (results and "
                "the runs' files so far are on disk)", timeout)
    return False


def to_builtin(v: Any) -> Any:
    """numpy / torch scalars (incl. 0-d arrays and tensors) -> Python numbers, recursing into
    dicts, lists and tuples; anything else is returned unchanged."""
    if isinstance(v, dict):
        return {k: to_builtin(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_builtin(x) for x in v]
    if not isinstance(v, (bool, int, float, str)) and hasattr(v, "item") and getattr(v, "shape", None) == ():
        return v.item()
    return v


def _cell(v: Any) -> Any:
    """A table cell wandb can serialize: JSON scalars and lists as is, anything else (dates...) as str."""
    return v if v is None or isinstance(v, (bool, int, float, str, list, dict)) else str(v)


def _guarded(method):
    """A Tracker call into wandb: a no-op while tracking is off; an exception from wandb becomes one
    warning naming the call (Tracker._fail), and tracking is off for the rest of the job."""
    @functools.wraps(method)
    def call(self, *args, **kwargs) -> None:
        if self.run is None:
            return
        try:
            method(self, *args, **kwargs)
        except Exception as e:
            self._fail(method.__name__, e)
    return call


class Tracker:
    """One W&B run for one pipeline job. mode: "offline" | "online" | "off" (no-op)."""

    def __init__(self, mode: str = "offline", *, project: str, root_dir: str | Path, group: str,
                 job_type: str, name: str, config: dict, tags: list[str] | tuple[str, ...] = ()):
        if mode not in MODES:
            raise ValueError(f"tracking mode must be one of {MODES}, got {mode!r}")
        self.mode, self.name = mode, name
        self.run: Any = None  # the wandb Run while tracking is live, else None
        self.run_dir: Path | None = None  # <root_dir>/wandb/offline-run-<time>-<id> (offline mode)
        if mode == "off":
            return
        os.environ["WANDB_SILENT"] = "true"
        if mode == "offline":
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")  # no crash reports to sentry
        try:
            import wandb
            Path(root_dir).mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=project, dir=str(root_dir), mode=mode, group=group, job_type=job_type,
                name=name, config=to_builtin(config), tags=list(tags),
                reinit="create_new",  # several runs per process, each owned by its Tracker
                settings=wandb.Settings(silent=True, console="off"),
            )
            self.run_dir = Path(self.run.dir).parent
            atexit.unregister(shutdown)  # atexit runs last-registered first: after wandb's hook (registered
            atexit.register(shutdown)  # when its service starts, in init), so shutdown runs before it
        except Exception as e:
            self._fail("init", e)

    @property
    def active(self) -> bool:
        return self.run is not None

    def _fail(self, what: str, e: Exception) -> None:
        log.warning("wandb %s failed for run %r (%s: %s); tracking is off for the rest of this job",
                    what, self.name, type(e).__name__, e)
        run, self.run = self.run, None
        if run is not None:
            try:
                self._close(run, exit_code=1)
            except Exception:
                pass  # already warned once; the run may be left unfinished

    def _close(self, run: Any, exit_code: int) -> None:
        if not _bounded(lambda: run.finish(exit_code=exit_code), FINISH_WAIT_S, "wandb-finish"):
            log.warning("wandb run %r did not finish within %.0fs; the job goes on without it", self.name,
                        FINISH_WAIT_S)
            return
        # run.finish() returns before wandb-core has written the end of the offline transaction
        # log; wait for it so the run can be read back at once (e.g. by the next pipeline stage).
        if self.mode == "offline" and self.run_dir is not None and not _wait_for_exit(self.run_dir):
            log.warning("offline run %s: no exit record on disk after %.0fs", self.run_dir, FINISH_WAIT_S)

    @_guarded
    def log(self, metrics: dict, step: int | None = None) -> None:
        self.run.log(to_builtin(metrics), step=step)

    @_guarded
    def define_metric(self, name: str, step_metric: str) -> None:
        """Plot `name` against `step_metric` (e.g. budget, gen_tokens, samples_seen) instead of _step."""
        self.run.define_metric(name, step_metric=step_metric)

    @_guarded
    def summary(self, values: dict) -> None:
        for k, v in to_builtin(values).items():
            self.run.summary[k] = v

    @_guarded
    def table(self, key: str, df: Any) -> None:
        """Log a polars DataFrame as a wandb.Table under `key` (at the current step)."""
        import wandb
        if df.height > wandb.Table.MAX_ROWS:
            log.warning("table %r has %d rows; wandb keeps only the first %d in the run files",
                        key, df.height, wandb.Table.MAX_ROWS)
        rows = [[_cell(to_builtin(v)) for v in r] for r in df.rows()]
        self.run.log({key: wandb.Table(columns=list(df.columns), data=rows)})

    @_guarded
    def artifact(self, name: str, type: str, path: str | Path) -> None:
        """Log a file or directory as an artifact by reference (file://), nothing is copied."""
        import wandb
        art = wandb.Artifact(name, type=type)
        art.add_reference(Path(path).resolve().as_uri())
        self.run.log_artifact(art)

    def finish(self, exit_code: int = 0) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            self._close(run, exit_code)
        except Exception as e:
            self._fail("finish", e)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.finish(exit_code=1 if exc_type is not None else 0)
        return False


# ---------------------------------------------------------------------------------------------
# Reading offline runs

_BLOCK, _CHUNK_HEADER = 32 * 1024, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    path: Path
    run_id: str
    name: str
    group: str
    job_type: str
    tags: list[str]
    config: dict
    history: list[dict]  # one dict per logged step, incl. _step, _runtime, _timestamp
    summary: dict
    tables: dict[str, list[dict]]  # table key -> rows (last logged version of that key)
    artifacts: list[str]  # logged artifacts, excluding wandb's own run_table artifacts
    exit_code: int | None = None  # None: the run never finished (crashed or still running)
    axes: dict[str, str] = field(default_factory=dict)  # define_metric: metric or glob -> step metric
    references: dict[str, list[str]] = field(default_factory=dict)  # artifact -> its file:// refs


def _log_records(path: Path, tail_blocks: int | None = None) -> Iterator[bytes]:
    """Payloads of the records in a W&B transaction log, skipping corrupt or truncated chunks; with
    `tail_blocks`, only those of the last blocks (a record begun before them is skipped)."""
    with open(path, "rb") as f:
        head = f.read(7)
        if len(head) < 7 or head[:4] != b":W&B" or struct.unpack_from("<H", head, 4)[0] != 0xBEE1:
            raise ValueError(f"{path}: not a W&B transaction log")
        size = f.seek(0, os.SEEK_END)
        start = 0 if tail_blocks is None else max(0, (size // _BLOCK - tail_blocks + 1) * _BLOCK)
        f.seek(start)
        data = f.read()
    pos, parts = (7 if start == 0 else 0), None
    base = start  # file offset of data[0]: blocks are counted from the start of the file
    while pos + _CHUNK_HEADER <= len(data):
        room = _BLOCK - (base + pos) % _BLOCK
        if room < _CHUNK_HEADER:  # block trailer: padding
            pos += room
            continue
        crc, n, kind = struct.unpack_from("<IHB", data, pos)
        payload = data[pos + _CHUNK_HEADER: pos + _CHUNK_HEADER + n]
        if (kind not in (_FULL, _FIRST, _MIDDLE, _LAST) or _CHUNK_HEADER + n > room or len(payload) < n
                or zlib.crc32(bytes([kind]) + payload) != crc):
            pos, parts = pos + room, None  # zeroed / corrupt / truncated: resume at the next block
            continue
        pos += _CHUNK_HEADER + n
        if kind in (_FULL, _FIRST):
            parts = [payload]
        elif parts is not None:
            parts.append(payload)
        if kind in (_FULL, _LAST) and parts is not None:
            yield b"".join(parts)
            parts = None


def _wait_for_exit(run_dir: Path, timeout: float | None = None) -> bool:
    """Poll until the run's transaction log ends with its exit record; False on timeout."""
    from wandb.proto import wandb_internal_pb2 as pb

    deadline = time.monotonic() + (FINISH_WAIT_S if timeout is None else timeout)
    while True:
        for f in run_dir.glob("run-*.wandb"):
            try:
                tail = deque(_log_records(f, tail_blocks=2), maxlen=8)
            except ValueError:  # header not written yet
                continue
            for payload in tail:
                rec = pb.Record()
                rec.ParseFromString(payload)
                if rec.HasField("exit"):
                    return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _value(item: Any) -> Any:
    kind = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if kind is None:
        return json.loads(item.value_json) if item.value_json else None
    return None if kind == "none" else json.loads(item.json) if kind == "json" else getattr(item, kind)


def _set(d: dict, item: Any, value: Any) -> None:
    *parents, last = list(item.nested_key) or [item.key]
    for k in parents:
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[last] = value


def _remove(d: dict, item: Any) -> None:
    *parents, last = list(item.nested_key) or [item.key]
    for k in parents:
        d = d.get(k)
        if not isinstance(d, dict):
            return
    d.pop(last, None)


def _apply(d: dict, rec: Any) -> None:
    """Apply a ConfigRecord / SummaryRecord (updates, then removals) to `d`."""
    for item in rec.update:
        _set(d, item, _value(item))
    for item in rec.remove:
        _remove(d, item)


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Read `<root>/wandb/offline-run-<time>-<id>/` from its transaction log and media files."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"no run-*.wandb transaction log in {run_dir}")
    run = OfflineRun(path=run_dir, run_id=logs[0].stem.removeprefix("run-"), name="", group="",
                     job_type="", tags=[], config={}, history=[], summary={}, tables={}, artifacts=[])
    for payload in _log_records(logs[0]):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.name, run.group, run.job_type = r.run_id, r.display_name, r.run_group, r.job_type
            run.tags = list(r.tags)
            _apply(run.config, r.config)
        elif kind == "config":
            _apply(run.config, rec.config)
        elif kind == "history":
            row: dict = {}
            for item in rec.history.item:
                _set(row, item, _value(item))
            row.setdefault("_step", rec.history.step.num)
            run.history.append(row)
        elif kind == "summary":
            _apply(run.summary, rec.summary)
        elif kind == "artifact" and rec.artifact.type != "run_table":
            run.artifacts.append(rec.artifact.name)
            run.references[rec.artifact.name] = [e.ref for e in rec.artifact.manifest.contents if e.ref]
        elif kind == "metric" and rec.metric.step_metric:
            run.axes[rec.metric.name or rec.metric.glob_name] = rec.metric.step_metric
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    run.config.pop("_wandb", None)
    run.summary.pop("_wandb", None)
    for row in run.history:
        for key, v in row.items():
            if isinstance(v, dict) and v.get("_type") == "table-file" and "path" in v:
                f = run_dir / "files" / v["path"]
                if not f.exists():
                    log.warning("table %r of run %s: missing file %s", key, run_dir.name, f)
                    continue
                t = json.loads(f.read_text())
                run.tables[key] = [dict(zip(t["columns"], r)) for r in t["data"]]
    return run


def find_offline_runs(root_dir: str | Path) -> list[OfflineRun]:
    """All offline runs under `<root_dir>/wandb/`, sorted by directory name (i.e. start time)."""
    dirs = sorted(Path(root_dir, "wandb").glob("offline-run-*"))
    return [read_offline_run(d) for d in dirs if any(d.glob("run-*.wandb"))]
