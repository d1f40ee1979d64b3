"""Which outputs a run would overwrite with other settings, read from records as Snakemake writes them,
and the refusal's message. (Against a real study's records and a real refused run: tests/test_dag.py.)"""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from pavflow import identity


def snakemake_record_path(metadata: Path, output: str) -> Path:
    from snakemake.persistence.file import FilePersistence
    me = types.SimpleNamespace(_max_len=None)
    me._fetch_max_len = lambda subject: FilePersistence._fetch_max_len(me, subject)
    return Path(FilePersistence._record_path(me, str(metadata), output))


@pytest.mark.parametrize("output", ["results/smoke/problems.parquet", "/very/" + "long/" * 80 + "table.parquet"])
def test_record_path_is_snakemakes(tmp_path, output):
    assert identity.record_path(tmp_path, output) == snakemake_record_path(tmp_path, output)


def record(metadata: Path, output: str, params: dict) -> None:
    """A metadata record as Snakemake's file persistence writes it: params as sorted repr() strings."""
    f = identity.record_path(metadata, output)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"rule": "x", "params": sorted([repr("job.prover=base_k4"), repr(params)]),
                             "record_format_version": 6}))


OLD = {"seed": 0, "search": {"alpha": 1.0, "budgets": [1, 2]}, "code": "abc"}


def test_changes_are_the_values_that_differ_but_the_code_hash():
    new = {"seed": 0, "search": {"alpha": 0.5, "budgets": [1, 2, 4]}, "code": "def", "extra": 3}
    assert identity.changes(OLD, new) == {"search.alpha": (1.0, 0.5), "search.budgets": ([1, 2], [1, 2, 4]),
                                          "extra": (None, 3)}
    assert identity.changes(OLD, {**OLD, "code": "new"}) == {}


def test_overwrites_are_existing_outputs_of_non_aggregate_stages_made_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    meta = tmp_path / ".snakemake" / "metadata"
    for out in ("beam.parquet", "report.md", "missing.parquet", "same.parquet"):
        record(meta, out, OLD)
        if out != "missing.parquet":
            Path(out).write_text("")
    assert identity.recorded(meta, "beam.parquet") == OLD and identity.recorded(meta, "never.parquet") is None
    new = {**OLD, "search": {**OLD["search"], "alpha": 2.0}}
    found = identity.overwrites([("search_beam", ["beam.parquet", "missing.parquet"], new),
                                 ("report", ["report.md"], new),  # an aggregate: rebuilt in place
                                 ("search_beam", ["same.parquet"], {**OLD, "code": "edited"})], meta)
    assert found == [identity.Overwrite("beam.parquet", "search_beam", {"search.alpha": (1.0, 2.0)})]


def test_the_refusal_names_outputs_keys_and_what_to_type():
    found = [identity.Overwrite(f"results/smoke/search/beam_base_k{k}.parquet", "search_beam",
                                {"search.alpha": (1.0, 0.5)}) for k in range(8)]
    msg = identity.refusal(found, Path("results/smoke"), "smoke", "smoke", ["search.alpha=0.5"])
    assert msg.startswith("pavflow: this run would overwrite 8 outputs in results/smoke that were made with other "
                          "settings (search/beam_base_k0.parquet, ")
    assert "search/beam_base_k5.parquet and 2 more)" in msg and "    search.alpha: 1.0 -> 0.5\n" in msg
    assert """--config experiment=smoke overrides='["search.alpha=0.5", "name=smoke_alpha0.5"]'""" in msg
    assert msg.endswith("""--config experiment=smoke overrides='["search.alpha=0.5"]' overwrite=True""")
