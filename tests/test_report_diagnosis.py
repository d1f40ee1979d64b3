"""report.diagnosis: what best-of-N picks at each N, and the verifier's accuracy by score decile."""
import numpy as np
import polars as pl
import pytest

from pavflow.report.diagnosis import scored_pool, score_deciles, top_pick_kinds
from pavflow.report.figures import plot_bon_diagnosis
from pavflow.search.bon import bon_search

N_PROBLEMS, N_SAMPLES = 40, 16
KINDS = ["arithmetic slip", "copy error", "missing answer"]


def pool_of(score_fn, seed=0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A pool of N_PROBLEMS x N_SAMPLES responses, problem i solved with rate i / N_PROBLEMS, scored by
    score_fn(rate, correct, rng) -> scores; the errors' kinds drawn at random."""
    rng = np.random.default_rng(seed)
    rows, scores = [], []
    for i in range(N_PROBLEMS):
        rate = i / (N_PROBLEMS - 1)
        correct = (rng.random(N_SAMPLES) < rate).astype(np.int8)
        s = score_fn(rate, correct, rng)
        for j in range(N_SAMPLES):
            kind = "correct" if correct[j] else KINDS[int(rng.integers(len(KINDS)))]
            rows.append(dict(problem_id=f"p{i:02d}", sample_id=j, correct=int(correct[j]), kind=kind,
                             gen_tokens=10, prompt_len=5, answer=str(int(correct[j]))))
            scores.append(dict(problem_id=f"p{i:02d}", sample_id=j, verifier="orm", score=float(s[j])))
    return pl.DataFrame(rows), pl.DataFrame(scores)


def difficulty_only(rate, correct, rng):  # knows the problem's success rate, not which response is right
    return rate + 0.01 * rng.random(correct.size)


def ranks_responses(rate, correct, rng):  # knows which response is right, not the problem
    return correct + 0.5 * rng.random(correct.size)


def test_the_top_pick_is_the_one_best_of_n_scores():
    pool, scores = pool_of(ranks_responses)
    budgets = [1, 2, 4, 16]
    kinds = top_pick_kinds(scored_pool(pool, scores), budgets)
    bon = bon_search(pool.join(scores.select("problem_id", "sample_id", "score"), on=["problem_id", "sample_id"]),
                     budgets).filter(pl.col("method") == "bon")
    for n in budgets:
        top = kinds.filter((pl.col("budget") == n) & (pl.col("kind") == "correct"))["fraction"].item()
        assert top == pytest.approx(bon.filter(pl.col("budget") == n)["correct"].mean())
    # every column is a distribution: the pool's over responses, each budget's over problems
    sums = kinds.group_by("budget").agg(pl.col("fraction").sum(), pl.col("n").first())
    assert sums["fraction"].to_list() == pytest.approx([1.0] * len(budgets + [None]))
    assert sums.filter(pl.col("budget").is_null())["n"].item() == N_PROBLEMS * N_SAMPLES
    assert kinds["kind"][0] == "correct"
    # a slip that still ends in the right answer is graded correct, and so counted
    lucky = pool.with_columns(kind=pl.lit("arithmetic slip"))
    assert top_pick_kinds(scored_pool(lucky, scores), [1]).filter(pl.col("kind") == "correct")["count"][0] > 0


def test_a_verifier_that_ranks_problems_rises_across_and_stays_flat_within():
    d = score_deciles(scored_pool(*pool_of(difficulty_only)), n_boot=200)
    across = d.filter(pl.col("scope") == "across").sort("decile")["acc"].to_numpy()
    within = d.filter(pl.col("scope") == "within").sort("decile")["acc"].to_numpy()
    assert across[-1] - across[0] > 0.7
    assert np.ptp(within) < 0.2
    assert d["n"].sum() == 2 * N_PROBLEMS * N_SAMPLES
    assert (d["ci_low"] <= d["acc"]).all() and (d["acc"] <= d["ci_high"]).all()


def test_a_verifier_that_ranks_responses_rises_within_a_problem():
    d = score_deciles(scored_pool(*pool_of(ranks_responses)), n_boot=200)
    within = d.filter(pl.col("scope") == "within").sort("decile")
    assert within["acc"][-1] - within["acc"][0] > 0.5
    assert within["ci_low"][-1] > within["ci_high"][0]


def test_a_response_without_a_score_is_named():
    pool, scores = pool_of(ranks_responses)
    with pytest.raises(ValueError, match="1 of 640 pool responses have no 'orm' score"):
        scored_pool(pool, scores.slice(1))


def test_the_figure_draws_both_panels_or_nothing():
    scored = scored_pool(*pool_of(ranks_responses))
    kinds, deciles = top_pick_kinds(scored, [1, 4]), score_deciles(scored, n_boot=50)
    fig = plot_bon_diagnosis(kinds, deciles)
    assert fig.get_label() == "bon_diagnosis"
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_xticklabels()] == ["pool", "N=1", "N=4"]
    assert len(left.patches) == 3 * len(kinds["kind"].unique())
    assert len(right.lines) >= 2
    assert plot_bon_diagnosis(None, deciles) is None and plot_bon_diagnosis(kinds, deciles.head(0)) is None
