"""Hand-made study tables shared by the tests of pavflow.report (tests/test_report_*.py)."""
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pavflow.data import METRICS, RL_CURVE, SAMPLES, SEARCH, TRAIN_LOG, conform
from pavflow.report import StudyTables, headline, write_summary

PROBLEMS = ["p0", "p1", "p2", "p3"]
# Success counts out of 10 samples for 10 test problems, plus 2 val problems that must be ignored.
POOL_CORRECT = [0, 0, 1, 3, 5, 5, 7, 9, 10, 10]
BON = {"method": "bon", "verifier": "orm", "prover": ""}
BEAM = {"method": "beam", "verifier": "pqv+pav", "prover": "base_k4", "alpha": 0.5}
EQUAL_CHOICE = {"prover": "base_k4", "k": 4, "alpha": 0.5, "verifier": "pqv+pav", "val_acc": 0.8, "n_problems": 5,
                "budget": 4}


def search_rows(method, verifier, prover, k, alpha, budget, correct, tokens, split="test"):
    return [dict(problem_id=p, split=split, method=method, verifier=verifier, prover=prover, k=k,
                 alpha=alpha, budget=budget, correct=c, gen_tokens=t, prompt_tokens=50,
                 verifier_tokens=2 * t) for p, c, t in zip(PROBLEMS, correct, tokens)]


@pytest.fixture
def search() -> pl.DataFrame:
    rows = (
        search_rows("bon", "orm", "", None, None, 1, [1, 0, 0, 0], [100, 120, 80, 100])
        + search_rows("bon", "orm", "", None, None, 4, [1, 1, 0, 0], [400, 480, 320, 400])
        + search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 1, [1, 1, 0, 0], [150, 150, 150, 150])
        + search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 4, [1, 1, 1, 0], [200, 220, 180, 200])
        + search_rows("beam", "pqv+pav", "base_k1", 1, 0.5, 4, [1, 0, 1, 0], [210, 210, 210, 210])
        + search_rows("beam", "pqv+pav", "base_k16", 16, 0.5, 4, [1, 0, 0, 0], [190] * 4)
        + search_rows("beam", "pqv+pav", "big_k4", 4, 0.5, 4, [1, 1, 1, 1], [230] * 4)
        + search_rows("majority", "", "", None, None, 1, [1, 0, 0, 0], [100, 120, 80, 100])
        + search_rows("majority", "", "", None, None, 4, [1, 0, 1, 0], [400, 480, 320, 400])
        + search_rows("pass", "", "", None, None, 4, [1, 1, 1, 0], [400, 480, 320, 400])
    )
    return conform(pl.DataFrame(rows, infer_schema_length=None), SEARCH, "search")


@pytest.fixture
def equal_compute() -> pl.DataFrame:
    """BoN at 100/200/400 tokens (25/50/75%); beam at N=2 with 141.5 tokens (75%) and N=4 with 200 (100%);
    the pqv alone at N=4; a fifth problem only beam ran (left out of every paired comparison)."""
    rows = (search_rows("bon", "orm", "", 0, 0.0, 1, [1, 0, 0, 0], [100] * 4)
            + search_rows("bon", "orm", "", 0, 0.0, 2, [1, 1, 0, 0], [200] * 4)
            + search_rows("bon", "orm", "", 0, 0.0, 4, [1, 1, 1, 0], [400] * 4)
            + search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 2, [1, 1, 1, 0], [141, 142, 141, 142])
            + search_rows("beam", "pqv+pav", "base_k4", 4, 0.5, 4, [1, 1, 1, 1], [200] * 4)
            + search_rows("beam", "pqv+pav", "base_k4", 4, 2.0, 4, [0, 1, 1, 1], [200] * 4)
            + search_rows("beam", "pqv", "", 0, 0.0, 4, [0, 0, 1, 1], [210] * 4))
    extra = dict(rows[-1], problem_id="p9", method="beam", verifier="pqv+pav", prover="base_k4", k=4, alpha=0.5,
                 budget=4, correct=0)
    return conform(pl.DataFrame(rows + [extra], infer_schema_length=None), SEARCH, "search")


def equal_compute_val(equal_compute: pl.DataFrame) -> pl.DataFrame:
    return equal_compute.filter(pl.col("budget") == 4, pl.col("method") == "beam").with_columns(split=pl.lit("val"))


@pytest.fixture
def pool() -> pl.DataFrame:
    rows = []
    for split, counts in (("test", POOL_CORRECT), ("val", [10, 10])):
        for i, c in enumerate(counts):
            for s in range(10):
                rows.append(dict(problem_id=f"{split}{i}", split=split, policy="base", sample_id=s,
                                 response="...", n_steps=3, correct=int(s < c), prompt_tokens=50,
                                 gen_tokens=100))
    return conform(pl.DataFrame(rows), SAMPLES, "pool")


