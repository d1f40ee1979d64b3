"""What produced an output: resolved config, code version, package versions."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGES = ("torch", "transformers", "polars", "snakemake", "hydra-core", "wandb", "numpy")


def code_hash(modules: list[str]) -> str:
    """sha256 over the source of the named pavflow modules (files or packages, relative to
    src/pavflow, e.g. "policy" or "labels.py"): the workflow's rerun trigger for code changes."""
    h = hashlib.sha256()
    for m in sorted(modules):
        p = PACKAGE_DIR / m
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        if not files or not all(f.exists() for f in files):
            raise FileNotFoundError(f"code_hash: no pavflow module {m!r} at {p}")
        for f in files:
            h.update(str(f.relative_to(PACKAGE_DIR)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def git_version() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PACKAGE_DIR,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: dict) -> dict:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {"config": config, "git": git_version(), "code_sha256": code_hash(["."]),
            "python": platform.python_version(), "packages": versions}


def write_provenance(path: str | Path, config: dict) -> None:
    Path(path).write_text(json.dumps(provenance(config), indent=2, sort_keys=True))
