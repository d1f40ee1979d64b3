import sys

import pytest

from pavflow import cli


def run(argv, monkeypatch, capsys):
    """A verb's printed command and the argv it ran (nothing is run)."""
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda argv: calls.append(argv) or 0)
    assert cli.main(argv) == 0
    return capsys.readouterr().out.splitlines()[0], calls[0]


def test_each_verb_prints_the_snakemake_command_it_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # no Snakefile here: the checkout's is named
    shown, ran = run(["what-reruns", "smoke", "search.alpha=0.5"], monkeypatch, capsys)
    assert shown == f"$ snakemake -s {cli.REPO / 'Snakefile'} -n --config experiment=smoke " \
                    "'overrides=[\"search.alpha=0.5\"]'"
    assert ran == [sys.executable, "-m", "snakemake", "-s", str(cli.REPO / "Snakefile"), "-n", "--config",
                   "experiment=smoke", 'overrides=["search.alpha=0.5"]']
    shown, _ = run(["run", "smoke", "--no-watch", "-c", "2", "--", "--keep-going"], monkeypatch, capsys)
    assert shown.endswith("--cores 2 --config experiment=smoke --keep-going")
    shown, _ = run(["report", "smoke", "-d", "work"], monkeypatch, capsys)
    assert "-d work --report results/smoke/report.html --config experiment=smoke" in shown
    shown, _ = run(["what-reruns", "sweep.prover_k=[1,4]"], monkeypatch, capsys)  # overrides, no experiment
    assert shown.endswith("""-n --config 'overrides=["sweep.prover_k=[1,4]"]'""")


def test_resume_without_the_lock_module_says_what_to_do(monkeypatch, capsys):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["resume", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "pavflow.lock.resume" in err and "--unlock --config experiment=smoke" in err
    assert "--cores all --rerun-incomplete --config experiment=smoke" in err


def test_resume_calls_the_lock_module(monkeypatch):
    import types
    seen = {}
    fake = types.ModuleType("pavflow.lock")
    fake.resume = lambda workdir, cmd: seen.update(workdir=workdir, cmd=cmd) or 0
    monkeypatch.setitem(sys.modules, "pavflow.lock", fake)
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: object())
    assert cli.main(["resume", "smoke", "-d", "w"]) == 0
    assert str(seen["workdir"]) == "w"
    assert seen["cmd"][0] == "snakemake" and seen["cmd"][-3:] == ["--rerun-incomplete", "--config", "experiment=smoke"]


def test_stage_help_is_short_and_names_the_stages_keys(capsys):
    argv = cli.stage_help_argv("labels", ["prog", "experiment=smoke", "--help", "job.stage=labels"])
    assert argv[:3] == ["prog", "experiment=smoke", "job.stage=labels"] and argv[-1] == "--help"
    assert argv[3] == "hydra.help.app_name=labels"
    template = argv[4]
    assert template.startswith("hydra.help.template='labels: one stage")
    assert "Its jobs: job.prover (this study: prover=base_k1; prover=base_k4; prover=weak_k1)" in template
    assert "base_policy=base" in template and "n_train=12" in template
    assert len(template.splitlines()) < 20 and "$CONFIG" not in template
