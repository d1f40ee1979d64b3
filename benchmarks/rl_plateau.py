"""How long RL must run: the outcome arm's curve on VAL problems (never test), to size `rl.updates`.

    python benchmarks/rl_plateau.py [--results results/didactic] [--experiment didactic]
                                    [--updates 200] [--eval-every 10] [--seeds 0 1 2] [override ...]

Trains the outcome arm (`pavflow.rl.pg.train_rl`, the rl stage's loop and seeds) from the study's base
policy, evaluating on the val split instead of test, so choosing the length does not look at the
numbers the study reports. Prints the seed-mean curve and, for each horizon T on the curve, the change
over its last 20% of samples as the report's `rl_plateau` computes it (t CI over seeds). One process per
seed, two at a time. Writes benchmarks/out/rl_plateau.json with the load average beside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "benchmarks" / "out"


def curve(args, seed: int) -> dict:
    import torch

    from pavflow.config import compose
    from pavflow.policy.model import load_policy
    from pavflow.rl.pg import train_rl
    from pavflow.seeds import derive_seed
    from pavflow.stages.common import load_problems
    from pavflow.tasks import make_task
    torch.set_num_threads(1)
    cfg = compose(args.experiment, [f"rl.updates={args.updates}", f"rl.eval_every={args.eval_every}", *args.overrides])
    root = Path(args.results)
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    model, tok = load_policy(root / "policies" / cfg.sweep.policy / "model", "cpu", "float32")
    problems = root / "problems.parquet"
    train, val = load_problems(problems, ["train"]), load_problems(problems, ["val"])[:cfg.rl.eval_problems]
    t0 = time.time()
    rows = train_rl(model, tok, task, train, val, cfg.rl, seed=derive_seed(cfg.seed, "rl", seed))
    return {"seed": seed, "wall_s": round(time.time() - t0, 1), "n_val": len(val), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results/didactic")
    ap.add_argument("--experiment", default="didactic")
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    import polars as pl

    from pavflow.report.tables import rl_plateau
    load0 = os.getloadavg()
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(curve, [args] * len(args.seeds), args.seeds))
    rl = pl.DataFrame([{**r, "arm": "outcome", "seed": run["seed"]} for run in runs for r in run["rows"]])
    mean = rl.group_by("update", "samples_seen").agg(pl.col("test_acc_sampled").mean()).sort("update")
    horizons = []
    for u in mean["update"].to_list()[2:]:
        p = rl_plateau(rl.filter(pl.col("update") <= u))
        if p is not None:
            horizons.append({"updates": u, **{k: p[k] for k in ("change", "ci_low", "ci_high", "from_samples", "to_samples")}})
    for row in mean.iter_rows(named=True):
        print(f"update {row['update']:4d}  samples {row['samples_seen']:6d}  val acc (sampled, seed mean) "
              f"{100 * row['test_acc_sampled']:.1f}%")
    for h in horizons:
        print(f"T = {h['updates']:4d} updates: change over the last 20% {100 * h['change']:+.1f} "
              f"[{100 * h['ci_low']:+.1f}, {100 * h['ci_high']:+.1f}] points")
    out = {"experiment": args.experiment, "overrides": args.overrides, "split": "val", "updates": args.updates,
           "eval_every": args.eval_every, "seeds": args.seeds, "n_val": runs[0]["n_val"],
           "wall_s": {r["seed"]: r["wall_s"] for r in runs},
           "curves": {r["seed"]: [[x["update"], x["test_acc_sampled"], x["kl_ref"]] for x in r["rows"]] for r in runs},
           "seed_mean": mean.rows(), "tail_change_by_horizon": horizons,
           "loadavg_start": load0, "loadavg_end": os.getloadavg()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rl_plateau.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {OUT / 'rl_plateau.json'}")


if __name__ == "__main__":
    main()
