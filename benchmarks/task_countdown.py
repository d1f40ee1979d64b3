"""What the `countdown` task offers a PAV study: is it learnable by the tiny policy on a CPU, and is
there room for a prover to matter? Measured with pavflow's own pieces, not asserted.

    PYTHONPATH=src python benchmarks/task_countdown.py [--quick]

Writes benchmarks/out/task_countdown.json (also printed). One torch thread throughout.

* sft      - the default tiny Llama (hidden 128, 3 layers, 4 heads, intermediate 384) trained by
             `policy.sft.train_sft` with the pipeline's SFT settings (batch 128, lr 3e-3, warmup 20,
             max_steps 1000, sampled T=1 accuracy on 128 val problems x 4 every 25 steps) until 80%.
             One run gives the three policies: snapshots at the first evaluation reaching 15% (weak),
             45% (base) and 80% (strong); the pipeline trains them separately, but a run stopped at a
             lower target follows the same trajectory (the schedule depends on max_steps only).
             cpu_s is process CPU time, evaluations included, the greedy checks excluded.
* states   - base-policy responses (T=1) on test problems; every state s_h gets n_mc base rollouts.
             The task decides what the MC cannot: whether a state is alive (goal reachable), and what
             each step is (legal and alive, legal but a dead end, a slip, an answer line).
* children - at sampled alive states with >= 2 legal next steps, every legal next step (the task
             enumerates them) is a child; parents and children get n_mc rollouts from weak, base, and
             base again (a fresh pool: the MC noise floor) and strong. Advantages A = V(child) -
             V(parent), V^{BoK_K(rho)} from the counts by `labels.bok_value`, compared per parent with
             A^pi: Spearman over children, the fraction of children whose advantage sign is opposite,
             and whether the best child agrees.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from pavflow.labels import bok_value
from pavflow.policy.model import char_tokenizer, tiny_llama
from pavflow.policy.sampler import Sampler
from pavflow.policy.sft import train_sft
from pavflow.tasks.countdown import Countdown, CountdownSpec, is_alive, legal_steps
from pavflow.train import TrainHooks
from pavflow.verifiers.metrics import spearman

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "out"
ALPHABET = "0123456789+-*=\nQA:"  # conf/policy/tiny.yaml
TARGETS = {"weak": 0.15, "base": 0.45, "strong": 0.80}
KS = (1, 4, 16)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------------------------ SFT

def accuracy(sampler, task, problems, n: int, temperature: float, seed: int) -> float:
    out = sampler.sample([task.prompt(p.question) for p in problems], n, seed=seed, temperature=temperature,
                         max_new_tokens=64)
    return float(np.mean([task.grade(c.text, p.answer) for p, cs in zip(problems, out.completions) for c in cs]))


def train(task, val, max_steps: int):
    tok = char_tokenizer(ALPHABET)
    model = tiny_llama(len(tok), 128, 3, 4, 384, 128, seed=0)
    sampler = Sampler(model, tok, batch_size=512)
    rows, snaps, cpu0, wall0, excluded = [], {}, time.process_time(), time.time(), [0.0]

    def on_log(r):
        r = r | {"cpu_s": round(time.process_time() - cpu0 - excluded[0], 1), "wall_s": round(time.time() - wall0, 1),
                 "load1": load1()}
        rows.append(r)
        print(f"sft step {r['step']:4d} loss {r['loss']:.3f} val sampled acc {r['val_acc']:.3f} "
              f"cpu {r['cpu_s']:.0f}s load {r['load1']}", flush=True)
        for name, target in TARGETS.items():
            if name not in snaps and r["val_acc"] >= target:
                t = time.process_time()
                snaps[name] = {"state": copy.deepcopy(model.state_dict()), "step": r["step"], "cpu_s": r["cpu_s"],
                               "wall_s": r["wall_s"], "load1": r["load1"], "val_sampled_acc": r["val_acc"],
                               "val_greedy_acc": accuracy(sampler, task, val, 1, 0.0, 0)}
                excluded[0] += time.process_time() - t

    train_sft(model, tok, task.sample_train, max_steps=max_steps, batch_size=128, lr=3e-3, warmup=20, seed=0,
              eval_every=25, evaluate=lambda: accuracy(sampler, task, val, 4, 1.0, 1),
              target_acc=TARGETS["strong"], hooks=TrainHooks(on_log=on_log))
    if "strong" not in snaps:  # plateau: the last model stands in for the strong policy
        last = rows[-1]
        snaps["strong"] = {"state": copy.deepcopy(model.state_dict()), "step": last["step"], "cpu_s": last["cpu_s"],
                           "wall_s": last["wall_s"], "load1": last["load1"], "val_sampled_acc": last["val_acc"],
                           "val_greedy_acc": accuracy(sampler, task, val, 1, 0.0, 0), "plateau": True}
    policies = {}
    for name, s in snaps.items():
        m = tiny_llama(len(tok), 128, 3, 4, 384, 128, seed=0)
        m.load_state_dict(s.pop("state"))
        policies[name] = Sampler(m.eval(), tok, batch_size=512)
    return policies, rows, snaps


# ------------------------------------------------------------------------------------------ MC

def mc_counts(sampler, task, states: list[tuple[str, str]], n: int, seed: int) -> np.ndarray:
    """c out of n rollouts correct from each state (question, text of the steps so far)."""
    out = sampler.sample([task.prompt(q) + done for q, done in states], n, seed=seed, temperature=1.0,
                         max_new_tokens=64)
    return np.array([sum(task.grade(done + c.text, q) for c in cs) for (q, done), cs in zip(states, out.completions)])


def v_hist(v: np.ndarray) -> dict:
    bins = ("0", "(0,.25]", "(.25,.5]", "(.5,.75]", "(.75,1)", "1")
    idx = np.select([v == 0, v <= .25, v <= .5, v <= .75, v < 1], range(5), 5)
    return {b: round(float(np.mean(idx == i)), 4) for i, b in enumerate(bins)}


def step_kind(task, q: str, lines: list[str], step: str) -> str:
    """What step `step` is after the legal step lines `lines` of an alive state."""
    if not step.endswith(task.step_sep):
        return "answer_ok" if task.grade("".join(s + "\n" for s in lines) + step, q) else "answer_bad"
    line = step[:-1]
    if line not in legal_steps(q, lines):
        return "slip"
    return "legal_alive" if is_alive(q, lines + [line]) else "legal_dead"


def states_report(task, base, problems, n_seed: int, n_mc: int) -> tuple[dict, list]:
    out = base.sample([task.prompt(p.question) for p in problems], n_seed, seed=11, temperature=1.0,
                      max_new_tokens=64)
    kinds, first_fail, visited = {}, {}, {}  # visited: (q, done) -> lines (alive states only)
    n_resp = n_ok = 0
    for p, cs in zip(problems, out.completions):
        for c in cs:
            n_resp += 1
            n_ok += task.grade(c.text, p.answer)
            steps, failed = task.split_steps(c.text), False
            for h, step in enumerate(steps):
                lines = [s[:-1] for s in steps[:h]]
                if not task.solvable(p.question, steps[:h]):
                    break
                visited[(p.question, "".join(steps[:h]))] = lines
                k = step_kind(task, p.question, lines, step)
                kinds[k] = kinds.get(k, 0) + 1
                if k in ("slip", "legal_dead", "answer_bad") and not failed:
                    first_fail[k], failed = first_fail.get(k, 0) + 1, True
            if not steps or (not failed and not task.grade(c.text, p.answer)):  # ran out of tokens alive
                first_fail["unfinished"] = first_fail.get("unfinished", 0) + 1
    keys = list(visited)
    c = mc_counts(base, task, keys, n_mc, seed=12)
    v = c / n_mc
    n_legal = np.array([len(legal_steps(q, visited[q, d])) for q, d in keys])
    n_alive = np.array([sum(is_alive(q, visited[q, d] + [s]) for s in legal_steps(q, visited[q, d])) for q, d in keys])
    branching = n_legal > 0  # remainder > 0: a subtraction is due (else only the answer line is)
    total = sum(kinds.values())
    rep = {
        "responses": n_resp, "sampled_acc": n_ok / n_resp,
        "steps_from_alive_states": total,
        "step_kinds": {k: round(x / total, 4) for k, x in sorted(kinds.items())},
        "first_failure_of_failed_responses": {k: round(x / max(1, n_resp - n_ok), 4) for k, x in sorted(first_fail.items())},
        "alive_states": len(keys), "n_mc": n_mc,
        "legal_next_steps_mean": float(n_legal[branching].mean()),
        "alive_next_steps_mean": float(n_alive[branching].mean()),
        "states_with_a_dead_end_on_offer": float((n_alive < n_legal)[branching].mean()),
        "states_with_2plus_alive_steps": float((n_alive >= 2)[branching].mean()),
        "v_pi_hist_alive": v_hist(v),
        "v_pi_std_alive": float(v.std()),
        "hard_but_possible": {f"k{k}": float(((v <= 0.25) & (bok_value(np.full_like(c, n_mc), c, k) >= 0.75)).mean())
                              for k in KS[1:]},
        "alive_but_v_pi_0": float((c == 0).mean()),
    }
    parents = [(q, d) for (q, d), b, a in zip(keys, n_legal, n_alive) if b >= 2 and a >= 1]
    return rep, parents


# ------------------------------------------------------------------------------------------ children

def children_report(task, policies, parents, n_mc: int) -> dict:
    kids = [[(q, d + s + "\n") for s in legal_steps(q, [x[:-1] for x in task.split_steps(d)])] for q, d in parents]
    flat = list(dict.fromkeys([s for s in parents] + [k for ks in kids for k in ks]))
    index = {s: i for i, s in enumerate(flat)}
    dead = np.array([not task.solvable(q, task.split_steps(d)) for q, d in flat])
    counts = {"pi": mc_counts(policies["base"], task, flat, n_mc, seed=21),
              "pi_again": mc_counts(policies["base"], task, flat, n_mc, seed=22),
              "weak": mc_counts(policies["weak"], task, flat, n_mc, seed=23),
              "strong": mc_counts(policies["strong"], task, flat, n_mc, seed=24)}
    n = np.full(len(flat), n_mc)

    def adv(v):  # per parent: advantages of its children
        return [np.array([v[index[k]] - v[index[p]] for k in ks]) for p, ks in zip(parents, kids)]

    a_pi = adv(counts["pi"] / n_mc)
    rep = {"parents": len(parents), "children_mean": float(np.mean([len(k) for k in kids])),
           "dead_children": float(np.mean([dead[index[k]] for ks in kids for k in ks])),
           "mc_correct_from_a_dead_state": int(sum(c[dead].sum() for c in counts.values())),
           "provers": {}}
    for rho in ("pi", "pi_again", "weak", "strong"):
        for k in KS:
            if rho == "pi" and k == 1:
                continue
            v = bok_value(n, counts[rho], k)
            a = adv(v)
            rho_s = [spearman(x, y) for x, y in zip(a_pi, a)]
            both = [(x, y) for x, y in zip(a_pi, a)]
            opposite = np.concatenate([np.sign(x) * np.sign(y) < 0 for x, y in both])
            best = [bool(set(np.flatnonzero(x == x.max())) & set(np.flatnonzero(y == y.max()))) for x, y in both]
            rep["provers"][f"{rho}_k{k}"] = {
                "spearman_mean": float(np.nanmean(rho_s)) if not np.all(np.isnan(rho_s)) else None,
                "spearman_defined": float(np.mean(~np.isnan(rho_s))),
                "opposite_sign": float(opposite.mean()),
                "best_child_agrees": float(np.mean(best)),
                "within_parent_std": float(np.mean([y.std() for y in a])),  # distinguishability
                "v_mean": float(v.mean())}
    return rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer SFT steps and problems (a smoke run)")
    ap.add_argument("--n-mc", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    max_steps, n_problems, n_seed, n_parents = (100, 16, 2, 16) if args.quick else (1000, 64, 2, 100)
    task = Countdown(CountdownSpec(), {"train": 1, "val": 128, "test": n_problems}, seed=0)
    res = {"spec": vars(CountdownSpec()), "model": "tiny_llama hidden 128, 3 layers, 4 heads, intermediate 384",
           "torch_threads": torch.get_num_threads(), "load_at_start": load1()}
    policies, rows, snaps = train(task, task.problems("val"), max_steps)
    if args.quick:
        policies = {name: policies.get(name, policies["strong"]) for name in TARGETS}
    res["sft_log"], res["checkpoints"] = rows, snaps
    t = time.process_time()
    res["states"], parents = states_report(task, policies["base"], task.problems("test"), n_seed, args.n_mc)
    res["states"] |= {"cpu_s": round(time.process_time() - t, 1), "load1": load1()}
    t = time.process_time()
    parents = random.Random(0).sample(parents, min(n_parents, len(parents)))
    res["children"] = children_report(task, policies, parents, args.n_mc)
    res["children"] |= {"cpu_s": round(time.process_time() - t, 1), "load1": load1()}
    res["cpu_s_total"] = round(time.process_time(), 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "task_countdown.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "sft_log"}, indent=1))


if __name__ == "__main__":
    main()
