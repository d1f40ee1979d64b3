"""A results directory holds one study. A run that would overwrite an output made with other settings
is refused before any job runs, naming the outputs and the keys that differ and saying what to type:
a directory of its own (`name=`), or `overwrite=True` to replace them in place.

What a job's outputs depend on is its params (pavflow.registry.params: the config it reads and its code
hash); Snakemake records them with each output in .snakemake/metadata/ and reruns the job when they
change. A changed config there means the old result would be lost: a seed, an alpha, a budget. Left in
place, without asking:
- new jobs (a K added to the sweep adds its labels, verifier and searches; every rollout is reused),
- aggregate stages (registry `aggregate`: report, quality, search_selected), rebuilt from tables kept,
- code changes (only the code hash differs): that is what a rerun is for.
"""
from __future__ import annotations

import ast
import json
import os
import re
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pavflow.registry import STAGES

SHOWN = 6  # outputs listed in a refusal


@dataclass(frozen=True)
class Overwrite:
    output: str
    stage: str
    changes: dict  # key -> (recorded value, new value)


def record_path(metadata: Path, output: str) -> Path:
    """Where Snakemake's file persistence keeps an output's record (snakemake.persistence.file)."""
    b64 = urlsafe_b64encode(output.encode()).decode()
    n = (os.pathconf(metadata, "PC_NAME_MAX") if metadata.is_dir() else 255) - 1
    parts = [b64[i:i + n] for i in range(0, len(b64), n)]
    return metadata.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def recorded(metadata: Path, output: str) -> dict | None:
    """The params (registry.params) `output` was made with, as Snakemake recorded them; None if none."""
    f = record_path(metadata, output)
    try:
        params = json.loads(f.read_text()).get("params") or []
    except (OSError, ValueError):
        return None
    for p in params:  # each param as repr(); ours is the dict with the code hash
        try:
            value = ast.literal_eval(p)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict) and "code" in value:
            return value
    return None


def changes(old, new, key: str = "") -> dict:
    """key -> (old, new) of every value that differs between two params dicts, the code hash excepted."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = {}
        for k in dict.fromkeys([*old, *new]):
            if k != "code" or key:
                out |= changes(old.get(k), new.get(k), f"{key}.{k}" if key else k)
        return out
    return {} if old == new else {key: (old, new)}


def overwrites(jobs: Iterable[tuple[str, list[str], dict]], metadata: Path) -> list[Overwrite]:
    """Of the jobs a run will execute, (stage, outputs, params), the existing outputs of non-aggregate
    stages whose recorded params differ from the new ones in anything but the code hash."""
    found = []
    for stage, outputs, new in jobs:
        if stage not in STAGES or STAGES[stage].aggregate:
            continue
        for out in outputs:
            old = recorded(metadata, out) if os.path.exists(out) else None
            diff = changes(old, new) if old is not None else {}
            if diff:
                found.append(Overwrite(out, stage, diff))
    return found


def refusal(found: list[Overwrite], root: Path, name: str, experiment: str, overrides: list[str]) -> str:
    """The message: what would be lost, the keys that differ, and the two ways on."""
    keys = {}
    for o in found:
        for k, (old, new) in o.changes.items():
            keys.setdefault(k, (old, new))
    shown = [os.path.relpath(o.output, root) for o in found[:SHOWN]]
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    new_name = name + "".join(f"_{k.rsplit('.', 1)[-1]}{_short(new)}" for k, (_, new) in list(keys.items())[:2])
    new_name = re.sub(r"[^A-Za-z0-9_.-]", "", new_name)

    def config(extra_overrides=(), extra=""):
        return f"--config experiment={experiment} overrides='{json.dumps([*overrides, *extra_overrides])}'{extra}"
    return (f"pavflow: this run would overwrite {len(found)} output{'s' * (len(found) > 1)} in {root} that were made "
            f"with other settings "
            f"({', '.join(shown)}{more}); what differs (recorded -> now):\n"
            + "".join(f"    {k}: {old!r} -> {new!r}\n" for k, (old, new) in keys.items())
            + f"To keep both studies, give this one its own directory, e.g.\n    {config([f'name={new_name}'])}\n"
            f"To replace those outputs in place:\n    {config(extra=' overwrite=True')}")


def _short(value) -> str:
    return str(value) if isinstance(value, (int, float, str)) and len(str(value)) <= 12 else ""
