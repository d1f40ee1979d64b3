import json
import math

import pytest

from pavflow import cli
from pavflow.report.spread import (SpreadError, half_width, headline_agreement, headline_spread, read_headlines,
                                   spread_markdown, study_spread)

# three seeds of one study, in headline.json's key styles: <key>_ci_low(@N), a bare ci_low beside diff
SEEDS = [
    {"experiment": "didactic_seed0", "pool/base/acc": 0.40, "pool/base/acc_ci_low": 0.30, "pool/base/acc_ci_high": 0.50,
     "search/beam/pqv+pav/base_k4 α=1/acc@64": 0.60, "search/beam/pqv+pav/base_k4 α=1/acc_ci_low@64": 0.55,
     "search/beam/pqv+pav/base_k4 α=1/acc_ci_high@64": 0.65,
     "paired/bon/orm@64/diff": 0.10, "paired/bon/orm@64/ci_low": 0.0, "paired/bon/orm@64/ci_high": 0.20,
     "headline/val_choice/prover": "base_k4", "quality/best/brier": "pav_base_k4", "rl/pav/final_acc_sampled": 0.5,
     "headline/best_prover_k": 4},
    {"experiment": "didactic_seed1", "pool/base/acc": 0.50, "pool/base/acc_ci_low": 0.42, "pool/base/acc_ci_high": 0.58,
     "search/beam/pqv+pav/base_k4 α=1/acc@64": 0.70, "search/beam/pqv+pav/base_k4 α=1/acc_ci_low@64": 0.66,
     "search/beam/pqv+pav/base_k4 α=1/acc_ci_high@64": 0.74,
     "paired/bon/orm@64/diff": 0.20, "paired/bon/orm@64/ci_low": 0.10, "paired/bon/orm@64/ci_high": 0.30,
     "headline/val_choice/prover": "base_k16", "quality/best/brier": "pav_base_k4", "rl/pav/final_acc_sampled": None,
     "headline/best_prover_k": 16},
    {"experiment": "didactic_seed2", "pool/base/acc": 0.60, "pool/base/acc_ci_low": 0.55, "pool/base/acc_ci_high": 0.65,
     "search/beam/pqv+pav/base_k4 α=1/acc@64": 0.80,
     "paired/bon/orm@64/diff": 0.30, "paired/bon/orm@64/ci_low": 0.25, "paired/bon/orm@64/ci_high": 0.35,
     "headline/val_choice/prover": "base_k4", "quality/best/brier": "pav_base_k4", "oracle_k/rl/base_k1/acc": 0.3,
     "headline/best_prover_k": 4},
]
BEAM = "search/beam/pqv+pav/base_k4 α=1/acc@64"


def studies(root, heads, configs=None):
    dirs = []
    for i, head in enumerate(heads):
        d = root / "results" / f"didactic_seed{i}"
        (d / "report").mkdir(parents=True)
        (d / "report" / "headline.json").write_text(json.dumps(head))
        if configs:
            (d / "report" / "config.yaml").write_text(configs[i])
        dirs.append(d)
    return dirs


def test_spread_numbers_are_the_seeds_mean_sd_and_range_beside_their_ci(tmp_path):
    spread = headline_spread(read_headlines(studies(tmp_path, SEEDS)))
    rows = {r["key"]: r for r in spread.iter_rows(named=True)}
    acc = rows["pool/base/acc"]
    assert acc["n_studies"] == 3 and acc["mean"] == pytest.approx(0.5) and acc["sd"] == pytest.approx(0.1)  # ddof=1
    assert (acc["min"], acc["max"], acc["range"]) == pytest.approx((0.4, 0.6, 0.2))
    assert acc["ci_half_width"] == pytest.approx((0.10 + 0.08 + 0.05) / 3)
    assert [acc[f"didactic_seed{i}"] for i in range(3)] == pytest.approx([0.4, 0.5, 0.6])
    assert rows[BEAM]["ci_half_width"] == pytest.approx((0.05 + 0.04) / 2)  # acc_ci_low@64; seed2 has none
    assert rows["paired/bon/orm@64/diff"]["ci_half_width"] == pytest.approx(0.1 * 2 / 3 + 0.05 / 3)  # bare ci_low
    assert rows["headline/best_prover_k"]["range"] == 12
    # CI bounds are no rows of their own; the study's name is not a headline
    assert not [k for k in rows if "ci_" in k] and "experiment" not in rows


def test_a_headline_missing_from_a_study_is_compared_over_the_others_or_listed_alone(tmp_path):
    s = study_spread(studies(tmp_path, SEEDS))
    rows = {r["key"]: r for r in s.spread.iter_rows(named=True)}
    # null (an RL arm without an accuracy) is missing; in one study only: not a row, but named
    assert "rl/pav/final_acc_sampled" not in rows and s.alone == {"rl/pav/final_acc_sampled": "didactic_seed0",
                                                                 "oracle_k/rl/base_k1/acc": "didactic_seed2"}
    text = spread_markdown(s.spread, s.agreement, s.alone)
    assert "`oracle_k/rl/base_k1/acc` (didactic_seed2)" in text
    heads = read_headlines(studies(tmp_path / "two", [SEEDS[0], {**SEEDS[1], "pool/base/acc": float("nan")}, SEEDS[2]]))
    acc = headline_spread(heads).filter(key="pool/base/acc").row(0, named=True)
    assert acc["n_studies"] == 2 and acc["mean"] == pytest.approx(0.5) and acc["didactic_seed1"] is None


