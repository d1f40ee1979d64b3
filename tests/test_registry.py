"""What the workflow derives from a study: stage params (rerun triggers), beam budgets, the job list."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pavflow import registry
from pavflow.config import compose, provers
from pavflow.names import Prover
from pavflow.registry import STAGES, beam_budgets, jobs, params

BUILTIN = (str, int, float, bool, type(None))


@pytest.fixture(scope="module")
def didactic():
    return compose("didactic", [])


def all_params(cfg) -> dict:
    return {(stage, tuple(sorted(job.items()))): params(stage, cfg, job) for stage in STAGES for job in jobs(stage, cfg)}


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
    assert set(STAGES) == {"problems", "sft", "seeds", "mc", "mc_fresh", "labels", "verifier", "quality",
                           "search_pool", "search_bon", "search_beam", "search_beamv", "search_prm", "search_alpha",
                           "search_val", "search_selected", "search_oracle", "search_beam_mc", "rft", "rl", "report"}
    # sft params depend on the policy trained; the untrained-policy case still gives builtins
    base, weak = (params("sft", didactic, {"policy": p}) for p in ("base", "weak"))
    assert base != weak and base["sft"]["this"] == {"max_steps": 1000, "target_val_acc": 0.45}
    assert_builtin(params("sft", didactic))


@pytest.mark.parametrize("experiment", ["didactic", "didactic_full"])
def test_adding_a_k_leaves_existing_jobs_alone(experiment):
    raised = ["rollouts.n_mc=32", "search.oracle_rollouts=32", "rl.mc_rollouts=32"]
    more = compose(experiment, ["sweep.prover_k=[1,2,4,8,16,32]", *raised])
    assert [str(p) for p in provers(more)][-3:] == ["base_k32", "weak_k4", "strong_k4"]
    # the rollout counts the new K needs are raised too: compare against the same counts without it
    before, after = all_params(compose(experiment, raised)), all_params(more)
    changed = {k for k in before if after.get(k) != before[k]}
    assert {k[0] for k in changed} == {"quality", "search_selected", "report"}  # they read every prover
    # didactic names its pav_mc arms' provers (K = 1, 4, 16); didactic_full runs one per prover
    rl = {("rl", (("arm", "pav_mc_base_k32"), ("rl_seed", s))) for s in (0, 1, 2)} if experiment == "didactic_full" else set()
    assert set(after) - set(before) == {(s, (("prover", "base_k32"),)) for s in ("labels", "search_beam", "search_val",
                                                                        "search_beam_mc")} | \
        {("search_beam", (("prover", "analytic_k32"),)), ("verifier", (("verifier", "pav_base_k32"),))} | rl


def changed_stages(cfg, overrides: list[str]) -> set[str]:
    before, after = all_params(cfg), all_params(compose("didactic", overrides))
    return {k[0] for k in before if before[k] != after.get(k)}  # a job that disappears counts as changed


def test_alpha_changes_only_the_beam_jobs_that_use_it_and_report(didactic):
    # the alpha curve leaves out search.alpha (the headline job's), and the val-chosen run reuses the
    # headline job's rows when it picks search.alpha: both depend on it. The val grid does not.
    assert changed_stages(didactic, ["search.alpha=0.5"]) == {"search_beam", "search_alpha", "search_selected",
                                                              "search_beam_mc", "report"}
    before, after = all_params(didactic), all_params(compose("didactic", ["search.alpha=0.5"]))
    assert all(before[k] != after[k] for k in before if k[0] == "search_beam")  # headline or not


def test_sweep_settings_rerun_only_their_sweeps(didactic):
    assert changed_stages(didactic, ["search.alpha_grid=[0,1,3]"]) == {"search_alpha", "search_val",
                                                                       "search_selected", "report"}
    assert changed_stages(didactic, ["search.val_problems=32"]) == {"search_val", "search_selected", "report"}
    oracle = {"search_oracle", "search_beam_mc", "report"}
    assert changed_stages(didactic, ["search.oracle=false"]) == oracle  # the oracle jobs are dropped
    assert changed_stages(didactic, ["search.oracle_rollouts=32"]) == oracle
    assert changed_stages(didactic, ["search.aggregate=min"]) == {"report"}  # every aggregation is computed
    # the val grid of the headline prover also runs alpha = 0: a change of headline prover touches it
    assert changed_stages(didactic, ["search.prover.k=8"]) >= {"search_val", "search_alpha", "search_selected"}
    assert "search_bon" not in changed_stages(didactic, ["search.prover.k=8"])


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
    other = compose("didactic", ["rollouts.n_mc=20"])
    assert params("mc", other) != params("mc", didactic)
    assert params("seeds", other) == params("seeds", didactic)
    # the seed count changes both
    more_seeds = compose("didactic", ["rollouts.n_seed=5"])  # more: the data-scaling variants need 4
    assert params("mc", more_seeds) != params("mc", didactic)
    assert params("seeds", more_seeds) != params("seeds", didactic)


def test_beam_budgets(didactic):
    assert Prover.of(didactic.search.prover) == Prover("base", 4)
    assert beam_budgets(didactic, "base_k4") == [1, 2, 4, 8, 16, 32, 64]
    for p in ("base_k1", "base_k32", "weak_k4", ""):
        assert beam_budgets(didactic, p) == [16]
    assert params("search_beam", didactic, {"prover": "base_k4"})["budgets"] == [1, 2, 4, 8, 16, 32, 64]
    assert params("search_beam", didactic, {"prover": "weak_k4"})["budgets"] == [16]
    other = compose("didactic", ["search.k_budget=8"])
    assert beam_budgets(other, "base_k2") == [8]
    assert beam_budgets(other, "base_k4") == [1, 2, 4, 8, 16, 32, 64]


def names(stage: str, cfg) -> list:
    return ["-".join(str(v) for v in j.values()) for j in jobs(stage, cfg)]


def test_the_studys_jobs(didactic):
    provers_ = ["base_k1", "base_k2", "base_k4", "base_k8", "base_k16", "weak_k4", "strong_k4"]
    analytic = [f"analytic_k{k}" for k in (1, 2, 4, 8, 16)]
    variants = ["pqv.hard", "pqv.random", "pqv.first_pit", "pqv.hard.first_pit", "pav_base_k4.first_pit", "orm.rollouts",
                "pqv.s1m4", "pqv.s1m16", "pqv.s2m8", "pqv.s4m4"]  # the pqv's data-scaling curve
    assert names("labels", didactic) == names("search_val", didactic) == provers_
    assert names("verifier", didactic) == ["orm", "pqv"] + [f"pav_{p}" for p in provers_] + \
        ["implicit_ce", "implicit_dpo"] + variants
    assert names("search_beam", didactic) == provers_ + analytic  # the K curve of trained and analytic PAVs
    assert names("search_beamv", didactic) == ["implicit_ce", "implicit_dpo"]
    assert names("search_prm", didactic) == ["pqv", "pav_base_k4", "implicit_ce", "implicit_dpo", "orm.rollouts"]
    assert names("sft", didactic) == names("mc", didactic) == names("mc_fresh", didactic) == ["base", "weak", "strong"]
    arms = ["outcome", "pav", "pav_analytic", "implicit_ce"] + [f"pav_mc_base_k{k}" for k in (1, 4, 16)]  # rl.mc_provers
    assert names("rl", didactic) == [f"{arm}-{s}" for arm in arms for s in (0, 1, 2)]  # seed bands
    assert names("search_beam_mc", didactic) == provers_
    assert names("search_oracle", didactic) == [""] and names("rft", didactic) == []
    L = registry.Layout("r")
    assert registry.io("verifier", didactic, L, {"verifier": "orm.rollouts"})[0]["continuations"] == L.continuations("base")
    assert "continuations" not in registry.io("verifier", didactic, L, {"verifier": "orm"})[0]
    quality = list(registry.io("quality", didactic, registry.Layout("r"), {})[0]["verifiers"])
    assert quality == names("verifier", didactic) + [f"pav_{a}" for a in analytic]
    smoke = compose("smoke", ["rl.seeds=[0,1]", "sweep.analytic=false", "search.oracle=false"])
    assert names("verifier", smoke) == ["orm", "pqv", "pav_base_k1", "pav_base_k4", "pav_weak_k1", "implicit_ce",
                                        "pqv.hard.first_pit", "orm.rollouts", "pqv.s1m2"]
    assert names("search_beam", smoke) == ["base_k1", "base_k4", "weak_k1"] and names("search_oracle", smoke) == []
    assert names("rl", smoke) == [f"{a}-{s}" for a in ("outcome", "pav", "pav_analytic", "implicit_ce", "pav_mc_base_k4")
                                 for s in (0, 1)]
    assert names("search_beam_mc", smoke) == []  # only with search.oracle


def test_every_input_of_a_job_is_an_output_of_another_job():
    """The registry's DAG is closed: what a job reads, some job of the study writes."""
    for cfg in (compose("didactic", []), compose("smoke", ["rl.init=rft"])):
        L = registry.Layout("r")
        written = {p for s in STAGES for j in jobs(s, cfg) for p in registry.flat(registry.io(s, cfg, L, j)[1])}
        for s in STAGES:
            for j in jobs(s, cfg):
                missing = set(registry.flat(registry.io(s, cfg, L, j)[0])) - written
                assert not missing, (s, j, missing)


