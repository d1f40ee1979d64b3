"""The smoke experiment end to end through Snakemake: every table matches its schema, every job
left a W&B offline run with the metrics its stage logged, the Snakemake HTML report holds every
figure and opens in headless Chromium, and the DAG reruns only what a config change touches."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from pavflow import data
from pavflow.tracking import find_offline_runs
from conftest import REPO, job_stats, run_snakemake, study_jobs
from pavflow.paths import Layout
from pavflow import lock, registry
from pavflow.config import rl_arms
from pavflow.registry import STAGES, headline

pytestmark = pytest.mark.dag


def snakemake(workdir: Path, *args: str, overrides: list[str] = (), timeout: int = 2400, config=()):
    return run_snakemake(workdir, *args, overrides=overrides, timeout=timeout, config=config)


def scheduled(workdir: Path, overrides: list[str] = ()) -> dict[str, int]:
    """Jobs a dry run would execute, by rule."""
    out = snakemake(workdir, "-n", overrides=overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(job_stats(out.stdout + out.stderr))


@pytest.fixture(scope="module")
def study(smoke_local):
    """The smoke experiment, run once per session (conftest.py)."""
    return smoke_local


def test_every_table_matches_its_schema(study):
    _, cfg, L = study
    jobs = study_jobs(cfg)
    tables = [(L.problems(), data.PROBLEMS), (L.seeds(), data.SAMPLES), (L.pool(), data.SAMPLES),
              (L.search("bon_orm"), data.SEARCH)]
    tables += [(L.policy_log(p), data.TRAIN_LOG) for p in jobs["policies"]]
    tables += [(L.mc(p), data.MC) for p in jobs["rollout_policies"]]
    tables += [(L.labels(p), data.LABELS) for p in jobs["provers"]]
    tables += [(L.search(f"beam_{p}"), data.SEARCH) for p in jobs["beam_provers"]]
    tables += [(L.search(f"beamv_{v}"), data.SEARCH) for v in jobs["beam_verifiers"]]
    tables += [(STAGES["search_beam_mc"].outputs(cfg, L, j)["search"], data.SEARCH) for j in registry.jobs("search_beam_mc", cfg)]
    tables += [(L.mc_fresh(p), data.MC) for p in jobs["rollout_policies"]]
    tables += [(L.quality(), data.METRICS), (L.calibration(), data.CALIBRATION)]
    tables += [(L.search(f"val_{p}"), data.SEARCH) for p in jobs["provers"]]
    tables += [(L.search(f"prm_{v}"), data.SEARCH) for v in jobs["prm_verifiers"]]
    tables += [(L.search(n), data.SEARCH) for n in ("alpha", "selected", "oracle")]
    tables += [(L.verifier_metrics(v), data.METRICS) for v in jobs["verifiers"]]
    tables += [(L.rl(a, s), data.RL_CURVE) for a, s in jobs["rl_runs"]]
    for path, schema in tables:
        df = data.read_table(path, schema)
        assert df.height > 0, path
    problems = data.read_table(L.problems(), data.PROBLEMS)
    assert problems.group_by("split").len().sort("split")["len"].to_list() == [
        cfg.task.n_test, cfg.task.n_train, cfg.task.n_val]
    # MC pools cover every state s_0..s_H of every seed, for every rollout policy
    seeds = data.read_table(L.seeds(), data.SAMPLES)
    n_states = int((seeds["n_steps"].clip(lower_bound=0) + 1).sum())
    val_seeds = seeds.filter(pl.col("split") == "val")
    for p in jobs["rollout_policies"]:
        assert data.read_table(L.mc(p), data.MC).height == n_states
        fresh = data.read_table(L.mc_fresh(p), data.MC)  # the quality table's truth: val seeds only
        assert set(fresh["split"]) == {"val"} and fresh.height == int((val_seeds["n_steps"] + 1).sum())
    # one quality row per verifier of the study (trained, analytic, implicit, label variants) and per
    # oracle (the MC labels themselves); label variants record what their labels cost
    quality = data.read_table(L.quality(), data.METRICS)
    oracles = ["oracle"] + [f"oracle_{p}" for p in jobs["provers"]]
    assert set(quality.filter(pl.col("metric") == "brier")["subject"]) == set(jobs["quality_verifiers"] + oracles)
    assert {"brier", "ece", "spearman_progress", "outcome_auroc", "outcome_auroc_within", "first_error_f1",
            "label_rollouts"} <= \
        set(quality["metric"])
    cost = dict(quality.filter(pl.col("metric") == "label_rollouts").select("subject", "value").iter_rows())
    assert cost["orm"] == cost["implicit_ce"] == 0 and 0 < cost["pqv.hard.first_pit"] <= cost["pqv"]
    assert 0 < cost["pqv.s1m2"] < cost["pqv"]  # half the seeds, half the rollouts per state
    assert "## Verifier quality (held-out val responses" in (L.report() / "summary.md").read_text()
    # every RL arm ran: the analytic arm's progress is that of the rl.prover's K, from the pqv
    arms = {str(a): data.read_table(L.rl(str(a), 0), data.RL_CURVE) for a in rl_arms(cfg)}
    assert set(arms["pav_analytic"]["prover"]) == {"analytic_k4"} and set(arms["implicit_ce"]["prover"]) == {""}
    assert arms["implicit_ce"]["verifier_tokens"].max() > 0 and arms["outcome"]["verifier_tokens"].max() == 0
    # the oracle arm's MC rollouts are counted as compute beside its policy samples
    assert set(arms["pav_mc_base_k4"]["prover"]) == {"base_k4"} and arms["pav_mc_base_k4"]["verifier_tokens"].max() > 0
    analytic = data.read_table(L.search(f"beam_{jobs['analytic_provers'][-1]}"), data.SEARCH)
    assert set(analytic["budget"]) == {cfg.search.k_budget} and set(analytic["verifier"]) == {"pqv+pav"}
    beam = data.read_table(L.search(f"beam_{headline(cfg)}"), data.SEARCH)
    assert sorted(beam["budget"].unique()) == list(cfg.search.budgets)
    for v in jobs["verifiers"]:
        assert (L.verifier(v) / "config.json").exists() and (L.verifier(v) / "tokenizer.json").exists()
    summary = (L.report() / "summary.md").read_text()
    assert "## Best-of-N (ORM) vs beam search" in summary and "not run" not in summary
    for section in ("## Headline: beam search (PAV) vs best-of-N (ORM) at equal compute", "### Paired comparisons",
                    "## Beam search accuracy vs α", "## Choice of α and prover on the validation split",
                    "## The paper's claims at this scale", "## Every search configuration"):
        assert section in summary, section
    head = json.loads((L.report() / "headline.json").read_text())
    assert {"headline/val_choice/prover", "headline/val_choice/alpha", "headline/compute_efficiency@1",
            "headline/gain_same_n@1", "headline/alpha/0/acc"} <= set(head)
    # the oracle's verifier cost is its rollouts; the val grid ran on val problems only
    oracle = data.read_table(L.search("oracle"), data.SEARCH)
    assert oracle.height == cfg.search.oracle_problems * len(cfg.search.budgets)
    assert oracle["verifier_tokens"].sum() > 0  # a candidate that finished is graded, for free
    val = pl.concat([data.read_table(L.search(f"val_{p}"), data.SEARCH) for p in jobs["provers"]])
    assert set(val["split"]) == {"val"} and val["problem_id"].n_unique() == cfg.search.val_problems
    assert set(val["budget"]) == {cfg.search.k_budget}
    assert len(list(L.report().glob("*.png"))) >= 5


def test_every_job_has_an_offline_wandb_run_with_its_metrics(study):
    _, cfg, L = study
    jobs = study_jobs(cfg)
    runs = {r.name: r for r in find_offline_runs(L.root)}
    expected = {STAGES[st].run_name(j) for st in STAGES for j in registry.jobs(st, cfg)}
    assert {"labels-base_k4", "rl-pav-0", "mc_fresh-weak", "search_beam-analytic_k4", "problems"} <= expected
    assert sorted(runs) == sorted(expected)
    for r in runs.values():
        assert r.group == "smoke" and r.exit_code == 0, r.name
        assert r.config["name"] == "smoke" and "wall_s" in r.summary, r.name
    sft = runs["sft-base"]
    steps = [h["sft/step"] for h in sft.history if "sft/step" in h]
    assert steps == list(range(cfg.sft.eval_every, cfg.sft.policies.base.max_steps + 1, cfg.sft.eval_every))
    log = data.read_table(L.policy_log("base"), data.TRAIN_LOG)
    assert [h["sft/loss"] for h in sft.history if "sft/loss" in h] == pytest.approx(log["loss"].to_list())
    metrics = data.read_table(L.verifier_metrics("pqv"), data.METRICS)
    brier = metrics.filter(pl.col("metric") == "brier")["value"][0]
    assert runs["verifier-pqv"].summary["val_brier"] == pytest.approx(brier)
    curve = data.read_table(L.rl("pav", 0), data.RL_CURVE)
    rl_hist = [h for h in runs["rl-pav-0"].history if "rl/samples_seen" in h]
    assert [h["rl/samples_seen"] for h in rl_hist] == curve["samples_seen"].to_list()
    assert [h["rl/test_acc_greedy"] for h in rl_hist] == pytest.approx(curve["test_acc_greedy"].to_list())
    assert runs["labels-base_k4"].job_type == "labels" and "k:4" in runs["labels-base_k4"].tags


def test_adding_a_prover_k_reuses_every_rollout(study):
    workdir, _, _ = study
    assert scheduled(workdir) == {}
    jobs = scheduled(workdir, ["sweep.prover_k=[1,4,2]"])
    assert not {"problems", "sft", "seeds", "mc", "search_pool", "search_bon", "rl"} & set(jobs), jobs
    # its labels, its pav, its beam search and its analytic twin's; the quality table gains two rows
    assert jobs["labels"] == 1 and jobs["verifier"] == 1 and jobs["search_beam"] == 2, jobs
    assert jobs["quality"] == 1 and "mc_fresh" not in jobs, jobs


def test_changing_a_search_parameter_reruns_only_search_and_report(study):
    workdir, _, _ = study
    jobs = scheduled(workdir, ["search.alpha=0.5"])
    assert set(jobs) == {"search_beam", "search_alpha", "search_selected", "search_beam_mc", "report", "all"}, jobs
    jobs = scheduled(workdir, ["search.alpha_grid=[0,1,4]"])
    assert set(jobs) == {"search_alpha", "search_val", "search_selected", "report", "all"}, jobs
    jobs = scheduled(workdir, ["search.budgets=[1,2]"])
    assert set(jobs) <= {"search_pool", "search_bon", "search_beam", "search_prm", "search_selected", "search_oracle",
                         "report", "all"}, jobs
    assert "search_bon" in jobs


def test_a_bad_override_fails_before_any_job_naming_the_key(study):
    workdir, _, _ = study
    out = snakemake(workdir, "-n", overrides=["sweep.prover_k=[0,4]"])
    assert out.returncode != 0
    assert "sweep.prover_k[0]=0" in out.stdout + out.stderr
    assert "from override 'sweep.prover_k=[0,4]'" in out.stdout + out.stderr


# ------------------------------------------------------------------------------ reliability

def tables(L: Layout) -> dict[str, bytes]:
    """Every Parquet table of a study, by path relative to its root, as bytes."""
    return {str(p.relative_to(L.root)): p.read_bytes() for p in sorted(L.root.rglob("*.parquet"))}


def start(workdir: Path, *args: str, overrides: list[str] = (), resume: bool = False) -> subprocess.Popen:
    """Snakemake on the smoke study in the background; `resume`: through the documented recovery
    command, `python -m pavflow.lock` (which runs Snakemake itself once the lock is known stale)."""
    head = [sys.executable, "-m", "pavflow.lock"] if resume else [sys.executable, "-m", "snakemake", "--cores", "2"]
    cmd = [*head, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args, "--config", "experiment=smoke",
           f"overrides={list(overrides)!r}"]  # targets before --config (conftest.run_snakemake)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: SIGKILL takes its jobs too


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group, and return once every process of it is gone (an orphaned
    Snakemake still dying would count as a live holder of the lock)."""
    import psutil
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)

    def in_group(p):
        try:
            return p.status() != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == proc.pid
        except (psutil.Error, ProcessLookupError):
            return False
    while any(in_group(p) for p in psutil.process_iter()):
        time.sleep(0.01)


