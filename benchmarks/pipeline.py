"""Wall time of the default study from scratch, and of adding one prover K to the finished study.

    python benchmarks/pipeline.py [--experiment didactic] [--add-k 12] [--cores 2]

Runs Snakemake in a fresh working directory (benchmarks/out/work-<experiment>) and writes
benchmarks/out/pipeline.json: <experiment>_wall_s, add_k_wall_s, the jobs the K addition ran, per-stage
wall times summed from the rules' `benchmark:` files, and the study's headline numbers.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def snakemake(workdir: Path, experiment: str, overrides: list[str], cores: int) -> float:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", str(cores), "--config", f"experiment={experiment}", f"overrides={overrides!r}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def stage_walls(bench_dir: Path, since: float = 0.0) -> dict[str, dict]:
    """Per rule: number of jobs and summed wall seconds, from the benchmark TSVs written after `since`."""
    out: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0})
    for f in sorted(bench_dir.rglob("*.tsv")):
        if f.stat().st_mtime < since:
            continue
        rule = f.parent.name
        with f.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        out[rule]["jobs"] += 1
        out[rule]["wall_s"] = round(out[rule]["wall_s"] + float(row["s"]), 2)
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="didactic")
    ap.add_argument("--add-k", type=int, default=12)  # <= rollouts.n_mc: adding it reuses every rollout
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from pavflow.config import compose

    cfg = compose(args.experiment, [])
    ks = list(cfg.sweep.prover_k)
    if args.add_k in ks:
        raise SystemExit(f"--add-k {args.add_k} is already in sweep.prover_k={ks}")
    work = OUT / f"work-{args.experiment}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / cfg.results_dir / cfg.name

    wall = snakemake(work, args.experiment, [], args.cores)
    before = stage_walls(root / "benchmarks")
    add = [f"sweep.prover_k=[{','.join(map(str, ks + [args.add_k]))}]"]
    t_add = time.time()
    add_wall = snakemake(work, args.experiment, add, args.cores)
    rerun = stage_walls(root / "benchmarks", since=t_add)
    result = {
        f"{args.experiment}_wall_s": round(wall, 1), "add_k_wall_s": round(add_wall, 1),
        "add_k": args.add_k, "add_k_override": add[0],
        "add_k_stage_wall_s": rerun,
        "stage_wall_s": before, "cores": args.cores,
        "headline": json.loads((root / "report" / "headline.json").read_text()),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pipeline.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "headline"}, indent=2))


if __name__ == "__main__":
    main()