def test_a_verdict_that_flips_across_seeds_is_shown_disagreeing_first(tmp_path):
    heads = read_headlines(studies(tmp_path, SEEDS))
    agree = headline_agreement(heads)
    assert agree["key"].to_list() == ["headline/val_choice/prover", "quality/best/brier"]
    assert agree["agree"].to_list() == [False, True]
    text = spread_markdown(headline_spread(heads), agree)
    assert "1 of 2 differ across the studies." in text
    assert "| `headline/val_choice/prover` | **no** | base_k4 | base_k16 | base_k4 |" in text
    assert "| `pool/base/acc` | 3 | 0.5 | 0.1 | 0.4 | 0.6 | 0.2 | 0.0767 | 0.4 | 0.5 | 0.6 |" in text


def test_half_width_pairs_a_bare_ci_with_acc_before_diff():
    # oracle_k rows hold acc with ci_low/ci_high and diff with diff_ci_low/diff_ci_high
    head = {"o/acc": 0.5, "o/ci_low": 0.4, "o/ci_high": 0.6, "o/diff": 0.1, "o/diff_ci_low": -0.1, "o/diff_ci_high": 0.3,
            "o2/acc": 0.5, "o2/ci_low": 0.4, "o2/ci_high": 0.6, "o2/diff": 0.1,
            "e@8": 2.0, "e_ci_low@8": 1.0, "e_ci_high@8": math.inf}
    assert half_width("o/acc", head) == pytest.approx(0.1) and half_width("o/diff", head) == pytest.approx(0.2)
    assert half_width("o2/diff", head) is None  # acc's CI is not diff's
    assert half_width("e@8", head) == math.inf


def test_errors_name_the_study_path(tmp_path):
    dirs = studies(tmp_path, SEEDS[:2])
    with pytest.raises(SpreadError, match="at least two"):
        read_headlines(dirs[:1])
    (dirs[1] / "report" / "headline.json").unlink()
    with pytest.raises(SpreadError, match=rf"{dirs[1] / 'report' / 'headline.json'}.*report job has not run"):
        read_headlines(dirs)
    (dirs[1] / "report" / "headline.json").write_text("{not json")
    with pytest.raises(SpreadError, match=rf"{dirs[1] / 'report' / 'headline.json'}: not readable as JSON"):
        read_headlines(dirs)


def test_studies_of_different_tasks_are_refused_other_settings_shown(tmp_path):
    config = "name: didactic_seed{i}\nseed: {i}\ntask:\n  name: {task}\n  n_test: 256\n"
    dirs = studies(tmp_path, SEEDS, [config.format(i=i, task="arith") for i in range(3)])
    s = study_spread(dirs)
    assert s.settings == {"seed": {"didactic_seed0": 0, "didactic_seed1": 1, "didactic_seed2": 2}}
    assert "- `seed`: didactic_seed0=0, didactic_seed1=1, didactic_seed2=2" in spread_markdown(s.spread, s.agreement,
                                                                                                settings=s.settings)
    (dirs[2] / "report" / "config.yaml").write_text(config.format(i=2, task="countdown"))
    with pytest.raises(SpreadError, match="different tasks: task.name: .*didactic_seed2=countdown"):
        study_spread(dirs)


def test_cli_spread_writes_markdown_and_json_beside_the_studies(tmp_path, capsys):
    studies(tmp_path, SEEDS)
    assert cli.main(["spread", "didactic_seed0", "didactic_seed1", "didactic_seed2", "-d", str(tmp_path)]) == 0
    out = tmp_path / "results" / "didactic_seed_spread"  # the names' common prefix
    md = (out / "spread.md").read_text()
    assert md in capsys.readouterr().out and "# Headline spread over 3 studies" in md
    data = json.loads((out / "spread.json").read_text())
    assert data["studies"]["didactic_seed1"] == str(tmp_path / "results" / "didactic_seed1")
    acc = next(r for r in data["spread"] if r["key"] == "pool/base/acc")
    assert acc["sd"] == pytest.approx(0.1) and acc["didactic_seed2"] == pytest.approx(0.6)
    assert {r["key"]: r["agree"] for r in data["agreement"]} == {"headline/val_choice/prover": False,
                                                                "quality/best/brier": True}
    # a directory and --out; a study without headline.json fails naming it
    assert cli.main(["spread", str(tmp_path / "results" / "didactic_seed0"), "didactic_seed1", "-d", str(tmp_path),
                     "-o", "cmp"]) == 0
    assert (tmp_path / "cmp" / "spread.json").exists()
    assert cli.main(["spread", "didactic_seed0", "didactic_seed9", "-d", str(tmp_path)]) == 1
    assert "didactic_seed9/report/headline.json" in capsys.readouterr().err
