"""The rft stage on a real (smoke) study directory: it fine-tunes the base policy on its correct
samples and saves a loadable policy and its log. The smoke base policy solves nothing, so its
samples are replaced by reference solutions marked correct."""
import polars as pl
import pytest
import torch

import pavflow.stages.rft as rft
from pavflow.data import TRAIN_LOG, read_table
from pavflow.paths import Layout
from pavflow.policy.model import load_policy
from pavflow.rollouts import correct_pairs
from pavflow.stages import problems, sft
from pavflow.config import compose


def test_correct_pairs_keeps_distinct_correct_responses_in_order():
    samples = pl.DataFrame({"problem_id": ["a", "a", "a", "b", "b"], "response": ["x", "y", "x", "z", "w"],
                            "correct": [1, 0, 1, 0, 1]})
    assert correct_pairs(samples, {"a": "Q:a\n", "b": "Q:b\n"}) == [("Q:a\n", "x"), ("Q:b\n", "w")]
    assert correct_pairs(samples.filter(pl.col("correct") == 0), {"a": "", "b": ""}) == []


@pytest.fixture()
def study(tmp_path):
    cfg = compose("smoke", [f"results_dir={tmp_path}", "tracking=off", "rl.init=rft", "rl.rft.steps=6"])
    problems.main.call(cfg)
    cfg.job.policy = "base"
    sft.main.call(cfg)
    return cfg, Layout(tmp_path / cfg.name)


def test_rft_fine_tunes_the_base_policy_on_correct_samples(study, monkeypatch):
    cfg, L = study
    seen = {}

    def reference_solutions(sampler, task, problems, **kw):  # as if every sample were correct
        seen["n"] = kw["n"]
        return pl.DataFrame({"problem_id": [p.problem_id for p in problems],
                             "response": [p.solution for p in problems], "correct": [1] * len(problems)},
                            schema_overrides={"correct": pl.Int8})
    monkeypatch.setattr(rft, "sample_responses", reference_solutions)
    summary = rft.main.call(cfg)
    assert seen["n"] == cfg.rl.rft.samples_per_problem
    assert summary["n_pairs"] == cfg.task.n_train
    log = read_table(L.rft_log(), TRAIN_LOG)
    assert log["step"].to_list() == [cfg.rl.rft.steps] and log["model"][0] == "base_rft"
    tuned, _ = load_policy(L.rft_policy())
    base, _ = load_policy(L.policy("base"))
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), base.parameters()))


def test_rft_with_no_correct_sample_says_what_to_do(study):
    cfg, L = study  # the smoke base policy solves no train problem
    with pytest.raises(RuntimeError, match="rl.init=base"):
        rft.main.call(cfg)
    assert not L.rft_policy().exists()
