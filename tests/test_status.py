import time

from pavflow import status

SNAKEMAKE_LOG = """Building DAG of jobs...
[Tue Dec  1 23:14:23 2026]
localrule problems:
    output: results/smoke/problems.parquet
    log: results/smoke/logs/problems/problems.log
    jobid: 3
    reason: Missing output files: results/smoke/problems.parquet
[Tue Dec  1 23:14:28 2026]
Finished jobid: 3 (Rule: problems)
1 of 42 steps (2%) done
[Tue Dec  1 23:14:29 2026]
localrule sft:
    output: results/smoke/policies/base/model
    log: results/smoke/logs/sft/base.log
    jobid: 4
    wildcards: policy=base
[Tue Dec  1 23:14:29 2026]
localrule rl:
    log: results/smoke/logs/rl/outcome-0.log
    jobid: 34
    wildcards: arm=outcome, rl_seed=0
[Tue Dec  1 23:14:30 2026]
localrule labels:
    log: results/smoke/logs/labels/base_k1.log
    jobid: 9
    wildcards: prover=base_k1
[Tue Dec  1 23:14:40 2026]
Error in rule labels:
    jobid: 9
"""


def test_running_jobs_with_their_progress(tmp_path):
    (tmp_path / ".snakemake" / "log").mkdir(parents=True)
    log = tmp_path / ".snakemake" / "log" / "2026-12-01T231421.snakemake.log"
    log.write_text(SNAKEMAKE_LOG)
    (tmp_path / "results/smoke/logs/sft").mkdir(parents=True)
    (tmp_path / "results/smoke/logs/rl").mkdir(parents=True)
    (tmp_path / "results/smoke/logs/sft/base.log").write_text(
        "[2026-12-01 23:14:31,000][pavflow][INFO] - sft sft-base: experiment smoke\n"
        "sft base steps:   0%|          | 0/20 [00:00<?, ?it/s]\r"
        "sft base steps:  45%|####5     | 9/20 [00:10<00:12,  1.10it/s]")
    (tmp_path / "results/smoke/logs/rl/outcome-0.log").write_text(
        "rl updates: 100%|##########| 2/2 [00:20<00:00, 10.0s/it]\n"
        "[2026-12-01 23:15:01,000][pavflow][INFO] - rl-outcome-0 done: acc=0.5, wall_s=30\n")
    study = status.read_study(tmp_path, now=time.time())
    assert (study.steps_done, study.steps_total) == (1, 42)
    states = {j.rule: j.state for j in study.jobs.values()}
    assert states == {"problems": "done", "sft": "running", "rl": "finishing", "labels": "failed"}
    sft = study.jobs[4]
    assert (sft.wildcards, sft.bar.desc, sft.bar.n, sft.bar.total, sft.bar.eta_s) == ("policy=base", "sft base steps",
                                                                                      9, 20, 12.0)
    text = "\n".join(status.lines(study, now=sft.started + 60))
    assert text.startswith("1 of 42 steps done; 2 running, 1 failed")
    assert "sft policy=base" in text and "sft base steps: 9/20, ETA" in text and "1m00s" in text
    assert "logged done" in text and "failed    labels prover=base_k1  log: results/smoke/logs/labels/base_k1.log" in text


def test_no_run_yet(tmp_path):
    assert status.read_study(tmp_path) is None
