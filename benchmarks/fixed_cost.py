"""A job's fixed cost: wall and CPU seconds of the `problems` stage (which does almost no work) run as
the workflow runs it, with offline W&B tracking (the default), with W&B's system monitor, machine info
and git capture off (a lever that was measured and dropped: no saving), attached to one shared
wandb-core service (`wandb beta core start`, WANDB_SERVICE) instead of starting its own (measured and
dropped: the cost is in the job's own process, importing and initialising the wandb client), and with
tracking off (the floor: Python, Hydra, polars and the stage itself).

    python benchmarks/fixed_cost.py [--repeats 3]

CPU is summed over the job's whole process tree (wandb-core included), sampled as Snakemake's
`benchmark:` does; for the shared service, its CPU while the job ran is added. Writes benchmarks/out/fixed_cost.json with the load average beside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
VARIANTS = {"default": ({}, []), "wandb_lean": ({"WANDB_X_DISABLE_STATS": "true", "WANDB_X_DISABLE_MACHINE_INFO": "true",
                                                  "WANDB_DISABLE_GIT": "true"}, []),
            "tracking_off": ({}, ["tracking=off"])}


def cpu_of(p: psutil.Process | None) -> float:
    if p is None:
        return 0.0
    t = p.cpu_times()
    return t.user + t.system


def run_job(env: dict, overrides: list[str], service: psutil.Process | None = None) -> tuple[float, float]:
    """(wall s, CPU s of the process tree, plus what `service` spent meanwhile) of one `problems` job
    in a fresh directory."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "pavflow.stages", "problems", "experiment=smoke", "threads=1",
               f"hydra.run.dir={d}/hydra", *overrides]
        t0, service_cpu = time.perf_counter(), cpu_of(service)
        proc = psutil.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})
        cpu: dict[int, float] = {}
        while proc.poll() is None:
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
        return wall, sum(cpu.values()) + cpu_of(service) - service_cpu


def start_shared_service() -> tuple[str, psutil.Process]:
    """A detached wandb-core (idle shutdown after 5 min) and its WANDB_SERVICE token."""
    out = subprocess.run([sys.executable, "-m", "wandb", "beta", "core", "start", "--idle-timeout", "5m"],
                         capture_output=True, text=True, check=True).stdout.split()[-1]
    # the token is <version>-<pid of the starter>-unix-<socket>; the socket dir names wandb-core's pid
    core_pid = int(Path(out.split("-unix-", 1)[1]).parent.name.split("-")[2])
    return out, psutil.Process(core_pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env_src = str(REPO / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [env_src, os.environ.get("PYTHONPATH")]))
    load_before = os.getloadavg()
    token, service = start_shared_service()
    variants = {**VARIANTS, "wandb_shared_core": ({"WANDB_SERVICE": token}, [])}
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    try:
        for _ in range(args.repeats):  # interleaved, so that a load change hits every variant alike
            for name, (env, overrides) in variants.items():
                runs[name].append(run_job(env, overrides, service if "WANDB_SERVICE" in env else None))
    finally:
        subprocess.run([sys.executable, "-m", "wandb", "beta", "core", "stop"], capture_output=True,
                       env={**os.environ, "WANDB_SERVICE": token})
    result = {name: {"wall_s": round(statistics.median(w for w, _ in r), 2),
                     "cpu_s": round(statistics.median(c for _, c in r), 2)} for name, r in runs.items()}
    base = result["default"]["cpu_s"]
    result["cpu_ratio_wandb_lean_vs_default"] = round(result["wandb_lean"]["cpu_s"] / base, 3)
    result["cpu_ratio_wandb_shared_core_vs_default"] = round(result["wandb_shared_core"]["cpu_s"] / base, 3)
    result["wandb_share_of_cpu"] = round(1 - result["tracking_off"]["cpu_s"] / base, 3)
    result["repeats"], result["loadavg_before"], result["loadavg_after"] = args.repeats, load_before, os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fixed_cost.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
