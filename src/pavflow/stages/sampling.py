"""The sampler of a trained policy for the stages that sample from a fixed policy (registry.SAMPLING:
seeds, MC pools, search pools, beam searches, the MC oracles, RFT samples; and RL's pav_mc oracle of a
fixed prover), from the policy directory the registry gives the job. The one place the generation
backend is picked: `generation.backend` local (pavflow.policy.sampler.Sampler, in this process) or
server (pavflow.policy.server.ServerSampler over an OpenAI-compatible server that serves this policy
as `generation.model`). Both return the same Samples. SFT evaluation and the RL policy itself sample a
policy that changes as it trains, so they build their own local Sampler."""
from __future__ import annotations

from pathlib import Path


def policy_sampler(cfg, policy: Path, task, name: str | None = None):
    """The sampler of policy directory `policy` on the configured backend: local on cfg.device /
    cfg.dtype, or the server's model for policy `name` (by default the job's policy: job.policy of an
    mc job, else sweep.policy; an MC oracle of another policy's prover names that policy), as
    registry.sampled_policies names them."""
    if cfg.generation.backend == "server":
        return server_sampler(cfg, policy, task, str(name or cfg.job.policy or cfg.sweep.policy))
    return local_sampler(cfg, policy, task)


def local_sampler(cfg, policy: Path, task, dtype: str | None = None):
    """Sampler of the policy in this process, on cfg.device, its weights in `dtype` (cfg.dtype)."""
    from pavflow.policy.model import load_policy
    from pavflow.policy.sampler import Sampler
    model, tok = load_policy(policy, cfg.device, dtype or cfg.dtype)
    return Sampler(model, tok, step_sep=task.step_sep, batch_size=cfg.rollouts.batch_size)


def server_sampler(cfg, policy: Path, task, name: str):
    """A ServerSampler with the policy's own tokenizer and EOS ids; fails now, naming the URL and the
    model, when the server is unreachable or serves another model."""
    from pavflow.config import served_model
    from pavflow.policy.model import load_tokenizer, policy_eos_ids
    from pavflow.policy.server import ServerSampler
    g = cfg.generation
    return ServerSampler(g.base_url, served_model(cfg, name), load_tokenizer(policy), step_sep=task.step_sep,
                         max_concurrency=g.max_concurrency, timeout_s=g.timeout_s, retries=g.retries,
                         eos_ids=policy_eos_ids(policy))
