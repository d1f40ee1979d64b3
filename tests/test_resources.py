"""What each stage's jobs ask the scheduler for, derived from the config's `resources` and `device`."""
from __future__ import annotations

import pytest

from pavflow.resources import MODEL_STAGES, STAGES, gpus_per_job, stage_resources, stage_threads, uses_cuda
from pavflow.study import CODE, compose

TABLE_STAGES = {"problems", "labels", "report"}


def test_every_stage_of_the_dag_is_known_and_classified():
    assert set(STAGES) == set(CODE)
    assert set(STAGES) - MODEL_STAGES == TABLE_STAGES


@pytest.mark.parametrize("device, cuda", [("cuda", True), ("cuda:1", True), ("cpu", False),
                                          ("auto", False)])
def test_uses_cuda(device, cuda):
    assert uses_cuda(device) is cuda


def test_cpu_experiments_ask_for_memory_and_time_only():
    for name, mem, runtime in [("didactic", 4000, 60), ("smoke", 2000, 10)]:
        cfg = compose(name, [])
        assert gpus_per_job(cfg) == 0
        for stage in STAGES:
            assert stage_resources(cfg, stage) == {"mem_mb": mem, "runtime": runtime}, (name, stage)


def test_a_cuda_experiment_gives_every_model_stage_one_gpu():
    for device in ("cuda", "cuda:0"):
        cfg = compose("didactic", [f"device={device}"])
        for stage in STAGES:
            res = stage_resources(cfg, stage)
            assert res.get("gpu") == (1 if stage in MODEL_STAGES else None), (device, stage)
            assert res["mem_mb"] == 4000 and res["runtime"] == 60


def test_gpus_setting_and_per_stage_overrides():
    cfg = compose("didactic", ["resources.gpus=2", "resources.mem_mb=8000",
                               "resources.stages.sft.runtime=240", "resources.stages.rl.gpus=4",
                               "resources.stages.report.mem_mb=1000"])
    # device=auto: a GPU only because resources.gpus asks for it
    assert stage_resources(cfg, "sft") == {"mem_mb": 8000, "runtime": 240, "gpu": 2}
    assert stage_resources(cfg, "rl") == {"mem_mb": 8000, "runtime": 60, "gpu": 4}
    assert stage_resources(cfg, "report") == {"mem_mb": 1000, "runtime": 60}
    assert stage_resources(cfg, "labels") == {"mem_mb": 8000, "runtime": 60}


def test_threads_follow_the_config_on_model_stages():
    cfg = compose("smoke", ["threads=3"])
    assert {s: stage_threads(cfg, s) for s in STAGES} == {s: 3 if s in MODEL_STAGES else 1 for s in STAGES}


def test_an_unknown_stage_is_named():
    cfg = compose("smoke", [])
    with pytest.raises(KeyError, match="'sfft'"):
        stage_resources(cfg, "sfft")
    with pytest.raises(KeyError, match="'sfft'"):
        stage_threads(cfg, "sfft")


def test_resources_are_builtin_ints():
    cfg = compose("smoke", ["device=cuda"])
    for stage in STAGES:
        assert all(type(v) is int for v in stage_resources(cfg, stage).values()), stage