def test_every_output_belongs_to_one_rule_pattern():
    """No rule's output pattern matches another rule's output (Snakemake would refuse the DAG as ambiguous,
    as it did for beam_{prover} against beam_mc_<prover>)."""
    from pavflow.names import WILDCARDS
    L = registry.Layout("r")
    for cfg in (compose("didactic", []), compose("smoke", ["rl.init=rft"])):
        patterns = {}
        for s in STAGES.values():
            for path in registry.flat(s.outputs(cfg, L, {w: "\0" + w + "\0" for w in s.wildcards})):
                parts = path.split("\0")  # literal, wildcard, literal, ...
                patterns.setdefault(s.name, []).append(re.compile("".join(
                    f"({WILDCARDS[x]})" if i % 2 else re.escape(x) for i, x in enumerate(parts))))
        for s in STAGES:
            for j in jobs(s, cfg):
                for path in registry.flat(registry.io(s, cfg, L, j)[1]):
                    owners = {o for o, ps in patterns.items() if any(p.fullmatch(path) for p in ps)}
                    assert owners == {s}, (path, owners)


def test_every_report_item_has_its_caption():
    """`snakemake --report` fails on the first report item whose caption file is missing (workflow/report/)."""
    captions = Path(__file__).resolve().parents[1] / "workflow" / "report"
    for cfg in (compose("didactic", []), compose("smoke", [])):
        for s in STAGES.values():
            for j in jobs(s.name, cfg):
                for name, path in s.outputs(cfg, registry.Layout("r"), j).items():
                    if name in s.report:
                        assert (captions / registry.caption(path)).is_file(), (s.name, name, registry.caption(path))