@pytest.fixture
def rl() -> pl.DataFrame:
    rows = []
    for arm, prover, alpha, base in (("outcome", "", 0.0, 0.30), ("pav", "base_k4", 3.0, 0.35)):
        for seed in (0, 1):
            for u in range(4):
                acc = base + 0.02 * u + 0.01 * seed
                rows.append(dict(arm=arm, prover=prover, alpha=alpha, seed=seed, update=u,
                                 samples_seen=256 * u, train_reward=acc, test_acc_greedy=acc + 0.05,
                                 test_acc_sampled=acc, pass_at_n=acc + 0.2, response_tokens=20.0,
                                 n_steps=4.0, kl_ref=0.1 * u, newly_solved=0.1 * u, gen_tokens=5000 * u,
                                 verifier_tokens=0, stop_reason=None))
    return conform(pl.DataFrame(rows), RL_CURVE, "rl")


ORACLE_KS = (1, 4, 16)


def oracle_search() -> pl.DataFrame:
    """Beam search scored by the oracle provers (verifier mc) at N=4, alpha 1: K=4 best (100%), K=1 50%, K=16 75%."""
    rows = [r for k, correct in zip(ORACLE_KS, ([1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]))
            for r in search_rows("beam", "mc", f"base_k{k}", k, 1.0, 4, correct, [300] * 4)]
    return conform(pl.DataFrame(rows, infer_schema_length=None), SEARCH, "search")


def oracle_rl(rl: pl.DataFrame) -> pl.DataFrame:
    """`rl` plus pav_mc arms of base_k1/k4/k16, 2 seeds, 4 updates, acc = start + 0.02 update + 0.01 seed (the
    outcome arm starts at 0.30 and ends at 0.365 in seed mean after 768 samples and 15,000 tokens). K=1 starts
    at 0.30 (1x); K=4 at 0.31, its mean reaching 0.365 at update 2.5 (640 samples: 1.2x; 37,500 tokens with
    10,000 rollout tokens per update: 0.4x per token); K=16 at 0.28 never reaches it (0x)."""
    rows = [dict(r, arm=f"pav_mc_base_k{k}", prover=f"base_k{k}", alpha=1.0,
                 test_acc_sampled=start + 0.02 * r["update"] + 0.01 * r["seed"], verifier_tokens=10000 * r["update"])
            for k, start in zip(ORACLE_KS, (0.30, 0.31, 0.28))
            for r in rl.filter(pl.col("arm") == "outcome").iter_rows(named=True)]
    return pl.concat([rl, conform(pl.DataFrame(rows), RL_CURVE, "rl")])


@pytest.fixture
def train_log() -> pl.DataFrame:
    rows = [dict(model=m, step=s, tokens_seen=1000 * s, loss=scale * np.exp(-s / 10) + 0.1,
                 val_metric="auroc" if s % 5 == 0 else None, val_value=0.5 + s / 50 if s % 5 == 0 else None)
            for m, scale in (("sft", 2.0), ("pav_base_k4", 0.7)) for s in range(20)]
    return conform(pl.DataFrame(rows), TRAIN_LOG, "train_log")


@pytest.fixture
def metrics() -> pl.DataFrame:
    rows = [dict(subject="orm", metric="auroc", value=0.71, ci_low=0.68, ci_high=0.74, n=500),
            dict(subject="orm", metric="bon@16", value=0.40, ci_low=None, ci_high=None, n=500),
            dict(subject="pav_base_k4", metric="auroc", value=0.78, ci_low=0.75, ci_high=0.81, n=500)]
    return conform(pl.DataFrame(rows), METRICS, "metrics")


# The pqv's data-scaling curve at rollouts.n_seed = 2, n_mc = 4 (the pqv itself is s2m4): s1m2 and s2m1
# spend the same 2 rollouts per problem; pav_base_k4.first_pit.s1m4 has no full-data run of its base.
N_SEED, N_MC = 2, 4
SCALING = {  # verifier -> (outcome_auroc_within, its CI, brier, label_rollouts)
    "pqv": (0.80, 0.70, 0.90, 0.15, 4096.0), "pqv.s1m2": (0.60, 0.55, 0.65, 0.25, 512.0),
    "pqv.s2m1": (0.70, 0.60, 0.80, 0.22, 512.0), "pqv.s1m4": (0.65, 0.55, 0.75, 0.20, 1024.0),
    "pav_base_k4.first_pit.s1m4": (0.75, 0.70, 0.80, 0.18, 256.0),
}


