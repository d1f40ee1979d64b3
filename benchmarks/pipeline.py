"""Wall time of the default study from scratch, and of adding one prover K to the finished study.

    python benchmarks/pipeline.py [--experiment didactic] [--add-k 12 | --add-k 0] [--cores 2]

Runs Snakemake in a fresh working directory (benchmarks/out/work-<experiment>) and writes
benchmarks/out/pipeline.json (pipeline_<experiment>.json for another experiment): <experiment>_wall_s, add_k_wall_s, the jobs each run ran, per-stage job
counts and wall and CPU sums from the rules' `benchmark:` files, a job's fixed cost (the CPU of the
`problems` job and the mean of the `labels` jobs, which do almost no work), the load average sampled
during each run (a noisy run shows there), and the study's headline numbers.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def snakemake(workdir: Path, experiment: str, overrides: list[str], cores: int) -> tuple[float, dict]:
    """(wall seconds, load average over the run: mean and max of the 1-min figure sampled every 10 s)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", str(cores), "--config", f"experiment={experiment}", f"overrides={overrides!r}"]
    loads, done = [os.getloadavg()[0]], threading.Event()

    def sample() -> None:
        while not done.wait(10):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return wall, {"loadavg_1m_mean": round(sum(loads) / len(loads), 2), "loadavg_1m_max": round(max(loads), 2),
                  "samples": len(loads)}


def stage_costs(bench_dir: Path, since: float = 0.0) -> dict[str, dict]:
    """Per rule: number of jobs, summed wall and CPU seconds, and each job's CPU seconds, from the
    benchmark TSVs written after `since`."""
    out: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "job_cpu_s": []})
    for f in sorted(bench_dir.rglob("*.tsv")):
        if f.stat().st_mtime < since:
            continue
        with f.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        r = out[f.parent.name]
        r["jobs"] += 1
        r["wall_s"] = round(r["wall_s"] + float(row["s"]), 2)
        r["cpu_s"] = round(r["cpu_s"] + float(row["cpu_time"]), 2)
        r["job_cpu_s"].append(round(float(row["cpu_time"]), 2))
    return dict(out)


def fixed_cost(stages: dict[str, dict]) -> dict:
    """CPU seconds of the jobs that do almost no work: start-up and tracking, per stage kind."""
    labels = stages.get("labels", {}).get("job_cpu_s", [])
    return {"problems_cpu_s": stages.get("problems", {}).get("cpu_s"),
            "labels_mean_cpu_s": round(sum(labels) / len(labels), 2) if labels else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="didactic")
    ap.add_argument("--add-k", type=int, default=12)  # <= rollouts.n_mc: adding it reuses every rollout; 0: skip
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

    load_before = os.getloadavg()
    wall, load = snakemake(work, args.experiment, [], args.cores)
    before = stage_costs(root / "benchmarks")
    result = {
        f"{args.experiment}_wall_s": round(wall, 1), "jobs": sum(r["jobs"] for r in before.values()),
        "cpu_s": round(sum(r["cpu_s"] for r in before.values()), 1), "fixed_cost": fixed_cost(before),
        "loadavg_before": [round(x, 2) for x in load_before], "load": load,
        "stages": before, "cores": args.cores, "nproc": os.cpu_count(),
        "headline": json.loads((root / "report" / "headline.json").read_text()),
    }
    if args.add_k:
        add = [f"sweep.prover_k=[{','.join(map(str, ks + [args.add_k]))}]"]
        t_add = time.time()
        add_wall, add_load = snakemake(work, args.experiment, add, args.cores)
        rerun = stage_costs(root / "benchmarks", since=t_add)
        result |= {"add_k_wall_s": round(add_wall, 1), "add_k": args.add_k, "add_k_override": add[0],
                   "add_k_jobs": sum(r["jobs"] for r in rerun.values()), "add_k_load": add_load,
                   "add_k_stages": rerun}
    OUT.mkdir(parents=True, exist_ok=True)
    name = "pipeline.json" if args.experiment == "didactic" else f"pipeline_{args.experiment}.json"
    (OUT / name).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "headline"}, indent=2))


if __name__ == "__main__":
    main()