def test_the_data_scaling_figure_is_a_report_output_only_with_a_data_variant():
    L = registry.Layout("r")
    outputs = lambda overrides: STAGES["report"].outputs(compose("smoke", overrides), L, {})  # noqa: E731
    assert outputs([])["data_scaling"] == L.report() / "data_scaling.png"
    assert "data_scaling" not in outputs(["sweep.label_variants=[pqv.hard]"])  # nothing to draw: no missing output


def test_a_job_runs_before_every_job_that_reads_it(didactic):
    """Priorities follow the DAG: a job outranks each of its readers (Snakemake runs it first when both could run)."""
    L = registry.Layout("r")
    rank = registry.priorities(didactic, L)
    writer = {p: (s, STAGES[s].run_name(j)) for s in STAGES for j in jobs(s, didactic)
              for p in registry.flat(registry.io(s, didactic, L, j)[1])}
    for s in STAGES:
        for j in jobs(s, didactic):
            for p in registry.flat(registry.io(s, didactic, L, j)[0]):
                assert rank[writer[p]] > rank[(s, STAGES[s].run_name(j))], (writer[p], s, j)


def test_the_chains_into_the_aggregate_jobs_run_before_the_rl_arms(didactic):
    """quality and search_selected wait for a whole sweep: what they read, and they themselves, come before the
    RL arms and the beam searches nobody else reads, which fill the cores around them instead of the last
    aggregate job running alone at the end."""
    rank = registry.priorities(didactic, registry.Layout("r"))
    leaves = [rank[("rl", STAGES["rl"].run_name(j))] for j in jobs("rl", didactic)]
    leaves += [rank[("search_beam", f"search_beam-{p}")] for p in ("base_k1", "strong_k4", "analytic_k16")]
    first = [("quality", "quality"), ("search_selected", "search_selected"), ("search_val", "search_val-base_k8"),
             ("verifier", "verifier-pav_base_k16"), ("search_beam", "search_beam-base_k4")]
    assert min(rank[j] for j in first) > max(leaves)


