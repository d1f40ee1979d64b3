"""One layout for every stage output, used with values by the stages and with "{wildcard}" strings
by the workflow."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pavflow.paths import Layout

# every output and the arguments that pick one instance of it
ARGS = {
    "problems": (), "policy": ("base",), "policy_log": ("base",), "seeds": (), "mc": ("base",), "mc_fresh": ("base",),
    "continuations": ("base",),
    "quality": (), "calibration": (),
    "labels": ("base_k4",), "verifier": ("pav_base_k4",), "verifier_metrics": ("pav_base_k4",),
    "verifier_log": ("pav_base_k4",), "pool": (), "search": ("beam_base_k4",), "rl": ("pav", 0),
    "rft_policy": (), "rft_log": (), "checkpoint": ("rl-pav-s0",), "report": (), "logs": (), "wandb": (),
}


def outputs() -> list[str]:
    return [n for n, f in inspect.getmembers(Layout, inspect.isfunction) if not n.startswith("_")]


def test_every_output_is_listed():
    assert sorted(outputs()) == sorted(ARGS)


@pytest.mark.parametrize("root", ["r", "results/didactic", Path("/tmp/x/results/smoke")])
def test_paths_are_under_root_and_distinct(root):
    L = Layout(root)
    paths = {name: getattr(L, name)(*args) for name, args in ARGS.items()}
    for name, p in paths.items():
        assert isinstance(p, Path), name
        assert p.is_relative_to(Path(root)) and p != Path(root), (name, p)
    assert len(set(paths.values())) == len(paths)
    # no output lies inside another's file (directories hold several outputs on purpose)
    files = [p for p in paths.values() if p.suffix == ".parquet"]
    for a in files:
        for b in files:
            assert a == b or not b.is_relative_to(a)


def test_distinct_arguments_give_distinct_paths():
    L = Layout("r")
    for name, args in ARGS.items():
        if not args:
            continue
        other = tuple(f"{a}x" if isinstance(a, str) else a + 1 for a in args)
        assert getattr(L, name)(*args) != getattr(L, name)(*other), name
    # outputs of different kinds for the same name never collide
    assert L.policy("base") != L.verifier("base")
    assert L.labels("base_k4") != L.search("base_k4")
    assert L.verifier_metrics("orm") != L.verifier_log("orm")
    assert L.rl("pav", 0) != L.rl("pav", 1) != L.rl("outcome", 0)


def test_wildcards_pass_through():
    L = Layout("r")
    assert str(L.mc("{policy}")) == "r/rollouts/mc_{policy}.parquet"
    assert str(L.policy("{policy}")) == "r/policies/{policy}/model"
    assert str(L.policy_log("{policy}")) == "r/policies/{policy}/train_log.parquet"
    assert str(L.labels("{prover}")) == "r/labels/{prover}.parquet"
    assert str(L.verifier("{verifier}")) == "r/verifiers/{verifier}/model"
    assert str(L.verifier_metrics("{verifier}")) == "r/verifiers/{verifier}/metrics.parquet"
    assert str(L.search("beam_{prover}")) == "r/search/beam_{prover}.parquet"
    assert str(L.rl("{arm}", "{seed}")) == "r/rl/{arm}_s{seed}.parquet"
    # formatting the wildcard string gives the path the stage computes from the value
    assert str(L.mc("{policy}")).format(policy="weak") == str(L.mc("weak"))
    assert str(L.rl("{arm}", "{seed}")).format(arm="pav", seed=3) == str(L.rl("pav", 3))


def test_typo_names_the_output():
    with pytest.raises(AttributeError, match="mcc"):
        Layout("r").mcc("base")
    assert Layout("r").root == Path("r")
