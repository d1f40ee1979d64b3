"""The study's verifiers, loaded for scoring from the paths the registry gives the job."""
from __future__ import annotations

from pathlib import Path

from pavflow.names import Verifier
from pavflow.policy.device import resolve_device


def load_verifier(cfg, name: str, path: Path, policy: Path):
    """Verifier `name` from its model directory `path` (the pqv's, for an analytic pav), as an object
    with `.score(prompts, steps) -> (values, tokens)` (values v(s_h), h = 0..H, in [0, 1]): a value model,
    an implicit PRM (sigmoid of q_h; `.q` gives q_h itself, with `policy` as its reference) or an analytic
    PAV (the pqv's values, transformed)."""
    from pavflow.verifiers.value import ValueVerifier
    v, device, batch = Verifier.parse(name), str(resolve_device(cfg.device)), cfg.verifier.score_batch_size
    if v.kind == "pav_analytic":
        from pavflow.verifiers.analytic import AnalyticPAV
        return AnalyticPAV(ValueVerifier.load(path, device, batch), v.prover.k)
    if v.kind == "implicit":
        from pavflow.verifiers.implicit import ImplicitVerifier
        return ImplicitVerifier.load(path, policy, device, batch)
    return ValueVerifier.load(path, device, batch)


def verifiers(cfg, paths: dict, policy: Path) -> dict:
    """Every verifier of an inputs mapping {name: path}, loaded."""
    return {name: load_verifier(cfg, name, p, policy) for name, p in paths.items()}
