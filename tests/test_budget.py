"""Estimates of the sampling jobs' memory and tokens, and the refusal of a study over budget when the
config is composed (before any job). The estimates against measured peak RSS: benchmarks/memory.py."""
from __future__ import annotations

import pytest

from pavflow import budget
from pavflow.config import ConfigError, compose


@pytest.fixture(scope="module")
def smoke():
    return compose("smoke", [])


def refusal(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as e:
        compose("smoke", overrides)
    return str(e.value)


def test_n_mc_of_1e8_is_refused_naming_the_key_and_the_estimate():
    # it used to pass validation, and the mc job grew to 19.5 GB before the OOM killer ended it
    msg = refusal(["rollouts.n_mc=100000000"])
    assert msg.startswith("config rollouts.n_mc=100000000: a mc job would generate ~")
    assert "over budget.tokens=10000000000" in msg and "from override 'rollouts.n_mc=100000000'" in msg
    tokens = float(msg.split("~")[1].split(" ")[0])
    smoke = compose("smoke", [])
    assert tokens == pytest.approx(budget.estimate(smoke, "mc").tokens * 1e8 / smoke.rollouts.n_mc, rel=1e-2)


def test_streaming_stages_cost_tokens_not_memory_per_continuation(smoke):
    big = compose("smoke", ["rollouts.n_mc=16", "search.budgets=[1,2,4,32]", "rollouts.n_seed=4"])
    for stage in budget.SAMPLING:
        a, b = budget.estimate(smoke, stage), budget.estimate(big, stage)
        assert b.tokens > a.tokens
        assert b.terms_mb["base"] == a.terms_mb["base"] and b.terms_mb["weights"] == a.terms_mb["weights"]
    mc8 = budget.estimate(compose("smoke", [f"rollouts.n_mc={8 * smoke.rollouts.n_mc}"]), "mc")
    assert mc8.tokens == 8 * budget.estimate(smoke, "mc").tokens  # n_mc is linear in tokens ...
    assert mc8.terms_mb["prompts"] == budget.estimate(smoke, "mc").terms_mb["prompts"]  # ... and free in memory


def test_memory_over_the_budget_names_what_drives_it():
    msg = refusal(["rollouts.n_mc=100000", "rollouts.batch_size=1000000", "budget.mem_mb=2000"])
    assert msg.startswith("config rollouts.batch_size=1000000: a seeds job would need ~") or \
        msg.startswith("config rollouts.batch_size=1000000: a mc job would need ~"), msg
    assert "over budget.mem_mb: 2000 MB" in msg and "from override 'rollouts.batch_size=1000000'" in msg
    msg = refusal(["budget.mem_mb=100"])
    assert msg.startswith("config budget.mem_mb=100: budget.mem_mb, 100 MB, is below what a stage process needs")


def test_the_default_budget_is_the_machines_available_memory(monkeypatch, smoke):
    monkeypatch.setattr(budget, "available_mb", lambda: 600.0)
    with pytest.raises(ConfigError, match=r"over the machine's available memory \(budget\.mem_mb=null\): 600 MB"):
        budget.check(compose("smoke", ["rollouts.batch_size=100000", "rollouts.n_mc=4096"]), "smoke", [], budget_dir())
    monkeypatch.setattr(budget, "available_mb", lambda: 1e6)
    assert [e.stage for e in budget.check(smoke, "smoke", [], budget_dir())] == budget.stages(smoke)


def budget_dir():
    from pathlib import Path

    from pavflow.config import CONF_DIR
    return Path(CONF_DIR)


def test_the_tiny_policys_shape_is_its_parameter_count(smoke):
    from pavflow.policy.model import char_tokenizer, tiny_llama
    p = smoke.policy
    model = tiny_llama(len(char_tokenizer(p.alphabet)), p.hidden_size, p.n_layers, p.n_heads, p.intermediate_size,
                       p.max_positions, seed=0)
    shape = budget.policy_shape(p)
    assert shape.params == sum(w.numel() for w in model.parameters())
    assert (shape.layers, shape.kv_dim, shape.vocab) == (p.n_layers, p.hidden_size, model.config.vocab_size)


def test_a_saved_policys_shape_is_read_from_its_config(tmp_path, smoke, tok):
    from omegaconf import OmegaConf

    from pavflow.policy.model import save_policy, tiny_llama
    model = tiny_llama(len(tok), 48, 2, 4, 96, 128, seed=0)
    save_policy(model, tok, tmp_path)
    shape = budget.policy_shape(OmegaConf.create({"kind": "hf", "source": "path", "path": str(tmp_path), "gguf_file": ""}))
    assert shape.params == sum(w.numel() for w in model.parameters()) and (shape.layers, shape.kv_dim) == (2, 48)


def test_gguf_header_reader_agrees_with_the_gguf_package():
    from gguf import GGUFReader

    from pavflow.policy.source import smollm2_gguf
    try:
        path, name = smollm2_gguf()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    meta = budget.gguf_metadata(path / name)
    ref = GGUFReader(str(path / name))
    for key in ("llama.block_count", "llama.embedding_length", "llama.attention.head_count",
                "llama.attention.head_count_kv", "llama.feed_forward_length"):
        field = ref.fields[key]
        assert meta[key] == field.parts[field.data[0]][0], key
    assert meta["tokenizer.ggml.tokens"] == len(ref.fields["tokenizer.ggml.tokens"].data)
    shape = budget.policy_shape(compose("smollm_gsm_cpu", []).policy)
    assert shape.params == pytest.approx(sum(int(t.n_elements) for t in ref.tensors), rel=0.01)


# ------------------------------------------------------------------------------ MC-oracle jobs

def test_the_oracle_jobs_are_estimated_when_the_study_has_them(smoke):
    assert budget.stages(smoke) == [*budget.SAMPLING, "search_oracle", "search_beam_mc", "rl"]  # oracle, pav_mc arm
    assert budget.stages(compose("smoke", ["search.oracle=false", "rl.arms=[outcome,pav]"])) == list(budget.SAMPLING)
    rl = budget.estimate(smoke, "rl")
    assert rl.job == "rl pav_mc_base_k4"


def test_oracle_rollouts_are_linear_in_tokens_and_held_per_call(smoke):
    for stage, key in [("search_oracle", "search.oracle_rollouts"), ("search_beam_mc", "search.oracle_rollouts"),
                       ("rl", "rl.mc_rollouts")]:
        n = int(budget._get(smoke, key))
        a, b = budget.estimate(smoke, stage), budget.estimate(compose("smoke", [f"{key}={4 * n}"]), stage)
        assert b.prompts == a.prompts and b.copies == 4 * a.copies  # the same visited states ...
        assert b.tokens - b.other_tokens == 4 * (a.tokens - a.other_tokens), stage  # ... 4x their rollouts
        assert b.other_tokens == a.other_tokens and b.terms_mb["completions"] >= a.terms_mb["completions"]


def test_rl_pav_mc_tokens_from_the_config(smoke):
    """Every update: P x G responses, the states s_0..s_{H-1} of each (H: the reference solutions' mean
    steps) rolled out rl.mc_rollouts times; plus the evaluations."""
    import math

    from pavflow.tasks import make_task
    r = smoke.rl
    task = make_task(smoke.task, smoke.seed, smoke.policy)
    steps = [max(1, len(task.split_steps(p.solution))) for p in task.problems("train")]
    states = r.updates * math.ceil(r.problems_per_update * r.samples_per_problem * sum(steps) / len(steps))
    e = budget.estimate(smoke, "rl")
    assert e.prompts == states and e.copies == r.mc_rollouts
    evals = (1 + r.updates) * min(r.eval_problems, smoke.task.n_test) * (1 + r.eval_samples) * r.max_new_tokens
    assert e.tokens == states * r.mc_rollouts * r.max_new_tokens + \
        r.updates * r.problems_per_update * r.samples_per_problem * r.max_new_tokens + evals


def test_mc_rollouts_of_1e8_are_refused_naming_the_key_and_the_arm():
    msg = refusal(["rl.mc_rollouts=100000000"])
    assert msg.startswith("config rl.mc_rollouts=100000000: a rl pav_mc_base_k4 job would generate ~"), msg
    assert "visited states x 100000000 rollouts x up to 24 tokens, plus" in msg
    assert "from override 'rl.mc_rollouts=100000000'" in msg
    msg = refusal(["search.oracle_rollouts=100000000"])
    assert msg.startswith("config search.oracle_rollouts=100000000: a search_oracle job would generate ~"), msg
    msg = refusal(["search.oracle_rollouts=100000000", "search.budgets=[1]"])  # search_oracle's small: beam_mc's
    assert msg.startswith("config search.oracle_rollouts=100000000: a search_"), msg


def test_search_beam_mc_estimate_bounds_a_real_oracle_beam_search(smoke, random_model, tok, monkeypatch):
    """search_beam_mc as the stage runs it (a prover of another policy: two oracles), on a random-weight
    policy: the oracles roll out from no more states than estimated, and every token sampled (the beam's
    steps and the rollouts) is within the estimate."""
    from pavflow.oracle import MCOracle, effective_reward
    from pavflow.policy.sampler import Sampler
    from pavflow.search.beam import beam_search
    from pavflow.tasks import make_task
    s = smoke.search
    task = make_task(smoke.task, smoke.seed, smoke.policy)
    problems = task.problems(s.split)[:s.oracle_problems]
    answers = {task.prompt(p.question): p.answer for p in problems}
    sampled = {"tokens": 0, "oracle_states": 0}
    real = Sampler.sample

    def counting(self, prompts, n=1, **kw):
        out = real(self, prompts, n, **kw)
        sampled["tokens"] += out.gen_tokens
        sampled["oracle_states"] += 0 if kw.get("stop_at_step") else len(prompts)
        return out
    monkeypatch.setattr(Sampler, "sample", counting)
    sampler = Sampler(random_model, tok, step_sep=task.step_sep, batch_size=smoke.rollouts.batch_size)

    def oracle(seed):
        return MCOracle(sampler, task, answers, n=s.oracle_rollouts, seed=seed, temperature=smoke.rollouts.temperature,
                        max_new_tokens=s.max_new_tokens)
    q_pi, mu = oracle(0), oracle(1)
    beam_search(sampler, task, [p.question for p in problems], budget=s.k_budget, search=s,
                step_score_fn=effective_reward(q_pi, mu, 1, s.alpha), final_score_fn=q_pi.last_value(), seed=0)
    e = budget.estimate(smoke, "search_beam_mc")
    assert 0 < sampled["oracle_states"] <= e.prompts
    assert 0 < sampled["tokens"] <= e.tokens
    assert e.terms_mb["weights"] == 2 * budget.estimate(smoke, "search_oracle").terms_mb["weights"]  # two policies


def test_a_pav_mc_arms_training_memory_names_its_key():
    msg = refusal(["rl.micro_batch=100000", "rl.samples_per_problem=1000", "budget.mem_mb=800"])
    assert msg.startswith("config rl.micro_batch=100000: a rl pav_mc_base_k4 job would need ~"), msg
    assert "train " in msg and "over budget.mem_mb: 800 MB" in msg
