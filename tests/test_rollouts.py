"""Seed responses and Monte-Carlo pools: with a real (random) tiny model for shapes, grading and
determinism, and with a scripted sampler for the exact MC counts."""
from __future__ import annotations

import polars as pl
import pytest

from pavflow.data import CONTINUATIONS, MC, SAMPLES, Rows, conform
from pavflow.policy.sampler import Completion, Part, Sampler, Samples
from pavflow.rollouts import continuation_table, mc_pool, sample_responses
from pavflow.tasks import make_task

TASK_CFG = {"name": "arith", "n_train": 4, "n_val": 2, "n_test": 2, "min_operands": 2, "max_operands": 4,
            "modulus": 100, "add_max": 9, "mul_min": 2, "mul_max": 5, "ops": "+-*"}
TINY = {"kind": "tiny_llama", "chat_template": False}
KEY = ["problem_id", "sample_id", "h"]


@pytest.fixture(scope="module")
def task():
    return make_task(TASK_CFG, seed=0, policy_cfg=TINY)


@pytest.fixture(scope="module")
def problems(task):
    return task.problems("train") + task.problems("val")


@pytest.fixture(scope="module")
def sampler(tok, random_model):  # tok, random_model and torch at one thread: conftest.py
    return Sampler(random_model, tok, batch_size=64)


def sample(sampler, task, problems, n=3, seed=0):
    return sample_responses(sampler, task, problems, n=n, seed=seed, temperature=1.0, max_new_tokens=20,
                            policy="base")


# --- sample_responses ----------------------------------------------------------------------------

def test_sample_responses_rows(sampler, task, problems):
    df = sample(sampler, task, problems, n=3)
    assert df.schema == pl.Schema(SAMPLES)
    assert conform(df, SAMPLES).equals(df)
    assert df.height == 3 * len(problems)
    by_id = {p.problem_id: p for p in problems}
    assert df["problem_id"].unique(maintain_order=True).to_list() == [p.problem_id for p in problems]
    for pid, group in df.group_by("problem_id", maintain_order=True):
        assert group["sample_id"].to_list() == [0, 1, 2]
    prompt_len = {p.problem_id: len(sampler.encode([task.prompt(p.question)])[0]) for p in problems}
    for r in df.iter_rows(named=True):
        p = by_id[r["problem_id"]]
        assert r["split"] == p.split and r["policy"] == "base"
        assert r["correct"] == task.grade(r["response"], p.answer)
        assert r["n_steps"] == len(task.split_steps(r["response"]))
        assert r["prompt_tokens"] == prompt_len[p.problem_id]
        assert 1 <= r["gen_tokens"] <= 20
    assert df["response"].n_unique() > 1  # the random model really samples


def test_sample_responses_is_deterministic(sampler, task, problems):
    a = sample(sampler, task, problems[:3], n=2, seed=5)
    assert a.equals(sample(sampler, task, problems[:3], n=2, seed=5))
    assert not a.equals(sample(sampler, task, problems[:3], n=2, seed=6))


def test_mc_pool_on_a_real_model(sampler, task, problems):
    seeds = sample(sampler, task, problems[:3], n=2, seed=1)
    mc = mc_pool(sampler, task, {p.problem_id: p for p in problems}, seeds, n_mc=3, seed=2, temperature=1.0,
                 max_new_tokens=12, rollout_policy="base")
    assert mc.schema == pl.Schema(MC)
    n_states = sum(max(1, n) + (n > 0) for n in seeds["n_steps"])
    assert mc.height == n_states
    assert mc.equals(mc.sort(KEY))
    assert (mc["c"] <= mc["n"]).all() and (mc["c"] >= 0).all()
    again = mc_pool(sampler, task, {p.problem_id: p for p in problems}, seeds, n_mc=3, seed=2,
                    temperature=1.0, max_new_tokens=12, rollout_policy="base")
    assert mc.equals(again)


# --- mc_pool with a scripted sampler --------------------------------------------------------------

