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
    if stage in ("labels", "search_val"):
        return [{"prover": p} for p in study_jobs(cfg)["provers"]]
    if stage == "search_beam":
        return [{"prover": p} for p in study_jobs(cfg)["beam_provers"]]
    if stage == "verifier":
        return [{"verifier": v} for v in study_jobs(cfg)["verifiers"]]
    if stage == "search_beamv":
        return [{"verifier": v} for v in study_jobs(cfg)["beam_verifiers"]]
    if stage == "search_prm":
        return [{"verifier": v} for v in study_jobs(cfg)["prm_verifiers"]]
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
    assert set(CODE) == {"problems", "sft", "seeds", "mc", "labels", "verifier", "quality", "search_pool",
                         "search_bon", "search_beam", "search_beamv", "search_prm", "search_alpha", "search_val",
                         "search_selected", "search_oracle", "rft", "rl", "report"}
    # sft params depend on the policy trained; the untrained-policy case still gives builtins
    base, weak = (stage_params(didactic, "sft", policy=p) for p in ("base", "weak"))
    assert base != weak and base["sft"]["this"] == {"max_steps": 1000, "target_val_acc": 0.45}
    assert_builtin(stage_params(didactic, "sft"))


def test_adding_a_k_leaves_existing_jobs_alone(didactic):
    more = compose("didactic", ["sweep.prover_k=[1,2,4,8,16,32,64]"])
    assert study_jobs(more)["provers"][-3:] == ["base_k64", "weak_k4", "strong_k4"]
    for stage in ("problems", "seeds", "mc", "verifier", "search_pool", "search_bon", "rl"):
        assert stage_params(more, stage) == stage_params(didactic, stage), stage
    assert stage_params(more, "sft", policy="base") == stage_params(didactic, "sft", policy="base")
    for prover in study_jobs(didactic)["provers"]:
        assert stage_params(more, "search_beam", prover=prover) == \
            stage_params(didactic, "search_beam", prover=prover), prover
        assert stage_params(more, "labels", prover=prover) == \
            stage_params(didactic, "labels", prover=prover), prover
    assert stage_params(more, "report") != stage_params(didactic, "report")


def changed_stages(cfg, overrides: list[str]) -> set[str]:
    before, after = all_params(cfg), all_params(compose("didactic", overrides))
    return {k[0] for k in before if before[k] != after.get(k)}  # a job that disappears counts as changed


def test_alpha_changes_only_the_beam_jobs_that_use_it_and_report(didactic):
    # the alpha curve leaves out search.alpha (the headline job's), and the val-chosen run reuses the
    # headline job's rows when it picks search.alpha: both depend on it. The val grid does not.
    assert changed_stages(didactic, ["search.alpha=0.5"]) == {"search_beam", "search_alpha", "search_selected",
                                                              "report"}
    before, after = all_params(didactic), all_params(compose("didactic", ["search.alpha=0.5"]))
    assert all(before[k] != after[k] for k in before if k[0] == "search_beam")  # headline or not


def test_sweep_settings_rerun_only_their_sweeps(didactic):
    assert changed_stages(didactic, ["search.alpha_grid=[0,1,3]"]) == {"search_alpha", "search_val",
                                                                       "search_selected", "report"}
    assert changed_stages(didactic, ["search.val_problems=32"]) == {"search_val", "search_selected", "report"}
    assert changed_stages(didactic, ["search.oracle=false"]) == {"report"}  # the oracle job is dropped, nothing rerun
    assert changed_stages(didactic, ["search.oracle_rollouts=8"]) == {"search_oracle", "report"}
    assert changed_stages(didactic, ["search.aggregate=min"]) == {"report"}  # every aggregation is computed
    # the val grid of the headline prover also runs alpha = 0: a change of headline prover touches it
    assert changed_stages(didactic, ["search.prover=base_k8"]) >= {"search_val", "search_alpha", "search_selected"}
    assert "search_bon" not in changed_stages(didactic, ["search.prover=base_k8"])


def changed_jobs(cfg, overrides: list[str]) -> set:
    before, after = all_params(cfg), all_params(compose("didactic", overrides))
    return {(k[0], *[v for _, v in k[1]]) for k in before if before[k] != after.get(k)}