def quality_rows() -> pl.DataFrame:
    rows = [dict(subject=v, metric=m, value=x, ci_low=lo, ci_high=hi, n=40)
            for v, b, a in (("orm", 0.20, 0.71), ("pqv", 0.15, 0.66), ("pav_base_k4", 0.12, 0.78))
            for m, x, lo, hi in (("brier", b, b - 0.02, b + 0.03), ("outcome_auroc", a, None, None))]
    rows += [dict(subject=v, metric=m, value=x, ci_low=lo, ci_high=hi, n=40)
             for v, (w, wlo, whi, b, cost) in SCALING.items()
             for m, x, lo, hi in (("outcome_auroc_within", w, wlo, whi), ("label_rollouts", cost, None, None))
             + ((("brier", b, b - 0.02, b + 0.02),) if v != "pqv" else ())]
    rows.append(dict(subject="oracle", metric="outcome_auroc_within", value=0.9, ci_low=0.8, ci_high=1.0, n=40))
    return conform(pl.DataFrame(rows), METRICS, "metrics")


@pytest.fixture
def quality() -> pl.DataFrame:
    return quality_rows()


def quality_with_analytic() -> pl.DataFrame:
    rows = [("orm", "brier", 0.20, 0.18, 0.23), ("orm", "outcome_auroc", 0.71, 0.6, 0.8),
            ("pav_base_k4", "brier", 0.12, 0.10, 0.14), ("pav_base_k4", "outcome_auroc", 0.78, 0.7, 0.86),
            ("pav_base_k4", "label_rollouts", 4096.0, None, None),
            ("pav_analytic_k4", "brier", 0.15, 0.13, 0.17), ("pav_analytic_k4", "outcome_auroc", 0.80, 0.7, 0.9),
            ("oracle", "brier", 0.01, 0.0, 0.02), ("oracle", "outcome_auroc", 1.0, 1.0, 1.0)]
    return conform(pl.DataFrame([dict(subject=a, metric=m, value=v, ci_low=lo, ci_high=hi, n=10)
                                 for a, m, v, lo, hi in rows]), METRICS, "metrics")


def row(curves: pl.DataFrame, **keys) -> dict:
    df = curves.filter(*[pl.col(k) == v for k, v in keys.items()])
    assert df.height == 1, keys
    return df.row(0, named=True)


def summarize(out_dir: Path, study: StudyTables, **kw) -> tuple[str, dict]:
    """Write the summary of `study` into out_dir; (summary.md, headline.json's dict)."""
    h = headline(study)
    write_summary(out_dir, study, h, **kw)
    return (out_dir / "summary.md").read_text(), h.as_dict()


def section(md: str, title_start: str) -> list[list[str]]:
    """Table rows (cells) of the section whose heading starts with `title_start`."""
    body = md.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in body.splitlines() if line.startswith("|") and not line.startswith("|---")]


def ci(r: dict) -> str:
    return f"{100 * r['acc']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def rl_finals(finals: dict[str, list[float]]) -> pl.DataFrame:
    """RL_CURVE rows: per arm and seed a two-point curve (update 0 at 0.2, the last update at the final)."""
    rows = []
    for arm, accs in finals.items():
        for seed, acc in enumerate(accs):
            for u, a in ((0, 0.2), (4, acc)):
                rows.append(dict(arm=arm, prover="", alpha=1.0, seed=seed, update=u, samples_seen=128 * u,
                                 train_reward=a, test_acc_greedy=a, test_acc_sampled=a, pass_at_n=a,
                                 response_tokens=20.0, n_steps=4.0, kl_ref=0.0, newly_solved=0.0, gen_tokens=0,
                                 verifier_tokens=0, stop_reason=None))
    return conform(pl.DataFrame(rows), RL_CURVE, "rl")


def rl_curve(accs_by_seed: dict[int, list[float]], arm: str = "outcome") -> pl.DataFrame:
    """RL_CURVE of one arm: an evaluation every 100 samples, accs_by_seed[seed][update]."""
    rows = [dict(arm=arm, prover="", alpha=0.0, seed=s, update=u, samples_seen=100 * u, train_reward=a,
                 test_acc_greedy=a, test_acc_sampled=a, pass_at_n=a, response_tokens=10.0, n_steps=3.0, kl_ref=0.0,
                 newly_solved=0.0, gen_tokens=1000 * u, verifier_tokens=0, stop_reason=None)
            for s, accs in accs_by_seed.items() for u, a in enumerate(accs)]
    return conform(pl.DataFrame(rows), RL_CURVE, "rl")
