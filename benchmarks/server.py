"""MC-workload generation throughput through an inference server (`pavflow.policy.server.ServerSampler`)
against the local `pavflow.policy.sampler.Sampler`, in one run.

    python benchmarks/server.py --policy results/smoke/policies/base/model [--quick]
    python benchmarks/server.py --policy DIR --base-url http://HOST:PORT --model NAME   # a running server

Without --base-url the script starts `transformers serve` on a `serve_copy` of the policy (127.0.0.1, a
free port, --server-threads torch threads, fp32 on CPU) and stops it at the end. One torch thread each
by default: client and server share the machine, and two OpenMP threads per process on 2 cores make
both spin on each other. Measured, not
asserted; writes benchmarks/out/server.json (also printed).

Workload, as `pavflow.rollouts.mc_pool` builds it: the local sampler draws one seed response (T=1, 64
tokens) to each of `seed_problems` train problems; every step prefix s_0..s_{H-1} of every seed
(task.split_steps / task.prefix) gets n_mc continuations, T=1, max_new_tokens 64, the same call seed
on both engines. tokens/s = Samples.gen_tokens / wall seconds of the whole `sample` call (for the
server: requests, server-side prefill and decode, parsing). The local figure is the best of `reps`
runs; the server runs once per max_concurrency in `concurrency`. `ratio` = best server tokens/s /
local tokens/s. Load averages are taken at the start and the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def run(sampler, prefixes: list[str], W: dict, **kw) -> dict:
    t0 = time.perf_counter()
    out = sampler.sample(prefixes, W["n_mc"], seed=W["seed"], temperature=W["temperature"],
                         max_new_tokens=W["max_new_tokens"])
    wall = time.perf_counter() - t0
    finish = {}
    for cs in out.completions:
        for c in cs:
            finish[c.finish] = finish.get(c.finish, 0) + 1
    return {"wall_s": round(wall, 3), "gen_tokens": out.gen_tokens, "tokens_per_s": round(out.gen_tokens / wall, 1),
            "mean_gen_tokens": round(out.gen_tokens / (len(prefixes) * W["n_mc"]), 2),
            "prompt_tokens": sum(out.prompt_tokens), "finish": finish, **kw}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="results/smoke/policies/base/model")
    ap.add_argument("--experiment", default="smoke", help="the study whose task the policy solves")
    ap.add_argument("--base-url", help="a running OpenAI-compatible server (default: start transformers serve)")
    ap.add_argument("--model", help="the served model name (with --base-url)")
    ap.add_argument("--concurrency", default="1,4", help="max_concurrency values to run the server at")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the local sampler")
    ap.add_argument("--server-threads", type=int, default=1, help="torch threads of the started server")
    ap.add_argument("--quick", action="store_true", help="small workload, for a smoke check")
    ap.add_argument("--out", default=str(OUT / "server.json"))
    args = ap.parse_args()

    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    from pavflow.policy.model import load_policy
    from pavflow.policy.sampler import Sampler
    from pavflow.policy.server import (ServerSampler, free_port, serve_copy, start_transformers_serve,
                                       stop_server, wait_healthy)
    from pavflow.config import compose
    from pavflow.tasks import make_task

    q = args.quick
    W = {"seed_problems": 8 if q else 32, "n_mc": 4 if q else 8, "max_new_tokens": 64, "temperature": 1.0,
         "seed": 0, "local_batch_size": 512, "reps": 1 if q else 3,
         "concurrency": [int(c) for c in args.concurrency.split(",")]}
    res: dict = {"quick": q, "torch": torch.__version__, "transformers": transformers.__version__,
                 "python": platform.python_version(), "local_threads": torch.get_num_threads(),
                 "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "workload": W}
    policy = Path(args.policy)
    if not policy.is_absolute() and not policy.exists():
        policy = REPO / policy
    model, tok = load_policy(policy)
    cfg = compose(args.experiment, [])
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    local = Sampler(model, tok, step_sep=task.step_sep, batch_size=W["local_batch_size"])
    res["policy"] = str(policy)

    problems = task.problems("train")[:W["seed_problems"]]
    seeds = local.sample([task.prompt(p.question) for p in problems], 1, seed=1, temperature=1.0,
                         max_new_tokens=64)
    prefixes = []
    for p, cs in zip(problems, seeds.completions):
        steps = task.split_steps(cs[0].text)
        prefixes += [task.prefix(p.question, steps, h) for h in range(max(1, len(steps)))]
    W |= {"prefixes": len(prefixes), "rows": len(prefixes) * W["n_mc"],
          "mean_prefix_tokens": round(sum(map(len, local.encode(prefixes))) / len(prefixes), 2)}

    proc, tmp = None, tempfile.TemporaryDirectory()
    try:
        if args.base_url:
            url, name = args.base_url, args.model
        else:
            port = free_port()
            url, name = f"http://127.0.0.1:{port}", str(serve_copy(policy, Path(tmp.name) / "policy"))
            t0 = time.perf_counter()
            proc = start_transformers_serve(name, port, Path(tmp.name) / "serve.log", threads=args.server_threads)
            wait_healthy(url, proc, timeout_s=300)
            res["server_start_s"] = round(time.perf_counter() - t0, 1)
            res["server_threads"] = args.server_threads
        res["base_url"], res["served_model"] = url, name
        run(local, prefixes[:8], W | {"n_mc": 2})  # warm-up
        res["local_runs"] = [run(local, prefixes, W) for _ in range(W["reps"])]
        res["server_runs"] = []
        for c in W["concurrency"]:
            remote = ServerSampler(url, name, tok, step_sep=task.step_sep, max_concurrency=c, timeout_s=600)
            res["server_kind"] = remote.kind
            run(remote, prefixes[:2], W | {"n_mc": 2})  # warm-up
            res["server_runs"].append(run(remote, prefixes, W, max_concurrency=c))
            print(f"server max_concurrency={c}: {res['server_runs'][-1]['tokens_per_s']} tok/s", flush=True)
    finally:
        if proc is not None:
            stop_server(proc, timeout_s=30)
        tmp.cleanup()
    best_local = max(r["tokens_per_s"] for r in res["local_runs"])
    best_server = max(r["tokens_per_s"] for r in res["server_runs"])
    res |= {"local_tokens_per_s": best_local, "server_tokens_per_s": best_server,
            "ratio": round(best_server / best_local, 5), "load_avg_end": os.getloadavg()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
