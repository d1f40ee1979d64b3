"""The smoke experiment end to end through Snakemake: every table matches its schema, every job
left a W&B offline run with the metrics its stage logged, and the DAG reruns only what a config
change touches."""
from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from pavflow import data
from pavflow.study import study_jobs
from pavflow.tracking import find_offline_runs
from conftest import run_snakemake

pytestmark = pytest.mark.dag


def snakemake(workdir: Path, *args: str, overrides: list[str] = (), timeout: int = 900):
    return run_snakemake(workdir, *args, overrides=overrides, timeout=timeout)


def scheduled(workdir: Path, overrides: list[str] = ()) -> dict[str, int]:
    """Jobs a dry run would execute, by rule."""
    out = snakemake(workdir, "-n", overrides=overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


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
    tables += [(L.search(f"beam_{p}"), data.SEARCH) for p in jobs["provers"]]
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
    for p in jobs["rollout_policies"]:
        assert data.read_table(L.mc(p), data.MC).height == n_states
    beam = data.read_table(L.search(f"beam_{cfg.search.prover}"), data.SEARCH)
    assert sorted(beam["budget"].unique()) == list(cfg.search.budgets)
    for v in jobs["verifiers"]:
        assert (L.verifier(v) / "config.json").exists() and (L.verifier(v) / "tokenizer.json").exists()
    summary = (L.report() / "summary.md").read_text()
    assert "## Best-of-N (ORM) vs beam search" in summary and "not run" not in summary
    assert len(list(L.report().glob("*.png"))) >= 5


def test_every_job_has_an_offline_wandb_run_with_its_metrics(study):
    _, cfg, L = study
    jobs = study_jobs(cfg)
    runs = {r.name: r for r in find_offline_runs(L.root)}
    expected = (["problems", "seeds-base", "search-pool-base", "search-bon-orm", "report"]
                + [f"sft-{p}" for p in jobs["policies"]] + [f"mc-{p}" for p in jobs["rollout_policies"]]
                + [f"labels-{p}" for p in jobs["provers"]] + [f"search-beam-{p}" for p in jobs["provers"]]
                + [f"verifier-{v}" for v in jobs["verifiers"]] + [f"rl-{a}-s{s}" for a, s in jobs["rl_runs"]])
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
    rl_hist = [h for h in runs["rl-pav-s0"].history if "rl/samples_seen" in h]
    assert [h["rl/samples_seen"] for h in rl_hist] == curve["samples_seen"].to_list()
    assert [h["rl/test_acc_greedy"] for h in rl_hist] == pytest.approx(curve["test_acc_greedy"].to_list())
    assert runs["labels-base_k4"].job_type == "labels" and "k:4" in runs["labels-base_k4"].tags


def test_adding_a_prover_k_reuses_every_rollout(study):
    workdir, _, _ = study
    assert scheduled(workdir) == {}
    jobs = scheduled(workdir, ["sweep.prover_k=[1,4,2]"])
    assert not {"problems", "sft", "seeds", "mc", "search_pool", "search_bon", "rl"} & set(jobs), jobs
    assert jobs["labels"] == 1 and jobs["verifier"] == 1 and jobs["search_beam"] == 1, jobs


def test_changing_a_search_parameter_reruns_only_search_and_report(study):
    workdir, _, _ = study
    jobs = scheduled(workdir, ["search.alpha=0.5"])
    assert set(jobs) == {"search_beam", "report", "all"}, jobs
    jobs = scheduled(workdir, ["search.budgets=[1,2]"])
    assert set(jobs) <= {"search_pool", "search_bon", "search_beam", "report", "all"}, jobs
    assert "search_bon" in jobs


def test_a_bad_override_fails_before_any_job_naming_the_key(study):
    workdir, _, _ = study
    out = snakemake(workdir, "-n", overrides=["sweep.prover_k=[0,4]"])
    assert out.returncode != 0
    assert "sweep.prover_k[0]=0" in out.stdout + out.stderr