def wait_for(cond, proc: subprocess.Popen, what: str) -> None:
    """Poll until `cond()`: an event of the run (a file appears, a log line), never a clock; the run
    ending first fails the test."""
    while not cond():
        if proc.poll() is not None:
            assert cond(), f"snakemake ended before {what}:\n{proc.stdout.read()[-3000:]}"
            return
        time.sleep(0.01)


def logged(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def owner(workdir: Path) -> int | None:
    """The pid recorded beside the lock by the run holding it (pavflow.lock.record_owner)."""
    try:
        return json.loads((workdir / lock.LOCKS / lock.OWNER).read_text())["pid"]
    except (OSError, ValueError):
        return None


def alive(pids) -> list[int]:
    import psutil
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def assert_no_partial_outputs(L: Layout) -> None:
    """What a later job would read is whole: every table parses, every model dir has its config."""
    for p in L.root.rglob("*.parquet"):
        pl.read_parquet(p)
    for d in list(L.root.glob("policies/*/model")) + list(L.root.glob("verifiers/*/model")):
        assert (d / "config.json").exists() and (d / "model.safetensors").exists(), d


# how often to checkpoint changes no output: every step, so a checkpoint exists while the job runs
FAST_CKPT = ["sft.checkpoint_every=1", "verifier.checkpoint_every=1"]


def test_killed_at_events_the_resumed_run_gives_the_same_tables(study, tmp_path):
    """SIGKILL the whole run (Snakemake and its jobs) when SFT has written its first checkpoint, resume
    with the documented command (`python -m pavflow.lock`), SIGKILL again once that run has resumed SFT
    from its checkpoint and a verifier or RL job has written one, resume again: the interrupted jobs
    resume from their checkpoints and the run ends with tables byte-identical to the uninterrupted
    run's. As soon as that last run holds the lock it is paused (SIGSTOP, so it surely still holds it):
    a second Snakemake and a second resume are both refused. Every kill is triggered by an event of the
    run (a checkpoint file, a log line), never by a clock, so a loaded machine only makes it slower. The run targets two RL arms and a second
    prover's labels: every checkpointing stage (SFT, value and implicit verifiers, RL), not the whole
    study (the Slurm test reruns that)."""
    workdir, cfg, L_ref = study
    L = Layout(tmp_path / cfg.results_dir / cfg.name)
    targets = [str(p.relative_to(workdir)) for p in (L_ref.rl("pav", 0), L_ref.rl("implicit_ce", 0),
                                                     L_ref.labels("base_k1"))]
    run = start(tmp_path, *targets, overrides=FAST_CKPT)
    wait_for(lambda: L.checkpoint("sft-base").exists(), run, "SFT's first checkpoint")
    kill(run)
    assert_no_partial_outputs(L)

    run = start(tmp_path, *targets, overrides=FAST_CKPT, resume=True)
    wait_for(lambda: logged(log_path(L, "sft", "base"), "resuming from checkpoint"), run, "SFT resumed")
    later = lambda: [c for c in L.root.glob("checkpoints/*.pt") if not c.name.startswith("sft-")]
    wait_for(later, run, "a verifier's or an RL job's first checkpoint")
    kill(run)
    assert_no_partial_outputs(L)
    interrupted = [c.stem.split("-", 1) for c in later()]  # [stage, job] of each job killed mid-training
    assert interrupted

    stale = owner(tmp_path)  # the killed run's record, left beside its lock
    run = start(tmp_path, *targets, overrides=FAST_CKPT, resume=True)
    wait_for(lambda: owner(tmp_path) not in (None, stale), run, "the run took the lock")
    os.killpg(run.pid, signal.SIGSTOP)
    try:
        second = snakemake(tmp_path, "--cores", "1", *targets, overrides=FAST_CKPT)
        assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr
        again = subprocess.run([sys.executable, "-m", "pavflow.lock", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                                *targets, "--config", "experiment=smoke", f"overrides={FAST_CKPT!r}"],
                               capture_output=True, text=True, timeout=2400)
        assert again.returncode == 1 and "held by a live run (pid" in again.stderr, again.stderr[-3000:]
    finally:
        os.killpg(run.pid, signal.SIGCONT)
    out, _ = run.communicate(timeout=1800)
    assert run.returncode == 0, out[-5000:]
    for stage, job in interrupted:
        assert logged(log_path(L, stage, job), "resuming from checkpoint"), (stage, job)
    ours, ref = tables(L), tables(L_ref)
    assert {"rl/pav_s0.parquet", "rl/implicit_ce_s0.parquet", "labels/base_k1.parquet"} <= set(ours)
    assert ours == {t: ref[t] for t in ours}
    assert not list(L.root.glob("checkpoints/*.pt"))  # finished jobs leave no checkpoint behind


def test_sigterm_ends_the_run_promptly_and_releases_the_lock(study, tmp_path):
    """`kill <snakemake pid>` while SFT runs: Snakemake's own handler would wait for the job to finish
    ("Will exit after finishing currently running jobs"); the workflow's ends it now, leaves no job
    process behind, releases the lock, and the next plain run resumes SFT from its checkpoint."""
    import psutil
    workdir, cfg, L_ref = study
    L = Layout(tmp_path / cfg.results_dir / cfg.name)
    target = str(L_ref.policy("base").relative_to(workdir))
    run = start(tmp_path, target, overrides=FAST_CKPT)
    wait_for(lambda: L.checkpoint("sft-base").exists(), run, "SFT's first checkpoint")
    jobs = [c.pid for c in psutil.Process(run.pid).children(recursive=True)]
    os.kill(run.pid, signal.SIGTERM)  # Snakemake alone, as `kill <pid>` or a scheduler's SIGTERM does
    out, _ = run.communicate(timeout=300)
    assert run.returncode != 0 and "Will exit after finishing currently running jobs" not in out, out[-3000:]
    # no clock: "promptly" is that SFT was ended, not waited for (its output never appeared)
    assert jobs and alive(jobs) == []  # the job and its children ended with it
    assert not lock.is_locked(tmp_path) and not L.policy("base").exists()
    rerun = snakemake(tmp_path, "--cores", "2", target, overrides=FAST_CKPT)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert logged(log_path(L, "sft", "base"), "resuming from checkpoint")


def log_path(L: Layout, stage: str, *wild: str) -> Path:
    return L.logs() / stage / (("-".join(wild) or stage) + ".log")


def test_another_seed_gives_other_tables(study, tmp_path):
    _, cfg, L_ref = study
    out = snakemake(tmp_path, "--cores", "2", str(L_ref.seeds().relative_to(study[0])), overrides=["seed=1"])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    L = Layout(tmp_path / cfg.results_dir / cfg.name)
    for path in (L.problems(), L.seeds()):
        rel = path.relative_to(L.root)
        assert path.read_bytes() != (L_ref.root / rel).read_bytes(), rel


# ------------------------------------------------------------------------------ a study's identity

def test_what_a_config_change_would_overwrite(study, monkeypatch):
    """From Snakemake's records of the smoke study: adding a K overwrites nothing (new jobs, and the
    aggregates rebuilt in place); alpha would overwrite the beam searches made with alpha = 1 (the MC
    oracle's too); a seed, everything."""
    from pavflow import identity
    from pavflow.config import compose
    workdir, _, _ = study
    monkeypatch.chdir(workdir)

    def overwritten(overrides):
        cfg = compose("smoke", overrides)
        L = Layout(Path(cfg.results_dir) / cfg.name)
        jobs = [(st, registry.flat(list(STAGES[st].outputs(cfg, L, j).values())), registry.params(st, cfg, j))
                for st in STAGES for j in registry.jobs(st, cfg)]
        return identity.overwrites(jobs, workdir / ".snakemake" / "metadata")
    assert overwritten([]) == [] and overwritten(["sweep.prover_k=[1,4,2]"]) == []
    alpha = overwritten(["search.alpha=0.5"])
    assert {o.stage for o in alpha} == {"search_beam", "search_alpha", "search_beam_mc"}
    assert all(o.changes == {"search.alpha": (1.0, 0.5)} for o in alpha)
    seed = overwritten(["seed=1"])
    assert {"problems", "sft", "mc", "rl"} <= {o.stage for o in seed} and all(o.changes["seed"] == (0, 1) for o in seed)


def test_a_seed_sweep_keeps_every_seeds_tables(tmp_path):
    """seed=1 on a directory holding seed 0 was planned into the same files and overwrote them; now the
    run is refused before any job, naming the outputs and the key, and what it says to type keeps both."""
    target = "results/smoke/problems.parquet"
    assert snakemake(tmp_path, "--cores", "1", target).returncode == 0
    seed0 = (tmp_path / target).read_bytes()
    out = snakemake(tmp_path, "--cores", "1", target, overrides=["seed=1"])
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "this run would overwrite 1 output in results/smoke" in text, text[-3000:]
    assert "(problems.parquet)" in text and "    seed: 0 -> 1\n" in text
    assert """--config experiment=smoke overrides='["seed=1", "name=smoke_seed1"]'""" in text
    assert """--config experiment=smoke overrides='["seed=1"]' overwrite=True""" in text
    assert (tmp_path / target).read_bytes() == seed0
    out = snakemake(tmp_path, "--cores", "1", "results/smoke_seed1/problems.parquet", overrides=["seed=1", "name=smoke_seed1"])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    seed1 = (tmp_path / "results/smoke_seed1/problems.parquet").read_bytes()
    assert (tmp_path / target).read_bytes() == seed0 != seed1
    out = snakemake(tmp_path, "--cores", "1", target, overrides=["seed=1"], config=["overwrite=True"])
    assert out.returncode == 0 and (tmp_path / target).read_bytes() == seed1, (out.stdout + out.stderr)[-3000:]


# ------------------------------------------------------------------------------ paths, messages, profile

def test_a_results_dir_with_a_space(study, tmp_path):
    """Two jobs (problems, SFT of the weak policy) with results_dir holding a space: every path of the
    stage commands arrives whole (it used to split: an empty log, Hydra's error in a stray file)."""
    root = tmp_path / "my results"
    L = Layout(root / "smoke")
    out = snakemake(tmp_path, "--cores", "2", str(L.policy("weak")), overrides=[f"results_dir={root}"])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert (L.policy("weak") / "config.json").exists() and L.problems().exists()
    assert logged(log_path(L, "problems"), "problems done") and logged(log_path(L, "sft", "weak"), "sft-weak done")
    assert (L.logs() / "hydra" / "sft-weak" / "provenance.json").exists()
    assert sorted(os.listdir(tmp_path)) == [".snakemake", "my results"]  # nothing stray


def test_a_report_before_the_study_says_to_run_it_first(tmp_path):
    out = snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "no report of results/smoke to show yet" in text, text[-3000:]
    assert "run the study first, snakemake --cores all --config experiment=smoke" in text
    assert "marked for report but does not exist" not in text


def test_the_default_profile_is_loaded(tmp_path):
    out = snakemake(tmp_path, "-n", "results/smoke/problems.parquet")
    assert out.returncode == 0
    # Snakemake names the profile as it found it: relative to the current directory when run from the repo
    m = re.search(r"Using workflow specific profile (\S+) for", out.stdout + out.stderr)
    assert m and Path(m.group(1)).resolve() == (REPO / "profiles" / "default").resolve(), out.stderr[-3000:]


def test_wandb_runs_tell_the_story(study):
    _, cfg, L = study
    jobs = study_jobs(cfg)
    runs = {r.name: r for r in find_offline_runs(L.root)}
    assert {r.group for r in runs.values()} == {"smoke"}
    assert {r.job_type for r in runs.values()} == set(STAGES) - {"rft"}  # job type = stage
    for p in jobs["provers"]:
        k = p.rsplit("_k", 1)[1]
        assert {f"prover:{p}", f"k:{k}"} <= set(runs[f"labels-{p}"].tags) == set(runs[f"search_beam-{p}"].tags)
    # metrics against the figures' axes
    for name in ["search_bon"] + [f"search_beam-{p}" for p in jobs["provers"]]:
        assert runs[name].axes == {"search/acc/*": "search/budget", "search/gen_tokens": "search/budget",
                                   "search/acc_vs_tokens/*": "search/gen_tokens"}, name
    assert runs["rl-pav-0"].axes == {"rl/*": "rl/samples_seen"}
    head = runs[f"search_beam-{headline(cfg)}"]
    logged = [(h["search/budget"], h["search/acc/beam"], h["search/acc_vs_tokens/beam"], h["search/gen_tokens"])
              for h in head.history if "search/budget" in h]
    # per-budget table = history = the SEARCH table
    beam = data.read_table(L.search(f"beam_{headline(cfg)}"), data.SEARCH)
    per_budget = beam.group_by("budget").agg(pl.col("correct").mean(), pl.col("gen_tokens").mean()).sort("budget")
    assert [r["budget"] for r in head.tables["search/per_budget"]] == list(cfg.search.budgets)
    assert [r["acc"] for r in head.tables["search/per_budget"]] == pytest.approx(per_budget["correct"].to_list())
    assert [x for b, a, _, t in logged for x in (b, a, t)] == pytest.approx(
        [x for r in per_budget.iter_rows() for x in r])
    assert all(a == a2 for _, a, a2, _ in logged)
    bon = runs["search_bon"].tables["search/per_budget"]
    assert {r["method"] for r in bon} == {"bon", "weighted_majority", "majority", "pass"}
    # the report run: per-budget curves with CIs, per-K results, verifier quality, RL finals
    rep = runs["report"].tables
    curves = pl.read_parquet(L.report() / "curves.parquet")
    assert len(rep["report/per_budget"]) == curves.height
    assert {"acc", "ci_low", "ci_high", "gen_tokens", "budget"} <= set(rep["report/per_budget"][0])
    # the K curve of the learned (and analytic) PAVs, and the oracle provers' on fresh MC rollouts
    mc = [j["prover"] for j in registry.jobs("search_beam_mc", cfg)]
    assert sorted((r["verifier"], r["prover"], r["K"]) for r in rep["report/per_k"]) == sorted(
        [("pqv+pav", p, int(p.rsplit("_k", 1)[1])) for p in jobs["beam_provers"]] +
        [("mc", p, int(p.rsplit("_k", 1)[1])) for p in mc])
    assert {r["budget"] for r in rep["report/per_k"]} == {cfg.search.k_budget}
    oracles = ["oracle"] + [f"oracle_{p}" for p in jobs["provers"]]
    assert {r["subject"] for r in rep["report/verifier_quality"]} == set(jobs["quality_verifiers"] + oracles)
    assert sorted((r["arm"], r["seed"]) for r in rep["report/rl_final"]) == sorted(jobs["rl_runs"])
    # artifacts by reference to the outputs' paths
    prover = str(headline(cfg))
    expected = {"sft-base": {"smoke-sft-base-model": L.policy("base"), "smoke-sft-base-log": L.policy_log("base")},
                "verifier-pqv": {"smoke-verifier-pqv-model": L.verifier("pqv"),
                                 "smoke-verifier-pqv-metrics": L.verifier_metrics("pqv"),
                                 "smoke-verifier-pqv-log": L.verifier_log("pqv")},
                f"labels-{prover}": {f"smoke-labels-{prover}": L.labels(prover)},
                "search_bon": {f"smoke-search_bon-{k}": p for k, p in STAGES["search_bon"].outputs(cfg, L, {}).items()},
                "rl-pav-0": {"smoke-rl-pav-0": L.rl("pav", 0)},
                "report": {f"smoke-report-{k}": p for k, p in STAGES["report"].outputs(cfg, L, {}).items()}}
    for name, arts in expected.items():
        assert sorted(runs[name].artifacts) == sorted(arts), name
        for art, path in arts.items():
            refs = runs[name].references[art]
            assert refs and all(r.startswith(path.resolve().as_uri()) for r in refs), (art, refs[:3])
    assert L.report().resolve().joinpath("acc_vs_tokens.png").as_uri() in runs["report"].references["smoke-report-acc_vs_tokens"]


def test_wandb_report_panels_plot_what_the_runs_logged(study):
    from test_stages_wandb_report import grids

    from pavflow.stages.wandb_report import build_report
    _, cfg, L = study
    runs = find_offline_runs(L.root)
    for job_type, panels in grids(build_report(cfg, entity="someone")).items():
        mine = [r for r in runs if r.job_type in job_type]
        logged = {k for r in mine for h in r.history for k in h} | {k for r in mine for k in r.summary}
        tables = {k for r in mine for k in r.tables}
        for p in panels:
            if hasattr(p, "table_name"):
                assert p.table_name in tables, (job_type, p.table_name)
                continue
            keys = (p.metrics if hasattr(p, "metrics") else [p.x, *p.y])
            assert set(keys) <= logged, (job_type, set(keys) - logged)


# ----------------------------------------------------------------------------- the HTML report

FIGURES = ["acc_vs_tokens", "acc_vs_budget", "prover_k_N{k}", "alpha_N{k}", "verifier_quality", "rl_curves",
           "success_histogram", "train_logs", "bon_diagnosis", "oracle_k", "data_scaling"]


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium not installed: apt-get install -y --no-install-recommends chromium")
    return exe


def _browse(page: Path, *args: str) -> subprocess.CompletedProcess:
    """Load `page` in headless Chromium; JavaScript timers run for up to 10 s of virtual time."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--virtual-time-budget=10000", "--window-size=1400,1000", *args, page.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=page.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def report_html(study):
    workdir, cfg, L = study
    html = L.root / "report.html"
    out = snakemake(workdir, "--report", str(html))
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    return html


def _js_var(page: str, name: str):
    """The JSON data the report app renders: <script id="name">var name = {...};</script>."""
    return json.loads(re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', page, re.S).group(1))


def test_report_holds_every_figure_the_tables_and_the_config(study, report_html):
    _, cfg, L = study
    page = report_html.read_text()
    results, categories = _js_var(page, "results"), _js_var(page, "categories")
    by_name = {Path(p).name: r for p, r in results.items()}
    for f in FIGURES:
        png = L.report() / (f.format(k=cfg.search.k_budget) + ".png")
        r = by_name[png.name]
        assert r["mime_type"] == "image/png" and r["caption"], png.name
        assert base64.b64decode(r["data_uri"].split("base64,", 1)[1]) == png.read_bytes()
    summary = by_name["summary.html"]
    assert summary["mime_type"] == "text/html"
    tables = base64.b64decode(summary["data_uri"].split("base64,", 1)[1]).decode()
    assert tables.count("<table>") >= 6 and "95% CI" in tables and "not run" not in tables
    assert "<h2>Resolved configuration</h2>" in tables and "name: smoke" in tables
    assert base64.b64decode(by_name["config.yaml"]["data_uri"].split("base64,", 1)[1]).decode() == (
        L.report() / "config.yaml").read_text()
    assert sorted(categories) == ["1. Summary", "2. Test-time search", "3. Verifiers", "4. Online RL", "5. Policies"]


def test_report_loads_in_chromium_and_shows_a_figure(study, report_html, tmp_path):
    _, cfg, L = study
    # The page loads: the React app rendered its navigation with every results category.
    dom = _browse(report_html, "--dump-dom").stdout
    app = dom[dom.index('<div id="app">'):]
    app = app[:app.index("<script")]  # the rendered app, not the data it was rendered from
    assert "<nav" in app and "Workflow" in app and "Statistics" in app
    for c in ["1. Summary", "2. Test-time search", "3. Verifiers", "4. Online RL", "5. Policies"]:
        assert f">{c}<" in app, c
    # The results section: open the accuracy-vs-compute figure as a click on it does (the app's own
    # setView), then check the figure is in the page and the screenshot shows it.
    show = """<script>window.addEventListener("load", () => setTimeout(() => {
      const path = Object.keys(results).find(p => p.endsWith("/acc_vs_tokens.png"));
      app.setView({content: "img", contentPath: results[path].data_uri, resultPath: path});
    }, 100));</script>"""
    page = report_html.read_text()
    shown = tmp_path / "report.html"
    shown.write_text(page[:page.rindex("</body>")] + show + page[page.rindex("</body>"):])
    png = base64.b64encode((L.report() / "acc_vs_tokens.png").read_bytes()).decode()
    dom = _browse(shown, "--dump-dom").stdout
    img = re.search(r'<div class="p-3"><img src="data:image/png[^"]*base64,([^"]+)"', dom)
    assert img and img.group(1) == png
    _browse(shown, f"--screenshot={tmp_path / 'results.png'}")
    shot = np.asarray(Image.open(tmp_path / "results.png").convert("L"), dtype=np.float64)
    content = shot[:, int(0.25 * shot.shape[1]):]  # right of the navigation bar
    assert content.std() > 20, content.std()  # a blank page has std 0
    assert (content < 100).mean() > 0.005  # dark pixels: axes, text, lines
