"""The sampler of a trained policy for the stages that sample from a fixed policy (seeds, MC pools,
search pools, beam search, the oracle, RFT), from the policy directory the registry gives the job."""
from __future__ import annotations

from pathlib import Path


def policy_sampler(cfg, policy: Path, task):
    """The sampler of a trained policy, on the configured device and dtype."""
    from pavflow.policy.model import load_policy
    from pavflow.policy.sampler import Sampler
    model, tok = load_policy(policy, cfg.device, cfg.dtype)
    return Sampler(model, tok, step_sep=task.step_sep, batch_size=cfg.rollouts.batch_size)
