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
    assert tokens == pytest.approx(budget.estimate(compose("smoke", []), "mc").tokens * 5e7, rel=1e-2)


def test_streaming_stages_cost_tokens_not_memory_per_continuation(smoke):
    big = compose("smoke", ["rollouts.n_mc=16", "search.budgets=[1,2,4,32]", "rollouts.n_seed=4"])
    for stage in budget.SAMPLING:
        a, b = budget.estimate(smoke, stage), budget.estimate(big, stage)
        assert b.tokens > a.tokens
        assert b.terms_mb["base"] == a.terms_mb["base"] and b.terms_mb["weights"] == a.terms_mb["weights"]
    mc8 = budget.estimate(compose("smoke", ["rollouts.n_mc=16"]), "mc")
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
    assert [e.stage for e in budget.check(smoke, "smoke", [], budget_dir())] == list(budget.SAMPLING)


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
