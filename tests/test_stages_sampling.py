"""The generation backend seam (pavflow.stages.sampling, the `generation` group): which backend each
sampling stage gets, what of it reruns a job and what the scheduler is asked for; then a small study's
seeds, mc, headline beam search and MC-oracle beam search through a real `transformers serve` on
127.0.0.1 (a serve_copy of a saved tiny policy), whose tables equal the local backend's; and a killed
server failing the stage with its URL and model, the tables already written untouched, and the rerun
completing."""
import os
import shutil
import signal

import polars as pl
import pytest

from pavflow import registry
from pavflow.config import ConfigError, compose
from pavflow.paths import Layout
from pavflow.policy.sampler import Sampler
from pavflow.policy.server import (GenerationServerError, free_port, serve_copy, start_transformers_serve,
                                   stop_server, wait_healthy)

SERVER = ["generation=server", "generation.base_url=http://127.0.0.1:1"]


def test_only_the_backend_and_the_served_model_rerun_a_sampling_job():
    local, server = compose("smoke", []), compose("smoke", SERVER)
    other = compose("smoke", SERVER + ["generation.max_concurrency=1", "generation.timeout_s=5",
                                       "generation.retries=0", "generation.base_url=http://10.0.0.1:9"])
    renamed = compose("smoke", SERVER + ["generation.model='/srv/{policy}'"])
    def served(stage, job) -> list[str]:  # the fixed policies the job samples, as the server names them
        if stage == "rl":  # the policy being trained samples locally; a pav_mc arm's oracle its prover's policy
            return [f"/srv/{job['arm'].split('_')[2]}"] if job["arm"].startswith("pav_mc_") else []
        if stage == "search_beam_mc":  # Q^pi from the base policy, V^mu from the prover's (one oracle if the same)
            return list(dict.fromkeys(["/srv/base", f"/srv/{job['prover'].split('_')[0]}"]))
        return [f"/srv/{job.get('policy', 'base')}"] if stage in registry.SAMPLING else []

    seen = set()
    for stage in registry.STAGES:
        for job in registry.jobs(stage, local):
            p, want = registry.params(stage, local, job), served(stage, job)
            if not want:  # SFT evaluation, non-sampling stages and the RL policy's own samples: local, always
                assert "generation" not in p
                assert registry.params(stage, server, job) == p
                continue
            seen.add((stage, len(want)))
            assert p["generation"] == {"backend": "local"}
            assert registry.params(stage, server, job) != p
            assert registry.params(stage, other, job) == registry.params(stage, server, job)
            model = want[0] if len(want) == 1 else want
            assert registry.params(stage, renamed, job)["generation"] == {"backend": "server", "model": model}
    assert {("rl", 1), ("search_beam_mc", 1), ("search_beam_mc", 2)} <= seen  # smoke has MC oracles of both kinds


def test_server_jobs_ask_for_the_server_resource():
    local, server = compose("smoke", []), compose("smoke", SERVER)
    no_mc = compose("smoke", SERVER + ["rl.arms=[outcome,pav]"])
    for stage in registry.STAGES:
        assert registry.SERVER_RESOURCE not in registry.resources(stage, local)
        for cfg, rl in ((server, True), (no_mc, False)):  # rl: only with a pav_mc arm (its oracle samples)
            want = {registry.SERVER_RESOURCE: 1} if stage in registry.SAMPLING or (stage == "rl" and rl) else {}
            got = registry.resources(stage, cfg)
            assert {k: v for k, v in got.items() if k == registry.SERVER_RESOURCE} == want, stage


@pytest.mark.parametrize("override, key", [("generation.base_url=127.0.0.1:8000", "generation.base_url"),
                                           ("generation.model=", "generation.model"),
                                           ("generation.backend=vllm", "generation.backend"),
                                           ("generation.max_concurrency=0", "generation.max_concurrency")])
def test_bad_generation_settings_are_rejected(override, key):
    with pytest.raises(ConfigError, match=key):
        compose("smoke", ["generation=server", override])


def test_unreachable_server_fails_the_sampler_naming_url_and_model(policy_dir):
    from pavflow.stages.sampling import policy_sampler
    from pavflow.tasks import make_task
    url = f"http://127.0.0.1:{free_port()}"
    cfg = compose("smoke", ["generation=server", f"generation.base_url={url}", "generation.retries=0",
                            "job.policy=weak"])
    with pytest.raises(GenerationServerError, match="unreachable") as e:
        policy_sampler(cfg, policy_dir, make_task(cfg.task, cfg.seed, cfg.policy))
    assert url in str(e.value) and "'weak'" in str(e.value)  # an mc job's own policy, not sweep.policy
    base = compose("smoke", ["generation=server", f"generation.base_url={url}", "generation.retries=0"])
    with pytest.raises(GenerationServerError, match="'weak'"):  # an MC oracle of a weak prover names its policy
        policy_sampler(base, policy_dir, make_task(base.task, base.seed, base.policy), "weak")
    local = compose("smoke", [])
    assert isinstance(policy_sampler(local, policy_dir, make_task(local.task, local.seed, local.policy)), Sampler)


# --- a small study through a real server -------------------------------------------------------------