def test_resources_never_rerun_a_job(didactic):
    other = compose("didactic", ["resources.mem_mb=64000", "resources.stages.sft.runtime=999"])
    assert all_params(other) == all_params(didactic)


# --- threads and resources -------------------------------------------------------------------------

TABLE_STAGES = {"problems", "labels", "report"}


def test_every_stage_is_classified():
    assert {s for s, st in STAGES.items() if not st.model} == TABLE_STAGES


@pytest.mark.parametrize("device, cuda", [("cuda", True), ("cuda:1", True), ("cpu", False), ("auto", False)])
def test_uses_cuda(device, cuda):
    assert registry.uses_cuda(device) is cuda


def test_cpu_experiments_ask_for_memory_and_time_only():
    for name, mem, runtime in [("didactic", 4000, 60), ("smoke", 2000, 10)]:
        cfg = compose(name, [])
        assert registry.gpus_per_job(cfg) == 0
        for stage in STAGES:
            assert registry.resources(stage, cfg) == {"mem_mb": mem, "runtime": runtime}, (name, stage)


def test_a_cuda_experiment_gives_every_model_stage_one_gpu():
    for device in ("cuda", "cuda:0"):
        cfg = compose("didactic", [f"device={device}"])
        for stage in STAGES:
            res = registry.resources(stage, cfg)
            assert res.get("gpu") == (None if stage in TABLE_STAGES else 1), (device, stage)
            assert res["mem_mb"] == 4000 and res["runtime"] == 60


def test_gpus_setting_and_per_stage_overrides():
    cfg = compose("didactic", ["resources.gpus=2", "resources.mem_mb=8000",
                               "resources.stages.sft.runtime=240", "resources.stages.rl.gpus=4",
                               "resources.stages.report.mem_mb=1000"])
    # device=auto: a GPU only because resources.gpus asks for it
    assert registry.resources("sft", cfg) == {"mem_mb": 8000, "runtime": 240, "gpu": 2}
    assert registry.resources("rl", cfg) == {"mem_mb": 8000, "runtime": 60, "gpu": 4}
    assert registry.resources("report", cfg) == {"mem_mb": 1000, "runtime": 60}
    assert registry.resources("labels", cfg) == {"mem_mb": 8000, "runtime": 60}


def test_threads_follow_the_config_on_model_stages():
    cfg = compose("smoke", ["threads=3"])
    assert {s: registry.threads(s, cfg) for s in STAGES} == {s: 1 if s in TABLE_STAGES else 3 for s in STAGES}


def test_resources_are_builtin_ints():
    cfg = compose("smoke", ["device=cuda"])
    for stage in STAGES:
        assert all(type(v) is int for v in registry.resources(stage, cfg).values()), stage


# --- code hashes from the real imports -----------------------------------------------------------

