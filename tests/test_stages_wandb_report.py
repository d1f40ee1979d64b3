import re

import pytest

from pavflow.stages.wandb_report import build_report, main, server_reachable
from pavflow.config import compose


def grids(report) -> dict[tuple[str, ...], list]:
    """Job types of each panel grid's run set -> its panels."""
    out = {}
    for b in report.blocks:
        if hasattr(b, "runsets"):
            (rs,) = b.runsets
            assert "Metric(\"Group\") == 'smoke'" in rs.filters and rs.project == "pavflow"
            m = re.search(r"Metric\(\"JobType\"\) (?:== '(\w+)'|in \[([^]]*)\])", rs.filters)
            out[(m.group(1),) if m.group(1) else tuple(re.findall(r"'(\w+)'", m.group(2)))] = b.panels
    return out


def test_report_has_a_grid_per_part_of_the_study():
    report = build_report(compose("smoke", []), entity="someone")
    assert report.entity == "someone" and report.title == "pavflow: smoke"
    g = grids(report)
    search = ("search_bon", "search_beam")
    assert sorted(g) == [("report",), ("rl",), search, ("sft",), ("verifier",)]
    assert [(p.x, p.log_x) for p in g[search]] == [("search/budget", True), ("search/gen_tokens", True)]
    assert "search/acc/beam" in g[search][0].y and "search/acc_vs_tokens/bon" in g[search][1].y
    assert [p.table_name for p in g[("report",)]] == ["report/per_k", "report/per_budget"]
    assert {p.x for p in g[("rl",)]} == {"rl/samples_seen"}


def test_offline_mode_skips_without_network(monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr("socket.create_connection", lambda *a, **k: pytest.fail("tried the network"))
    assert main(["experiment=smoke"]) == 0
    out = capsys.readouterr().out
    assert "W&B Report for smoke skipped: WANDB_MODE=offline" in out
    assert "snakemake --report results/smoke/report.html --config experiment=smoke" in out


def test_unreachable_server_skips_cleanly(monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    assert not server_reachable("http://127.0.0.1:9")
    assert main(["experiment=smoke", "search.alpha=0.5"]) == 0
    assert "skipped: no W&B server reachable at http://127.0.0.1:9" in capsys.readouterr().out


def test_bad_override_is_an_error(capsys):
    assert main(["experiment=smoke", "search.alpha=-1"]) == 2
    assert "search.alpha" in capsys.readouterr().err
