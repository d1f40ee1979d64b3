"""Peak memory of the `mc` stage at 1x and 8x rollouts.n_mc (and at 1x and 4x the problems), against
pavflow.budget's estimate.

    python benchmarks/memory.py [--n-mc 1024] [--src /path/to/other/checkout/src] [--out benchmarks/out/memory.json]

Measured, not asserted. One study directory of the `smoke` experiment is built once (its problems, a
random-weight tiny policy standing in for the SFT'd base policy, and seeds); then every measurement
runs the `mc` stage as the workflow does (`python -m pavflow.stages mc ...`) in a fresh process and
reads that process's peak RSS from the kernel (wait4). `--src` runs the stages from another source tree
(e.g. main before streaming) for a before/after comparison; the tables' sha256 are recorded, so the two
runs' tables can be compared byte for byte. The load average is recorded: on a shared machine the wall
times are only indicative; the memory figures are not affected by load.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "benchmarks" / "out"

EXPERIMENT = "smoke"
WORKLOAD = ["tracking=off", "rollouts.max_new_tokens=4"]  # short continuations: memory per continuation, not compute


def stage(src: Path, name: str, overrides: list[str], root: Path, job: list[str] = ()) -> dict:
    """Run one stage in a fresh process; its exit code, wall time and peak RSS (MB)."""
    cmd = [sys.executable, "-m", "pavflow.stages", name, f"experiment={EXPERIMENT}", f"results_dir={root}",
           *WORKLOAD, *overrides, *job, f"hydra.run.dir={root}/hydra/{name}"]
    env = {**os.environ, "PYTHONPATH": str(src), "PAVFLOW_CONF": str(src.parent / "conf")}
    t0 = time.time()
    with open(root / f"{name}.log", "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(cmd)} failed ({code}); see {root / f'{name}.log'}")
    return {"wall_s": round(time.time() - t0, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def build_study(src: Path, root: Path, overrides: list[str]) -> None:
    """problems, a random-weight base policy (varied continuations, as a trained one), and seeds."""
    import torch

    from pavflow.config import compose
    from pavflow.paths import Layout
    from pavflow.policy.model import char_tokenizer, save_policy, tiny_llama
    stage(src, "problems", overrides, root)
    cfg = compose(EXPERIMENT, [f"results_dir={root}", *WORKLOAD, *overrides])
    p = cfg.policy
    tok = char_tokenizer(p.alphabet)
    model = tiny_llama(len(tok), p.hidden_size, p.n_layers, p.n_heads, p.intermediate_size, p.max_positions, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() == 2:
                w.normal_(0, 0.5, generator=g)
    save_policy(model, tok, Layout(Path(cfg.results_dir) / cfg.name).policy("base"))
    stage(src, "seeds", overrides, root)


def measure(src: Path, root: Path, overrides: list[str]) -> dict:
    from pavflow import budget
    from pavflow.config import compose
    from pavflow.data import MC, read_table
    from pavflow.paths import Layout
    cfg = compose(EXPERIMENT, [f"results_dir={root}", *WORKLOAD, *overrides])
    out = stage(src, "mc", overrides, root, ["job.policy=base"])
    L = Layout(Path(cfg.results_dir) / cfg.name)
    mc = read_table(L.mc("base"), MC)
    est = budget.estimate(cfg, "mc")
    return {"overrides": overrides, **out, "mc_sha256": hashlib.sha256(L.mc("base").read_bytes()).hexdigest(),
            "seeds_sha256": hashlib.sha256(L.seeds().read_bytes()).hexdigest(), "states": int((mc["n"] > 1).sum()),
            "continuations": int(mc.filter(mc["n"] > 1)["n"].sum()), "gen_tokens": int(mc["gen_tokens"].sum()),
            "estimate_mb": round(est.mem_mb, 1), "estimate_tokens": est.tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-mc", type=int, default=1024)
    ap.add_argument("--src", type=Path, default=REPO / "src", help="source tree the mc stage runs from")
    ap.add_argument("--out", type=Path, default=OUT / "memory.json")
    args = ap.parse_args()
    load = os.getloadavg()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides in [("problems_1x", []), ("problems_4x", ["task.n_train=48", "task.n_val=32"])]:
            root = Path(tmp) / label
            root.mkdir()
            build_study(args.src, root, overrides)
            for k in (1, 8) if label == "problems_1x" else (1,):
                runs[f"{label}_nmc_{k}x"] = r = measure(args.src, root, [*overrides, f"rollouts.n_mc={k * args.n_mc}"])
                print(f"{label} n_mc={k * args.n_mc}: peak RSS {r['peak_rss_mb']} MB (estimate {r['estimate_mb']} MB), "
                      f"{r['states']} states, {r['gen_tokens']} tokens, {r['wall_s']} s", flush=True)
            shutil.rmtree(root)
    base = runs["problems_1x_nmc_1x"]["peak_rss_mb"]
    result = {"src": str(args.src), "load_avg_start": load, "load_avg_end": os.getloadavg(), "runs": runs,
              "rss_ratio_8x_n_mc": round(runs["problems_1x_nmc_8x"]["peak_rss_mb"] / base, 3),
              "rss_ratio_4x_problems": round(runs["problems_4x_nmc_1x"]["peak_rss_mb"] / base, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
