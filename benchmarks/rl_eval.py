"""The RL curve's evaluation point, before and after reading log pi off the sampler's logits.

    python benchmarks/rl_eval.py [--policy results/didactic/policies/base/model] [--reps 3]

`pavflow.rl.pg.evaluate` samples the test problems (greedy, and rl.eval_samples at T=1) and
estimates KL(pi || pi_ref) on the samples. It used to run two teacher-forced forward passes over
them (`response_log_ratios`: the policy and its reference); now the sampler returns log pi with the
samples and only the reference runs a forward pass. One process times both ways on the didactic
config's eval (rl.eval_problems test problems x rl.eval_samples), alternating them `reps` times and
keeping the fastest of each, with the policy moved off its reference by a little noise (an RL policy
mid-run). Writes benchmarks/out/rl_eval.json with the load average beside the figures.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "benchmarks" / "out"

from pavflow.config import RLConfig, compose  # noqa: E402
from pavflow.policy.model import load_policy  # noqa: E402
from pavflow.policy.sampler import Sampler  # noqa: E402
from pavflow.rl.pg import evaluate, kl_k3, response_log_ratios  # noqa: E402
from pavflow.seeds import derive_seed  # noqa: E402
from pavflow.tasks import make_task  # noqa: E402


def two_forward_eval(sampler, task, problems, cfg: RLConfig, seed: int, ref) -> float:
    """The evaluation as it was: the same samples, then log pi and log pi_ref from two forward passes."""
    prompts = [task.prompt(p.question) for p in problems]
    sampler.sample(prompts, 1, seed=derive_seed(seed, "eval-greedy", 0), temperature=0.0,
                   max_new_tokens=cfg.max_new_tokens)
    outs = sampler.sample(prompts, cfg.eval_samples, seed=derive_seed(seed, "eval-sampled", 0), temperature=1.0,
                          max_new_tokens=cfg.max_new_tokens)
    ids = sampler.encode(prompts)
    comps = [(ids[i], c.tokens) for i, cs in enumerate(outs.completions) for c in cs]
    ratios = response_log_ratios(sampler.model, ref, [p for p, _ in comps], [g for _, g in comps],
                                 sampler.pad_id, cfg.micro_batch)
    return float(np.mean([kl_k3(r) for r in ratios]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="results/didactic/policies/base/model")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)  # as the rl jobs run (threads: 1)
    cfg = compose("didactic", [])
    r: RLConfig = cfg.rl  # the schema section is the RLConfig
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = task.problems("test")[:r.eval_problems]
    ref, tok = load_policy(args.policy, "cpu", "float32")
    model = copy.deepcopy(ref)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.02 * p.std() * torch.randn(p.shape, generator=g))
    sampler = Sampler(model, tok, step_sep=task.step_sep)
    load_start = os.getloadavg()
    runs: dict[str, list[float]] = {"two_forward": [], "sampler_logprobs": []}
    kl = {}
    for _ in range(args.reps):
        t = time.perf_counter()
        kl["two_forward"] = two_forward_eval(sampler, task, problems, r, 0, ref)
        runs["two_forward"].append(time.perf_counter() - t)
        t = time.perf_counter()
        kl["sampler_logprobs"] = evaluate(sampler, task, problems, r, 0, ref)[0]["kl_ref"]
        runs["sampler_logprobs"].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in runs.items()}
    result = {"eval_problems": len(problems), "eval_samples": r.eval_samples, "evals_per_rl_job": 1 + r.updates // r.eval_every,
              "seconds_per_eval": {k: round(v, 2) for k, v in best.items()},
              "runs": {k: [round(x, 2) for x in v] for k, v in runs.items()},
              "ratio_new_vs_old": round(best["sampler_logprobs"] / best["two_forward"], 3),
              "kl_ref": kl, "kl_ref_abs_diff": abs(kl["two_forward"] - kl["sampler_logprobs"]),
              "threads": torch.get_num_threads(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rl_eval.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
