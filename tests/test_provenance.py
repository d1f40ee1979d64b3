"""Code hashes (the workflow's rerun trigger for code) and the provenance record of an output."""
from __future__ import annotations

import json
import platform
import shutil
from importlib import metadata

import pytest
import torch

from pavflow import provenance as prov
from pavflow.provenance import code_hash, provenance, write_provenance


def copy_package(tmp_path, monkeypatch):
    dst = tmp_path / "pavflow"
    shutil.copytree(prov.PACKAGE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(prov, "PACKAGE_DIR", dst)
    return dst


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    return copy_package(tmp_path, monkeypatch)


def test_code_hash_is_stable():
    mods = ["labels.py", "tasks", "stages/common.py"]
    h = code_hash(mods)
    assert h == code_hash(mods) == code_hash(list(reversed(mods)))
    assert len(h) == 16 and int(h, 16) >= 0
    assert code_hash(["labels.py"]) != code_hash(["data.py"]) != code_hash(["tasks"])
    assert code_hash(["labels.py", "data.py"]) not in (code_hash(["labels.py"]), code_hash(["data.py"]))


def test_code_hash_does_not_depend_on_location(tmp_path, monkeypatch):
    # the same sources at another path hash the same (results can move between checkouts)
    mods = (["labels.py"], ["tasks", "policy"], ["."])
    original = [code_hash(m) for m in mods]
    copy_package(tmp_path, monkeypatch)
    assert [code_hash(m) for m in mods] == original


def test_code_hash_follows_content(package_copy):
    before = {m: code_hash([m]) for m in ("labels.py", "tasks", "data.py", ".")}
    f = package_copy / "labels.py"
    f.write_text(f.read_text() + "\n# an edit\n")
    after = {m: code_hash([m]) for m in before}
    assert after["labels.py"] != before["labels.py"]
    assert after["."] != before["."]
    assert after["tasks"] == before["tasks"] and after["data.py"] == before["data.py"]
    # a file inside a package, and a new file in it, change the package's hash
    (package_copy / "tasks" / "arith.py").write_text("# replaced\n")
    h = code_hash(["tasks"])
    assert h != before["tasks"]
    (package_copy / "tasks" / "extra.py").write_text("X = 1\n")
    assert code_hash(["tasks"]) != h
    # files that are not Python source do not count
    h = code_hash(["tasks"])
    (package_copy / "tasks" / "notes.txt").write_text("irrelevant")
    assert code_hash(["tasks"]) == h


def test_code_hash_unknown_module_raises():
    with pytest.raises(FileNotFoundError, match="nosuch.py"):
        code_hash(["labels.py", "nosuch.py"])
    with pytest.raises(FileNotFoundError, match="'nopackage'"):
        code_hash(["nopackage"])


def test_code_hash_package_without_sources_raises(package_copy):
    (package_copy / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        code_hash(["empty"])


def test_provenance_record(tmp_path):
    config = {"name": "smoke", "search": {"alpha": 1.0}}
    p = provenance(config)
    assert p["config"] == config
    assert p["python"] == platform.python_version()
    assert p["packages"]["torch"] == metadata.version("torch")
    assert p["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert set(p["packages"]) == set(prov.PACKAGES)
    assert p["code_sha256"] == code_hash(["."])
    assert p["git"] is None or isinstance(p["git"], str)
    out = tmp_path / "provenance.json"
    write_provenance(out, config)
    assert json.loads(out.read_text())["config"] == config