def test_verifier_settings_rerun_only_the_verifiers_they_shape(didactic):
    # implicit PRM settings: the implicit verifiers and the quality table, no value verifier
    assert changed_jobs(didactic, ["verifier.implicit.beta=0.1"]) == {
        ("verifier", "implicit_ce"), ("verifier", "implicit_dpo"), ("quality",)}
    assert changed_jobs(didactic, ["verifier.random_states=3"]) == {("verifier", "pqv.random"), ("quality",)}
    assert changed_jobs(didactic, ["verifier.quality_bins=5"]) == {("quality",)}
    # value-verifier settings leave the implicit PRMs alone
    steps = changed_jobs(didactic, ["verifier.steps=100"])
    assert ("verifier", "pqv") in steps and ("verifier", "implicit_ce") not in steps


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
    provers = ["base_k1", "base_k2", "base_k4", "base_k8", "base_k16", "base_k32", "weak_k4", "strong_k4"]
    analytic = [f"analytic_k{k}" for k in (1, 2, 4, 8, 16, 32)]
    variants = ["pqv.hard", "pqv.random", "pqv.first_pit", "pqv.hard.first_pit", "pav_base_k4.first_pit"]
    assert jobs["provers"] == provers and jobs["analytic_provers"] == analytic
    assert jobs["verifiers"] == ["orm", "pqv"] + [f"pav_{p}" for p in provers] + ["implicit_ce", "implicit_dpo"] + variants
    assert jobs["quality_verifiers"] == jobs["verifiers"] + [f"pav_{a}" for a in analytic]
    assert jobs["beam_provers"] == provers + analytic  # the K curve of trained and analytic PAVs
    assert jobs["beam_verifiers"] == ["implicit_ce", "implicit_dpo"]
    assert jobs["prm_verifiers"] == ["pqv", "pav_base_k4", "implicit_ce", "implicit_dpo"]
    assert jobs["policies"] == ["base", "weak", "strong"]
    assert jobs["rollout_policies"] == ["base", "weak", "strong"]
    assert jobs["rl_runs"] == [(arm, s) for arm in ("outcome", "pav", "pav_analytic", "implicit_ce")
                               for s in (0, 1, 2)]  # seed bands
    smoke = compose("smoke", ["rl.seeds=[0,1]", "sweep.analytic=false"])
    jobs = study_jobs(smoke)
    assert jobs["verifiers"] == ["orm", "pqv", "pav_base_k1", "pav_base_k4", "pav_weak_k1", "implicit_ce",
                                 "pqv.hard.first_pit"]
    assert jobs["analytic_provers"] == [] and jobs["quality_verifiers"] == jobs["verifiers"]
    assert jobs["rl_runs"] == [(a, s) for a in ("outcome", "pav", "pav_analytic", "implicit_ce") for s in (0, 1)]


def test_code_modules_exist():
    for m in COMMON + [m for ms in CODE.values() for m in ms]:
        assert (PACKAGE_DIR / m).exists(), m
        assert len(code_hash([m])) == 16
    for stage, modules in CODE.items():
        code_hash(COMMON + modules)
    # distinct stages depending on distinct code get distinct hashes
    assert code_hash(COMMON + CODE["problems"]) != code_hash(COMMON + CODE["report"])


# --- where a bad value came from -----------------------------------------------------------------

@pytest.fixture()
def conf_copy(tmp_path, monkeypatch):
    """A copy of conf/ that compose() reads instead of the real one."""
    import shutil

    import pavflow.study as study
    conf = tmp_path / "conf"
    shutil.copytree(study.CONF_DIR, conf)
    monkeypatch.setattr(study, "CONF_DIR", str(conf))
    return conf


def compose_error(experiment: str, overrides: list[str]) -> str:
    from pavflow.config import ConfigError
    with pytest.raises(ConfigError) as e:
        compose(experiment, overrides)
    return str(e.value)


def test_bad_value_names_the_override_it_came_from():
    msg = compose_error("smoke", ["search.alpha=-1"])
    assert "search.alpha=-1.0" in msg and "from override 'search.alpha=-1'" in msg
    msg = compose_error("smoke", ["sweep.prover_k=[1,0]"])
    assert "sweep.prover_k[1]=0" in msg and "from override 'sweep.prover_k=[1,0]'" in msg


def test_bad_value_names_the_file_it_came_from(conf_copy):
    exp = conf_copy / "experiment" / "typo.yaml"
    exp.write_text("# @package _global_\nname: typo\nrollouts:\n  n_mc: 0\n")
    msg = compose_error("typo", [])
    assert "rollouts.n_mc=0" in msg and f"set in {exp}" in msg
    # a group file's value, when no preset or override sets it
    (conf_copy / "search" / "default.yaml").write_text(
        (conf_copy / "search" / "default.yaml").read_text().replace("alpha: 1.0", "alpha: -2.0"))
    msg = compose_error("didactic", [])
    assert "search.alpha=-2.0" in msg and f"set in {conf_copy / 'search' / 'default.yaml'}" in msg
    # an override wins over the file
    assert "from override 'search.alpha=-3'" in compose_error("didactic", ["search.alpha=-3"])


def test_unknown_key_or_wrong_type_in_a_preset_names_the_preset(conf_copy):
    (conf_copy / "experiment" / "typo.yaml").write_text("# @package _global_\nrollouts:\n  nmc: 4\n")
    msg = compose_error("typo", [])
    assert "experiment/typo" in msg and "nmc" in msg
    (conf_copy / "experiment" / "typo.yaml").write_text("# @package _global_\nrollouts:\n  n_mc: four\n")
    msg = compose_error("typo", [])
    assert "experiment/typo" in msg and "four" in msg and "rollouts.n_mc" in msg


def test_the_stages_use_the_studys_conf_tree():
    from pavflow.stages.common import CONF_DIR
    from pavflow.study import CONF_DIR as study_conf_dir
    assert study_conf_dir == CONF_DIR and (Path(study_conf_dir) / "config.yaml").exists()


def test_resources_never_rerun_a_job(didactic):
    other = compose("didactic", ["resources.mem_mb=64000", "resources.stages.sft.runtime=999"])
    assert all_params(other) == all_params(didactic)