def test_the_import_graph_covers_what_each_entry_point_really_imports():
    """ast finds at least every pavflow module that importing a stage's entry module loads (run in a
    fresh interpreter), apart from the unhashed ones."""
    import json
    import subprocess
    import sys
    entries = sorted({s.entry for s in STAGES.values()})
    code = ("import importlib, json, sys\nout = {}\nfor e in %r:\n    before = set(sys.modules)\n"
            "    importlib.import_module(e)\n    out[e] = sorted(m for m in sys.modules if m.startswith('pavflow'))\n"
            "    for m in [m for m in sys.modules if m.startswith('pavflow') and m not in before]: del sys.modules[m]\n"
            "print(json.dumps(out))" % entries)
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=registry.SRC).stdout)
    for entry, modules in loaded.items():
        found = set(registry.imports(entry))
        missing = {m for m in modules if m != "pavflow"} - found - registry.UNHASHED
        missing = {m for m in missing if not any(m.startswith(u + ".") for u in registry.UNHASHED)
                   and registry._module_file(m, registry.SRC) is not None}  # namespace packages have no file
        assert not missing, (entry, missing)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    import shutil
    root = tmp_path_factory.mktemp("src")
    shutil.copytree(registry.PACKAGE_DIR, root / "pavflow", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def hashes(root) -> dict[str, str]:
    return {name: registry.code_hash(s.entry, root) for name, s in STAGES.items()}


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(package_copy):
    """Every module of the package in turn, edited in a temp copy: the stages whose hash changes are the
    stages whose entry module imports it, transitively; an unhashed module changes none."""
    base = hashes(package_copy)
    assert hashes(package_copy) == base  # stable
    for f in sorted((package_copy / "pavflow").rglob("*.py")):
        name = ".".join(f.relative_to(package_copy).with_suffix("").parts).removesuffix(".__init__")
        text = f.read_text()
        f.write_text(text + "\n# edited\n")
        try:
            changed = {s for s, h in hashes(package_copy).items() if h != base[s]}
        finally:
            f.write_text(text)
        users = {s for s, st in STAGES.items() if name in registry.imports(st.entry, package_copy)}
        assert changed == users, name
        if name in registry.UNHASHED:
            assert not changed, name


def test_the_stats_module_reruns_the_stages_after_labels_never_the_sampling_ones(package_copy):
    """The bug this replaced: the Best-of-K estimator (stats.pass_at_k) changed and labels did not rerun."""
    users = {s for s, st in STAGES.items() if "pavflow.stats" in registry.imports(st.entry, package_copy)}
    assert {"labels", "verifier", "quality", "search_beam", "rl", "report"} <= users
    assert not users & {"problems", "sft", "seeds", "mc", "mc_fresh", "search_pool", "rft"}
    labels = {s for s, st in STAGES.items() if "pavflow.labels" in registry.imports(st.entry, package_copy)}
    assert "labels" in labels and "search_pool" not in labels
    # a table-only stage does not import the model code
    model_code = ("pavflow.policy.model", "pavflow.policy.sampler", "pavflow.verifiers")
    assert not {m for m in registry.imports(STAGES["labels"].entry) if m.startswith(model_code)}


# --- one place decides a prompt --------------------------------------------------------------------

def test_every_stage_that_builds_prompts_for_a_chat_policy_sends_the_same_text(monkeypatch):
    """Every stage module builds its task with make_task(cfg.task, cfg.seed, cfg.policy); for a chat-template
    policy that wraps each prompt in the template, whatever stage asks."""
    import ast
    from pavflow.tasks import make_task
    for f in sorted((registry.PACKAGE_DIR / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "make_task":
                assert ast.unparse(node) == "make_task(cfg.task, cfg.seed, cfg.policy)", (f.name, ast.unparse(node))
    import pavflow.policy.source as source

    class Tok:
        chat_template = "x"

        def apply_chat_template(self, msgs, tokenize, add_generation_prompt):
            return f"<user>{msgs[0]['content']}</user><assistant>"
    monkeypatch.setattr(source, "source_tokenizer", lambda *a: Tok())
    monkeypatch.setattr(source, "pretrained_source", lambda cfg: ("p", None))
    # a pretrained policy (a hub id, never fetched here): preflight refuses English text for the tiny one
    cfg = compose("smoke", ["task=reasoning_gym", "task.dataset=chain_sum", "policy=hf",
                            "policy.path=HuggingFaceTB/SmolLM2-135M-Instruct"])
    assert cfg.policy.kind == "hf"
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    q = task.problems("test")[0].question
    assert task.prompt(q).startswith("<user>") and task.prompt(q).endswith("</user><assistant>")
    cfg.policy.chat_template = False
    assert not make_task(cfg.task, cfg.seed, cfg.policy).prompt(q).startswith("<user>")
