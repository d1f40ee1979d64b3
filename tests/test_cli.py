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


def test_resume_calls_the_lock_module(monkeypatch, capsys):
    from pavflow import lock
    seen = {}
    monkeypatch.setattr(lock, "resume", lambda args, force=False: seen.update(args=args, force=force) or 0)
    assert cli.main(["resume", "smoke", "-d", "w"]) == 0
    assert seen["args"][-4:] == ["-d", "w", "--config", "experiment=smoke"] and not seen["force"]
    assert "--cores" not in seen["args"]  # lock.resume runs --cores all --rerun-incomplete itself
    assert "$ python -m pavflow.lock" in capsys.readouterr().out
    assert cli.main(["resume", "smoke", "-c", "2", "--force"]) == 0
    assert seen["args"][-4:] == ["--cores", "2", "--config", "experiment=smoke"] and seen["force"]


def test_resume_refused_while_a_live_run_holds_the_lock(monkeypatch, capsys):
    from pavflow import lock

    def held(args, force=False):
        raise lock.LockHeld("w: the Snakemake lock is held by a live run (pid 1 on here: snakemake)")
    monkeypatch.setattr(lock, "resume", held)
    assert cli.main(["resume", "smoke"]) == 1
    assert "pavflow: w: the Snakemake lock is held by a live run" in capsys.readouterr().err


def test_stage_help_is_short_and_names_the_stages_keys(capsys):
    argv = cli.stage_help_argv("labels", ["prog", "experiment=smoke", "--help", "job.stage=labels"])
    assert argv[:3] == ["prog", "experiment=smoke", "job.stage=labels"] and argv[-1] == "--help"
    assert argv[3] == "hydra.help.app_name=labels"
    template = argv[4]
    assert template.startswith("hydra.help.template='labels: one stage")
    assert "Its jobs: job.prover (this study: prover=base_k1; prover=base_k4; prover=weak_k1)" in template
    assert "base_policy=base" in template and "n_train=12" in template
    assert len(template.splitlines()) < 20 and "$CONFIG" not in template