class ScriptedSampler:
    """From a state with h steps taken, the first c_of(question, h) of n continuations finish the
    reference solution correctly and the rest give a wrong answer. Continuation j costs len(text) + j
    tokens (+1 for EOS)."""

    def __init__(self, task, problems, c_of):
        self.task, self.c_of = task, c_of
        self.by_prompt = {task.prompt(p.question): p for p in problems}
        self.calls = []

    def continuations(self, prefix: str, n: int) -> list[Completion]:
        prompt = prefix[:prefix.index(self.task.step_sep) + 1]
        p, done = self.by_prompt[prompt], prefix[len(prompt):]
        h = len(self.task.split_steps(done))
        ref = p.solution[len(done):] if p.solution.startswith(done) else f"A:{p.answer}"
        wrong = f"A:{(int(p.answer) + 1) % 100}"
        c = self.c_of(p.question, h)
        texts = [ref if j < c else wrong for j in range(n)]
        return [Completion(list(range(len(t) + j + 1)), t, "eos") for j, t in enumerate(texts)]

    def sample(self, prompts, n=1, *, seed, temperature=1.0, max_new_tokens=64, **kw):
        self.calls.append({"prompts": list(prompts), "n": n, "seed": seed, "temperature": temperature,
                           "max_new_tokens": max_new_tokens})
        return Samples([self.continuations(pr, n) for pr in prompts], [len(pr) for pr in prompts])

    def stream(self, prompts, n=1, *, seed, **kw):
        """sample()'s continuations in parts of at most 3 copies, as a Sampler's batches split them."""
        out = self.sample(prompts, n, seed=seed, **kw)
        for i, comps in enumerate(out.completions):
            for start in range(0, n, 3):
                yield Part(i, start, comps[start:start + 3], out.prompt_tokens[i])

    def encode(self, prompts):
        return [list(range(len(p))) for p in prompts]


N_MC = 4


def c_rule(question: str, h: int) -> int:
    return (len(question) + 2 * h) % (N_MC + 1)  # all-wrong, mixed and all-correct states


@pytest.fixture
def scripted(task, problems):
    return ScriptedSampler(task, problems, c_rule)


@pytest.fixture
def seeds(task, problems):
    p0, p1, p2 = problems[0], problems[1], problems[2]
    wrong0 = p0.solution.rsplit("A:", 1)[0] + f"A:{(int(p0.answer) + 7) % 100}"
    partial1 = task.split_steps(p1.solution)[0] + "12+"  # one full step, then an unfinished one
    rows = [  # deliberately not sorted by (problem_id, sample_id)
        (p1, 0, partial1),
        (p0, 1, wrong0),
        (p2, 0, ""),  # empty response: no steps, no terminal state
        (p0, 0, p0.solution),
    ]
    df = pl.DataFrame([{"problem_id": p.problem_id, "split": p.split, "policy": "base", "sample_id": i,
                        "response": r, "n_steps": len(task.split_steps(r)),
                        "correct": task.grade(r, p.answer), "prompt_tokens": 5, "gen_tokens": len(r)}
                       for p, i, r in rows])
    return conform(df, SAMPLES, "seeds")


def run_pool(scripted, problems, seeds, task, **kw):
    args = dict(n_mc=N_MC, seed=11, temperature=0.7, max_new_tokens=9, rollout_policy="weak")
    return mc_pool(scripted, task, {p.problem_id: p for p in problems}, seeds, **(args | kw))


def test_scripted_sampler_is_right(task, problems, scripted):
    p = problems[0]
    steps = task.split_steps(p.solution)
    comps = scripted.continuations(task.prefix(p.question, steps, 1), 5)
    graded = [task.grade("".join(steps[:1]) + c.text, p.answer) for c in comps]
    assert sum(graded) == c_rule(p.question, 1)


def test_mc_pool_counts(task, problems, scripted, seeds):
    mc = run_pool(scripted, problems, seeds, task)
    assert mc.schema == pl.Schema(MC)
    assert conform(mc, MC).equals(mc)
    assert mc.equals(mc.sort(KEY))
    assert set(mc["rollout_policy"]) == {"weak"}
    by_id = {p.problem_id: p for p in problems}
    expected = []
    for r in seeds.iter_rows(named=True):
        p, H = by_id[r["problem_id"]], r["n_steps"]
        steps = task.split_steps(r["response"])
        for h in range(max(1, H)):
            comps = scripted.continuations(task.prefix(p.question, steps, h), N_MC)
            expected.append((r["problem_id"], r["split"], r["sample_id"], "weak", h, N_MC,
                             c_rule(p.question, h), sum(c.gen_tokens for c in comps)))
        if H:
            expected.append((r["problem_id"], r["split"], r["sample_id"], "weak", H, 1, r["correct"], 0))
    assert mc.rows() == sorted(expected, key=lambda t: (t[0], t[2], t[4]))
    # sampled states see all-wrong, mixed and all-correct pools; terminal rows both outcomes
    cs = set(mc.filter(pl.col("n") == N_MC)["c"])
    assert {0, N_MC} <= cs and cs - {0, N_MC}
    assert set(mc.filter(pl.col("n") == 1)["c"]) == {0, 1}


