"""The verifier stage's data-scaling subsample of an MC pool."""
import numpy as np
import polars as pl
import pytest

from pavflow.data import MC, conform
from pavflow.stages.verifier import subsample


def pool(n_states=4000, n=16, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, n + 1, n_states)
    rows = [{"problem_id": f"p{i // 5}", "split": "train", "sample_id": 0, "rollout_policy": "base", "h": i % 5,
             "n": n, "c": int(x), "gen_tokens": 10} for i, x in enumerate(c)]
    rows.append({"problem_id": "p0", "split": "train", "sample_id": 0, "rollout_policy": "base", "h": 5,
                 "n": 1, "c": 1, "gen_tokens": 0})  # a graded terminal state
    return conform(pl.DataFrame(rows), MC, "mc")


def test_subsample_keeps_each_states_value_in_expectation_and_is_deterministic():
    full = pool()
    sub = subsample(full, 4, seed=3)
    assert sub.equals(subsample(full, 4, seed=3)) and not sub.equals(subsample(full, 4, seed=4))
    sampled = sub.filter(pl.col("n") > 1)
    assert set(sampled["n"]) == {4} and (sampled["c"] <= 4).all()
    merged = full.sort("problem_id", "h").join(sub, on=["problem_id", "split", "sample_id", "h"], suffix="_sub")
    assert (merged["c_sub"] <= merged["c"]).all()  # m of the state's own rollouts
    assert (merged["c_sub"] / merged["n_sub"]).mean() == pytest.approx((merged["c"] / merged["n"]).mean(), abs=0.01)
    assert sub.filter(pl.col("h") == 5).select("n", "c").row(0) == (1, 1)  # terminal states are graded, kept


def test_subsample_refuses_more_rollouts_than_the_pool_has():
    with pytest.raises(ValueError, match="16"):
        subsample(pool(50), 32, seed=0)


def test_orm_rollouts_trains_on_the_train_splits_continuations_only():
    """orm.rollouts never sees a val or test problem, whatever the continuation table holds; each
    continuation carries its outcome on the finished state only."""
    from pavflow.data import CONTINUATIONS
    from pavflow.stages.verifier import continuation_examples
    from pavflow.tasks import make_task
    from pavflow.config import compose
    cfg = compose("smoke", [])
    task = make_task(cfg.task, 0, cfg.policy)
    problems = {p.problem_id: p for split in ("train", "val", "test") for p in task.problems(split)}
    rows = [{"problem_id": pid, "split": p.split, "sample_id": 0, "h": 1, "rollout": r, "response": p.solution,
             "correct": r % 2} for pid, p in problems.items() for r in range(2)]
    cont = conform(pl.DataFrame(rows), CONTINUATIONS, "continuations")
    exs = continuation_examples(task, problems, cont)
    train = [p for p in problems.values() if p.split == "train"]
    assert len(exs) == 2 * len(train) and {e.prompt for e in exs} == {task.prompt(p.question) for p in train}
    for e in exs:
        assert e.targets[:-1] == [None] * len(e.steps) and e.targets[-1] in (0.0, 1.0)
    assert sum(e.targets[-1] for e in exs) == len(train)  # rollout 1 of each is correct
