"""What the workflow derives from a study: stage params (rerun triggers), beam budgets, the job list."""
from __future__ import annotations

from pathlib import Path

import pytest

from pavflow.provenance import PACKAGE_DIR, code_hash
from pavflow.study import CODE, COMMON, beam_budgets, compose, stage_params, study_jobs

BUILTIN = (str, int, float, bool, type(None))


@pytest.fixture(scope="module")
def didactic():
    return compose("didactic", [])


def jobs_of(stage: str, cfg) -> list[dict]:
    """The jobs of a stage whose params the tests compare (one dict of job wildcards each)."""
    if stage == "sft":
        return [{"policy": p} for p in cfg.sft.policies]
    if stage in ("search_beam", "labels"):
        return [{"prover": p} for p in study_jobs(cfg)["provers"]]
    return [{}]


def all_params(cfg) -> dict:
    return {(stage, tuple(sorted(job.items()))): stage_params(cfg, stage, **job)
            for stage in CODE for job in jobs_of(stage, cfg)}


def assert_builtin(x, where="params"):
    if isinstance(x, dict):
        for k, v in x.items():
            assert isinstance(k, str), f"{where}: key {k!r} is {type(k).__name__}"
            assert_builtin(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            assert_builtin(v, f"{where}[{i}]")
    else:
        assert type(x) in BUILTIN, f"{where}={x!r} is {type(x).__name__}, not a builtin"


def test_stage_params_are_builtin(didactic):
    for (stage, job), params in all_params(didactic).items():
        assert isinstance(params, dict)
        assert_builtin(params, f"{stage}{dict(job)}")
        assert isinstance(params["code"], str) and len(params["code"]) == 16
        assert params["seed"] == 0 and params["dtype"] == "float32"


def test_stage_params_cover_every_stage(didactic):
    assert set(CODE) == {"problems", "sft", "seeds", "mc", "labels", "verifier", "search_pool",
                         "search_bon", "search_beam", "rl", "report"}
    # sft params depend on the policy trained; the untrained-policy case still gives builtins
    base, weak = (stage_params(didactic, "sft", policy=p) for p in ("base", "weak"))
    assert base != weak and base["sft"]["this"] == {"max_steps": 1000, "target_val_acc": 0.45}
    assert_builtin(stage_params(didactic, "sft"))


def test_adding_a_k_leaves_existing_jobs_alone(didactic):
    more = compose("didactic", ["sweep.prover_k=[1,2,4,8,16,32,64]"])
    assert study_jobs(more)["provers"][-2:] == ["base_k64", "weak_k4"]
    for stage in ("problems", "seeds", "mc", "verifier", "search_pool", "search_bon", "rl"):
        assert stage_params(more, stage) == stage_params(didactic, stage), stage
    assert stage_params(more, "sft", policy="base") == stage_params(didactic, "sft", policy="base")
    for prover in study_jobs(didactic)["provers"]:
        assert stage_params(more, "search_beam", prover=prover) == \
            stage_params(didactic, "search_beam", prover=prover), prover
        assert stage_params(more, "labels", prover=prover) == \
            stage_params(didactic, "labels", prover=prover), prover
    assert stage_params(more, "report") != stage_params(didactic, "report")


def test_alpha_changes_only_search_beam_and_report(didactic):
    other = compose("didactic", ["search.alpha=0.5"])
    before, after = all_params(didactic), all_params(other)
    changed = {stage for key, stage in ((k, k[0]) for k in before) if before[key] != after[key]}
    assert changed == {"search_beam", "report"}
    # every beam job changes, headline or not
    assert all(before[k] != after[k] for k in before if k[0] == "search_beam")


def test_n_mc_changes_mc_not_seeds(didactic):
    other = compose("didactic", ["rollouts.n_mc=4"])
    assert stage_params(other, "mc") != stage_params(didactic, "mc")
    assert stage_params(other, "seeds") == stage_params(didactic, "seeds")
    # the seed count changes both
    more_seeds = compose("didactic", ["rollouts.n_seed=3"])
    assert stage_params(more_seeds, "mc") != stage_params(didactic, "mc")
    assert stage_params(more_seeds, "seeds") != stage_params(didactic, "seeds")


def test_beam_budgets(didactic):
    assert didactic.search.prover == "base_k4"
    assert beam_budgets(didactic, "base_k4") == [1, 2, 4, 8, 16, 32, 64]
    for p in ("base_k1", "base_k32", "weak_k4", ""):
        assert beam_budgets(didactic, p) == [16]
    assert stage_params(didactic, "search_beam", prover="base_k4")["budgets"] == [1, 2, 4, 8, 16, 32, 64]
    assert stage_params(didactic, "search_beam", prover="weak_k4")["budgets"] == [16]
    other = compose("didactic", ["search.k_budget=8"])
    assert beam_budgets(other, "base_k2") == [8]
    assert beam_budgets(other, "base_k4") == [1, 2, 4, 8, 16, 32, 64]


def test_study_jobs(didactic):
    jobs = study_jobs(didactic)
    provers = ["base_k1", "base_k2", "base_k4", "base_k8", "base_k16", "base_k32", "weak_k4"]
    assert jobs["provers"] == provers
    assert jobs["verifiers"] == ["orm", "pqv"] + [f"pav_{p}" for p in provers]
    assert jobs["policies"] == ["base", "weak"]
    assert jobs["rollout_policies"] == ["base", "weak"]
    assert jobs["rl_runs"] == [("outcome", 0), ("pav", 0)]
    smoke = compose("smoke", ["rl.seeds=[0,1]"])
    jobs = study_jobs(smoke)
    assert jobs["verifiers"] == ["orm", "pqv", "pav_base_k1", "pav_base_k4", "pav_weak_k1"]
    assert jobs["rl_runs"] == [("outcome", 0), ("outcome", 1), ("pav", 0), ("pav", 1)]


def test_code_modules_exist():
    for m in COMMON + [m for ms in CODE.values() for m in ms]:
        assert (PACKAGE_DIR / m).exists(), m
        assert len(code_hash([m])) == 16
    for stage, modules in CODE.items():
        code_hash(COMMON + modules)
    # distinct stages depending on distinct code get distinct hashes
    assert code_hash(COMMON + CODE["problems"]) != code_hash(COMMON + CODE["report"])


def test_study_finds_the_conf_tree_the_stages_use():
    from pavflow.stages.common import CONF_DIR
    from pavflow.study import CONF_DIR as study_conf_dir
    assert study_conf_dir == CONF_DIR and (Path(study_conf_dir) / "config.yaml").exists()


def test_resources_never_rerun_a_job(didactic):
    other = compose("didactic", ["resources.mem_mb=64000", "resources.stages.sft.runtime=999"])
    assert all_params(other) == all_params(didactic)