def test_mc_pool_states(task, problems, scripted, seeds):
    mc = run_pool(scripted, problems, seeds, task)
    for r in seeds.iter_rows(named=True):
        rows = mc.filter((pl.col("problem_id") == r["problem_id"]) & (pl.col("sample_id") == r["sample_id"]))
        H = r["n_steps"]
        if H == 0:  # the empty response: one sampled state s_0, no terminal row
            assert rows.rows(named=True) == [{"problem_id": r["problem_id"], "split": r["split"],
                                              "sample_id": r["sample_id"], "rollout_policy": "weak", "h": 0,
                                              "n": N_MC, "c": c_rule(problems[2].question, 0),
                                              "gen_tokens": rows["gen_tokens"][0]}]
            continue
        assert rows["h"].to_list() == list(range(H + 1))
        assert rows["n"].to_list() == [N_MC] * H + [1]
        terminal = rows.row(-1, named=True)
        assert terminal["c"] == r["correct"] and terminal["gen_tokens"] == 0
        assert (rows["gen_tokens"][:-1] > 0).all()


def test_mc_pool_keeps_its_continuations_as_graded_responses(task, problems, scripted, seeds):
    """The continuations table holds every rollout the counts came from, each as prefix + continuation,
    graded as the counts were; keeping it changes no MC row."""
    kept = Rows(CONTINUATIONS)
    mc = run_pool(scripted, problems, seeds, task, continuations=kept)
    assert mc.equals(run_pool(scripted, problems, seeds, task))
    cont = continuation_table(kept)
    assert cont.schema == pl.Schema(CONTINUATIONS) and cont.equals(cont.sort("problem_id", "sample_id", "h", "rollout"))
    sampled = mc.filter(pl.col("n") > 1)
    assert cont.height == sampled["n"].sum()
    per_state = cont.group_by("problem_id", "split", "sample_id", "h").agg(n=pl.len(), c=pl.col("correct").sum(),
                                                                          r=pl.col("rollout").sort())
    joined = sampled.join(per_state, on=["problem_id", "split", "sample_id", "h"], suffix="_kept")
    assert joined.height == sampled.height and (joined["n"] == joined["n_kept"]).all()
    assert (joined["c"] == joined["c_kept"]).all() and all(r.to_list() == list(range(N_MC)) for r in joined["r"])
    by_id, seed_of = {p.problem_id: p for p in problems}, {(r["problem_id"], r["sample_id"]): r["response"]
                                                            for r in seeds.iter_rows(named=True)}
    for r in cont.iter_rows(named=True):
        done = "".join(task.split_steps(seed_of[(r["problem_id"], r["sample_id"])])[:r["h"]])
        assert r["response"].startswith(done) and task.grade(r["response"], by_id[r["problem_id"]].answer) == r["correct"]


def test_mc_pool_samples_once_with_the_given_arguments(task, problems, scripted, seeds):
    run_pool(scripted, problems, seeds, task)
    assert len(scripted.calls) == 1
    call = scripted.calls[0]
    assert (call["n"], call["seed"], call["temperature"], call["max_new_tokens"]) == (N_MC, 11, 0.7, 9)
    # one prefix per sampled state: H states per non-empty seed, one for the empty one
    assert len(call["prompts"]) == sum(max(1, n) for n in seeds["n_steps"])
    by_id = {p.problem_id: p for p in problems}
    first = seeds.row(0, named=True)
    steps = task.split_steps(first["response"])
    assert call["prompts"][:len(steps)] == [task.prefix(by_id[first["problem_id"]].question, steps, h)
                                            for h in range(len(steps))]


def test_mc_pool_gen_tokens_sum_the_completions(task, problems, scripted, seeds):
    mc = run_pool(scripted, problems, seeds, task)
    out = scripted.sample(scripted.calls[0]["prompts"], N_MC, seed=0)
    assert mc["gen_tokens"].sum() == out.gen_tokens


