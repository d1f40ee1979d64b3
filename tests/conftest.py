import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from pavflow.policy.model import char_tokenizer

ALPHABET = "0123456789+-*=\nQA:"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny models: thread start-up and contention on a busy 2-core machine cost more than they save
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer(ALPHABET)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, tok):
    """A saved tiny untrained Llama policy (1 layer) on the arith alphabet."""
    from pavflow.policy.model import save_policy, tiny_llama
    path = tmp_path_factory.mktemp("policy")
    save_policy(tiny_llama(len(tok), 32, 1, 2, 64, 128, seed=0), tok, path)
    return path


@pytest.fixture(scope="module")
def random_model(tok):
    """A tiny untrained Llama with large random weights: a fresh init (std 0.02) greedily repeats one
    token, while std 0.5 gives varied, prompt-dependent continuations and an occasional EOS, so rows
    of a batch stop at different times."""
    from pavflow.policy.model import tiny_llama
    m = tiny_llama(len(tok), 32, 2, 2, 64, 128, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5, generator=g)
    return m


@pytest.fixture(scope="session")
def serve_available():
    """Skip a test that starts `transformers serve` when it cannot run here; in CI, which installs it
    with the test extra, fail instead."""
    from transformers.utils.import_utils import is_serve_available
    if not is_serve_available():
        why = "transformers serve is not importable (pip install 'transformers[serving]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI installs it with the test extra")
        pytest.skip(why)


REPO = Path(__file__).resolve().parents[1]


# timeouts below only stop a hung run; a loaded machine (a smoke study took > 15 min at load 8) must not fail
def run_snakemake(workdir: Path, *args: str, overrides=(), experiment: str = "smoke", timeout: int = 2400,
                  env=None, config=()):
    """`snakemake` on the repo's Snakefile in `workdir` (a fresh directory per study run); `config` holds
    further `--config` entries (key=value)."""
    # targets before --config: Snakemake reads every word after --config up to the next option as a key=value
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args,
           "--config", f"experiment={experiment}", f"overrides={list(overrides)!r}", *config]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def job_stats(text: str) -> Counter:
    """Jobs by rule from the "Job stats" table Snakemake prints (empty when nothing is to be done)."""
    if "Job stats:" not in text:
        return Counter()
    table = text.split("Job stats:")[1].split("total")[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)})


@pytest.fixture(scope="session")
def smoke_local(tmp_path_factory):
    """The smoke experiment run locally once per session (tests/test_dag.py checks it; tests/test_slurm.py
    compares a Slurm run's tables with it): (workdir, composed config, Layout)."""
    from pavflow.config import compose
    from pavflow.paths import Layout
    workdir = tmp_path_factory.mktemp("smoke")
    out = run_snakemake(workdir, "--cores", "2")
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    cfg = compose("smoke", [])
    return workdir, cfg, Layout(workdir / cfg.results_dir / cfg.name)


class Killed(Exception):
    """Raised by a training callback to simulate a job killed at that point."""


def die_when(pred):
    """A training callback (on_log / on_eval) that 'kills' the run at the first row where pred(row)."""
    def callback(row):
        if pred(row):
            raise Killed
    return callback


def study_jobs(cfg) -> dict:
    """The study's job names by kind, from the registry (what the DAG tests iterate over)."""
    from pavflow import registry
    from pavflow.paths import Layout

    def of(stage, key):
        return [str(j[key]) for j in registry.jobs(stage, cfg)]
    beam = of("search_beam", "prover")
    return {"policies": of("sft", "policy"), "rollout_policies": of("mc", "policy"), "provers": of("labels", "prover"),
            "beam_provers": beam, "analytic_provers": [p for p in beam if p.startswith("analytic_")],
            "verifiers": of("verifier", "verifier"), "beam_verifiers": of("search_beamv", "verifier"),
            "prm_verifiers": of("search_prm", "verifier"),
            "quality_verifiers": list(registry.io("quality", cfg, Layout("."), {})[0]["verifiers"]),
            "rl_runs": [(j["arm"], j["rl_seed"]) for j in registry.jobs("rl", cfg)]}