# greedy: where both engines must pick the same tokens (at any temperature > 0 their random streams differ,
# and this random policy has near-tied logits that even T = 0.001 samples either way)
STUDY = ["tracking=off", "task.n_train=4", "task.n_val=4", "task.n_test=4", "rl.problems_per_update=4",
         "rollouts.temperature=0", "search.temperature=0", "search.budgets=[1,2]"]
JOBS = [("seeds", "pavflow.stages.seeds", []), ("mc", "pavflow.stages.mc", ["job.policy=base"]),
        ("search_beam", "pavflow.stages.search_beam", ["job.prover=base_k4"]),
        ("search_beam_mc", "pavflow.stages.search_beam_mc", ["job.prover=base_k4"])]  # MCOracle's rollouts


def run_stage(module: str, overrides: list[str]):
    import importlib
    cfg = compose("smoke", overrides)
    importlib.import_module(module).main.call(cfg)
    return cfg


def tables(root) -> dict:
    L = Layout(root / "smoke")
    return {"seeds": pl.read_parquet(L.seeds()), "mc": pl.read_parquet(L.mc("base")),
            "search_beam": pl.read_parquet(L.search("beam_base_k4")),
            "search_beam_mc": pl.read_parquet(L.search("mcbeam_base_k4"))}


@pytest.fixture(scope="module")
def study(tmp_path_factory, random_model, tok, serve_available):
    """The problems, a saved policy (random_model: varied rows that stop on EOS, on the separator and at
    the length limit) and untrained pqv / pav heads on it, sampled locally; then a serve_copy of the
    policy served by `transformers serve`."""
    from pavflow.policy.model import save_policy
    from pavflow.verifiers.value import save_value_model, value_model_from_policy
    tmp = tmp_path_factory.mktemp("study")
    L = Layout(tmp / "local" / "smoke")
    save_policy(random_model, tok, L.policy("base"))
    port = free_port()
    served = serve_copy(L.policy("base"), tmp / "serve" / "base")
    proc = start_transformers_serve(str(served), port, tmp / "serve.log")  # starts while the rest is built
    try:
        run_stage("pavflow.stages.problems", STUDY + [f"results_dir={tmp / 'local'}"])
        for i, name in enumerate(["pqv", "pav_base_k4"]):
            save_value_model(value_model_from_policy(L.policy("base"), seed=i), tok, L.verifier(name))
        (tmp / "server").mkdir()
        shutil.copytree(L.root, tmp / "server" / "smoke")  # the same inputs
        for _, module, extra in JOBS:
            run_stage(module, STUDY + extra + [f"results_dir={tmp / 'local'}"])
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, timeout_s=600)
        yield {"tmp": tmp, "url": url, "proc": proc,
               "server": STUDY + ["generation=server", f"generation.base_url={url}", "generation.max_concurrency=1",
                                  f"generation.model='{tmp / 'serve'}/{{policy}}'", f"results_dir={tmp / 'server'}"]}
    finally:
        stop_server(proc)


def test_sampling_stages_through_transformers_serve_equal_the_local_backend(study):
    for _, module, extra in JOBS:
        run_stage(module, study["server"] + extra)
    local, server = tables(study["tmp"] / "local"), tables(study["tmp"] / "server")
    for name in local:
        assert server[name].equals(local[name]), name
    seeds = local["seeds"]
    assert seeds.height == 8 * 2 and seeds["gen_tokens"].sum() > 0  # 8 train/val problems x n_seed 2
    assert local["mc"]["gen_tokens"].sum() > 0 and local["search_beam"]["verifier_tokens"].sum() > 0
    assert local["search_beam_mc"]["verifier_tokens"].sum() > 0  # the oracle's rollouts, on the server too
    assert (seeds["gen_tokens"] < 24).any() and (seeds["gen_tokens"] == 24).any()  # EOS and length stops


def test_killed_server_fails_the_stage_naming_url_and_model_and_a_rerun_completes(study, tok):
    tmp, seeds = study["tmp"], Layout(study["tmp"] / "server" / "smoke").seeds()
    run_stage("pavflow.stages.seeds", study["server"])  # the table the killed run must leave alone
    before = seeds.read_bytes()
    os.kill(study["proc"].pid, signal.SIGKILL)
    study["proc"].wait(timeout=30)
    with pytest.raises(GenerationServerError, match="unreachable") as e:
        run_stage("pavflow.stages.seeds", study["server"] + ["generation.retries=0"])
    assert study["url"] in str(e.value) and repr(f"{tmp / 'serve'}/base") in str(e.value)
    assert seeds.read_bytes() == before
    # the rerun, on a restarted server
    port = free_port()
    proc = start_transformers_serve(str(tmp / "serve" / "base"), port, tmp / "serve2.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, timeout_s=600)
        rerun = [o for o in study["server"] if not o.startswith("generation.base_url")] + [f"generation.base_url={url}"]
        run_stage("pavflow.stages.seeds", rerun)
        assert seeds.read_bytes() != b"" and tables(tmp / "server")["seeds"].equals(tables(tmp / "local")["seeds"])
    finally:
        stop_server(proc)