def test_sample_responses_with_scripted_sampler(task, problems):
    # every continuation of the bare prompt (h = 0) is correct for c_rule(question, 0) of n copies
    s = ScriptedSampler(task, problems, c_rule)
    df = sample_responses(s, task, problems, n=N_MC, seed=3, temperature=1.0, max_new_tokens=8, policy="base")
    assert df.schema == pl.Schema(SAMPLES)
    for p in problems:
        rows = df.filter(pl.col("problem_id") == p.problem_id)
        assert rows["sample_id"].to_list() == list(range(N_MC))
        assert rows["correct"].sum() == c_rule(p.question, 0)
        assert rows["n_steps"].to_list() == [len(task.split_steps(t)) for t in rows["response"]]
        assert rows["prompt_tokens"].to_list() == [len(task.prompt(p.question))] * N_MC


# --- streaming: the same tables, byte for byte, as sampling everything at once ------------------------

def pool_at_once(sampler, task, problems, seeds, *, n_mc, seed, temperature, max_new_tokens, rollout_policy):
    """mc_pool as it was before streaming: every completion held, then one row per state."""
    states, prefixes, terminal = [], [], []
    for r in seeds.iter_rows(named=True):
        steps = task.split_steps(r["response"])
        for h in range(max(1, len(steps))):
            states.append((r, h, steps))
            prefixes.append(task.prefix(problems[r["problem_id"]].question, steps, h))
        if steps:
            terminal.append(r | {"h": len(steps)})
    out = sampler.sample(prefixes, n_mc, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens)
    rows = [{"problem_id": r["problem_id"], "split": r["split"], "sample_id": r["sample_id"],
             "rollout_policy": rollout_policy, "h": h, "n": n_mc,
             "c": sum(task.grade("".join(steps[:h]) + c.text, problems[r["problem_id"]].answer) for c in comps),
             "gen_tokens": sum(c.gen_tokens for c in comps)} for (r, h, steps), comps in zip(states, out.completions)]
    rows += [{"problem_id": r["problem_id"], "split": r["split"], "sample_id": r["sample_id"],
              "rollout_policy": rollout_policy, "h": r["h"], "n": 1, "c": r["correct"], "gen_tokens": 0}
             for r in terminal]
    return conform(pl.DataFrame(rows, schema_overrides=MC), MC, "mc").sort("problem_id", "sample_id", "h")


def responses_at_once(sampler, task, problems, *, n, seed, temperature, max_new_tokens, policy):
    prompts = [task.prompt(p.question) for p in problems]
    out = sampler.sample(prompts, n, seed=seed, temperature=temperature, max_new_tokens=max_new_tokens)
    rows = [{"problem_id": p.problem_id, "split": p.split, "policy": policy, "sample_id": sid, "response": c.text,
             "n_steps": len(task.split_steps(c.text)), "correct": task.grade(c.text, p.answer),
             "prompt_tokens": len(ids), "gen_tokens": c.gen_tokens}
            for p, comps, ids in zip(problems, out.completions, sampler.encode(prompts)) for sid, c in enumerate(comps)]
    return conform(pl.DataFrame(rows, schema_overrides=SAMPLES), SAMPLES, "samples")


def parquet_bytes(df, schema, path):
    from pavflow.data import write_table
    return write_table(df, path, schema).read_bytes()


@pytest.mark.parametrize("batch_size, chunk_rows", [(64, None), (2, 3)])  # (2, 3): every state split over batches, many chunks
def test_streamed_tables_are_byte_identical_to_sampling_at_once(tok, random_model, task, problems, tmp_path,
                                                                 monkeypatch, batch_size, chunk_rows):
    import pavflow.data as data
    if chunk_rows:
        monkeypatch.setattr(data, "CHUNK_ROWS", chunk_rows)
    sampler = Sampler(random_model, tok, batch_size=batch_size)
    kw = dict(seed=4, temperature=1.0, max_new_tokens=12)
    seeds = sample_responses(sampler, task, problems, n=3, policy="base", **kw)
    assert parquet_bytes(seeds, SAMPLES, tmp_path / "a.parquet") == parquet_bytes(
        responses_at_once(sampler, task, problems, n=3, policy="base", **kw), SAMPLES, tmp_path / "b.parquet")
    by_id = {p.problem_id: p for p in problems}
    mc = mc_pool(sampler, task, by_id, seeds, n_mc=5, rollout_policy="base", **kw)
    assert mc.height > 10
    assert parquet_bytes(mc, MC, tmp_path / "c.parquet") == parquet_bytes(
        pool_at_once(sampler, task, by_id, seeds, n_mc=5, rollout_policy="base", **kw), MC, tmp_path / "d.parquet")
