"""The Slurm workflow profile (profiles/slurm): the sbatch request of each stage (GPU, memory,
wall time) as the executor plugin builds it, recorded by a stand-in `sbatch`; and, marked `slurm`, the
smoke experiment run through the plugin on a one-node Slurm cluster brought up on this machine, whose
tables must equal a local run's.

The cluster test needs root and Debian's slurmctld, slurmd, slurm-client and munge (`.ci/run`
installs them). Without them it skips, except in CI (CI=true), where it fails instead."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from conftest import REPO, job_stats, run_snakemake, study_jobs
from pavflow.config import compose
from pavflow.tracking import find_offline_runs

PROFILE = REPO / "profiles" / "slurm"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# What a cluster without accounting needs (see README, "Running on a cluster"): sacct cannot answer
# there, so job states come from squeue; jobs are not charged to an account.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-no-account",
                 "--slurm-init-seconds-before-status-checks", "2"]
SLURM_TIMEOUT_S = 1500  # hard limit on the cluster run; the run takes minutes


# --- the sbatch call, recorded by a stand-in ------------------------------------------------------

FAKE_SBATCH = """#!{python}
import json, os, sys
with open(os.environ["PAVFLOW_SBATCH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit("stand-in sbatch: recorded, not submitted")
"""


def sbatch_options(argv: list[str]) -> dict[str, str]:
    """--opt=value and the options the plugin passes with a separate value, as a dict."""
    with_value = {"--job-name", "--output", "--comment", "-p", "-A", "-t", "--mem", "--mem-per-cpu",
                  "-D", "-C", "--clusters"}
    out, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and "=" in a:
            k, v = a.split("=", 1)
            out[k] = v
        elif a in with_value:
            out[a] = argv[i + 1]
            i += 1
        else:
            out[a] = ""
        i += 1
    return out


def recorded_sbatch(tmp_path: Path, workdir: Path, overrides: list[str], *args: str) -> dict[str, dict]:
    """Run the slurm profile with stand-ins for the Slurm commands; the sbatch options of every job
    it tried to submit, by the job's comment (rule_<rule>[_wildcards_<values>])."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch.jsonl"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(python=sys.executable))
    for tool in ("squeue", "sacct", "sinfo", "scontrol", "scancel"):  # never reach a real cluster
        (bin_dir / tool).write_text("#!/bin/sh\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PAVFLOW_SBATCH_LOG": str(log)}
    log.unlink(missing_ok=True)
    out = run_snakemake(workdir, "--workflow-profile", str(PROFILE), *NO_ACCOUNTING,
                        "--default-resources", "slurm_partition=gpu", *args, overrides=overrides,
                        env=env, timeout=300)
    assert log.exists(), (out.stdout + out.stderr)[-4000:]
    calls = [sbatch_options(json.loads(line)) for line in log.read_text().splitlines()]
    return {c["--comment"]: c for c in calls}


def test_sbatch_asks_for_gpus_memory_and_time_from_the_config(tmp_path):
    """A CUDA experiment: model stages ask for a GPU, the others do not; memory and wall time come
    from `resources`, with per-stage overrides."""
    workdir = tmp_path / "work"
    overrides = ["device=cuda", "resources.stages.sft.mem_mb=3000", "resources.stages.sft.runtime=30"]
    # a fresh study: only `problems` can be submitted (the stand-in refuses it)
    calls = recorded_sbatch(tmp_path, workdir, overrides)
    assert list(calls) == ["rule_problems"], calls
    problems = calls["rule_problems"]
    assert problems["--mem"] == "2000" and problems["-t"] == "10" and problems["-p"] == "gpu", problems
    assert "--gpus" not in problems and "--gres" not in problems, problems
    assert problems["--cpus-per-task"] == "1", problems
    # with the problems run locally, both SFT jobs are submitted next
    out = run_snakemake(workdir, "--cores", "1", "--until", "problems", overrides=overrides)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    calls = recorded_sbatch(tmp_path, workdir, overrides, "--keep-going")
    assert sorted(calls) == ["rule_sft_wildcards_base", "rule_sft_wildcards_weak"], calls
    for sft in calls.values():
        assert sft["--gpus"] == "1", sft
        assert sft["--mem"] == "3000" and sft["-t"] == "30", sft
    # the same study on the CPU asks for no GPU
    calls = recorded_sbatch(tmp_path, workdir, ["device=cpu"], "--keep-going")
    assert sorted(calls) == ["rule_sft_wildcards_base", "rule_sft_wildcards_weak"], calls
    for sft in calls.values():
        assert "--gpus" not in sft and sft["--mem"] == "2000" and sft["-t"] == "10", sft


# --- a one-node Slurm cluster on this machine -----------------------------------------------------

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "srun")


def missing_prerequisites() -> list[str]:
    missing = [f"{d} (Debian: apt-get install slurmctld slurmd slurm-client munge)"
               for d in DAEMONS if shutil.which(d) is None]
    if os.geteuid() != 0:
        missing.append("root (the daemons and /etc/slurm/slurm.conf need it)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        missing.append("snakemake-executor-plugin-slurm (pip install -e '.[test]')")
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Descendants of a process (e.g. slurmd's slurmstepd), read from /proc."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids + [d for k in kids for d in children(k)]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


class OneNodeCluster:
    """munged, slurmctld and slurmd in the foreground, configured from a private directory; the
    config also goes to /etc/slurm/slurm.conf (the plugin's job-step helper strips SLURM_CONF), and
    whatever was there is put back by stop()."""
    CONF = Path("/etc/slurm/slurm.conf")

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pavflow-slurm-"))
        self.dir.chmod(0o755)  # munged wants its socket's directory reachable by everyone
        self.procs: dict[str, subprocess.Popen] = {}
        self.backup = self.CONF.read_bytes() if self.CONF.exists() else None
        self.made_conf_dir = not self.CONF.parent.exists()

    def config(self) -> str:
        d, mem_mb = self.dir, 16000
        return "\n".join([
            "ClusterName=pavflowtest", "SlurmctldHost=localhost(127.0.0.1)",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={d}/munge.sock",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool",
            f"SlurmctldPidFile={d}/slurmctld.pid", f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmctldLogFile={d}/slurmctld.log", f"SlurmdLogFile={d}/slurmd.log",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/builtin", "MpiDefault=none", "ReturnToService=2",
            "MinJobAge=3600",  # finished jobs stay visible to squeue (no accounting: no sacct)
            # The node: 4 CPUs (over-committing this machine, so that up to 4 tiny jobs overlap their
            # start-up and the executor's status polling), memory for 8 smoke jobs (2000 MB each).
            "SlurmdParameters=config_overrides",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory={mem_mb} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP", ""])

    def start(self) -> None:
        d = self.dir
        for sub in ("state", "spool"):
            (d / sub).mkdir()
        (d / "munge.key").write_bytes(os.urandom(1024))
        (d / "munge.key").chmod(0o600)
        text = self.config()
        (d / "slurm.conf").write_text(text)
        self.CONF.parent.mkdir(parents=True, exist_ok=True)
        self.CONF.write_text(text)
        self.spawn("munged", ["munged", "-F", f"--socket={d}/munge.sock", f"--key-file={d}/munge.key",
                              f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed",
                              f"--log-file={d}/munged.log"])
        self.wait_for(lambda: (d / "munge.sock").exists(), "munged's socket")
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(d / "slurm.conf")])
        self.spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(d / "slurm.conf")])
        self.wait_for(lambda: self.cli("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", "an idle node")

    def spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.dir / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, ready, what: str, limit_s: float = 90) -> None:
        """Poll until ready() (start-up, not a measurement); fail with the daemons' output."""
        deadline = time.monotonic() + limit_s
        while not ready():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"Slurm test cluster: no {what} (exited: {dead})\n{self.logs()}")
            time.sleep(0.5)

    def cli(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}"
                         for f in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")))

    def jobs(self) -> list[dict]:
        out = self.cli("squeue", "--states=all", "-h", "-o", "%i|%j|%k|%T")
        assert out.returncode == 0, out.stderr
        return [dict(zip(("id", "name", "comment", "state"), line.split("|")))
                for line in out.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancel what is left, stop exactly the daemons started here (and their children), put
        /etc/slurm/slurm.conf back. Safe to call after a failed start."""
        try:
            if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
                self.cli("scancel", "--user", "root")
                deadline = time.monotonic() + 30
                while any(j["state"] in ("RUNNING", "COMPLETING") for j in self.jobs()) \
                        and time.monotonic() < deadline:
                    time.sleep(1)
        except Exception:
            pass
        finally:
            kids = [k for p in self.procs.values() for k in children(p.pid)]
            for name in ("slurmd", "slurmctld", "munged"):
                p = self.procs.get(name)
                if p is None:
                    continue
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=20)
            for k in kids:
                if alive(k):
                    os.kill(k, signal.SIGKILL)
            if self.backup is not None:
                self.CONF.write_bytes(self.backup)
            else:
                self.CONF.unlink(missing_ok=True)
                if self.made_conf_dir:
                    shutil.rmtree(self.CONF.parent, ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm_cluster():
    missing = missing_prerequisites()
    if missing:
        msg = "no one-node Slurm cluster possible here; missing: " + "; ".join(missing)
        if IN_CI:
            pytest.fail(msg + " (CI must run this test: .ci/run installs them)")
        pytest.skip(msg)
    cluster = OneNodeCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# The cluster run sweeps one prover and one RL arm: every rule of the smoke DAG still runs as a Slurm
# job, with half the jobs (the executor's status polling backs off by 10 s per idle check, so a
# cluster run of the whole smoke sweep took five minutes of the suite).
SLIM = ["sweep.prover_k=[4]", "sweep.cross_provers=[]", "sweep.label_variants=[]", "rl.arms=[pav]"]


@pytest.fixture(scope="module")
def smoke_on_slurm(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke_slurm")
    t0 = time.monotonic()
    out = run_snakemake(workdir, "--workflow-profile", str(PROFILE), *NO_ACCOUNTING, overrides=SLIM,
                        timeout=SLURM_TIMEOUT_S)
    print(f"smoke through Slurm: {time.monotonic() - t0:.0f} s")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:] + "\n" + slurm_cluster.logs()
    return workdir, text, slurm_cluster.jobs()


def our_jobs(smoke_on_slurm) -> list[dict]:
    """The cluster's jobs submitted by the smoke run (named by its Snakemake run ID)."""
    _, text, jobs = smoke_on_slurm
    run_id = re.search(r"SLURM run ID: (\S+)", text).group(1)
    return [j for j in jobs if j["name"] == run_id]


@pytest.mark.slurm
def test_every_smoke_job_ran_as_a_slurm_job(smoke_on_slurm, tmp_path):
    workdir, text, _ = smoke_on_slurm
    ours = our_jobs(smoke_on_slurm)
    assert ours and all(j["state"] == "COMPLETED" for j in ours), ours
    # the jobs Snakemake submitted are the jobs Slurm ran, each with its log kept
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", text))
    assert sorted(submitted) == sorted(j["id"] for j in ours)
    assert all(Path(log).exists() for log in submitted.values())
    # one Slurm job per job of the DAG; only the target rule `all` ran locally
    dry = run_snakemake(tmp_path, "-n", overrides=SLIM)  # every job of the DAG, from scratch, by rule
    assert dry.returncode == 0, dry.stderr[-3000:]
    expected = job_stats(dry.stdout + dry.stderr)
    del expected["all"]
    full = job_stats(run_snakemake(tmp_path, "-n").stdout)
    assert set(expected) == set(full) - {"all"}  # the slim sweep still runs every rule
    jobs_of = study_jobs(compose("smoke", SLIM))
    assert expected["verifier"] == len(jobs_of["verifiers"]) and expected["rl"] == len(jobs_of["rl_runs"])
    ran = Counter(re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", j["comment"]).group(1) for j in ours)
    assert ran == expected
    assert set(re.findall(r"^localrule (\w+):", text, re.M)) == {"all"}


@pytest.mark.slurm
def test_a_slurm_run_gives_the_local_tables(smoke_on_slurm, smoke_local):
    """Every table of a job whose config the slim sweep leaves alone (Snakemake, asked on the local run's
    directory, would not rerun it) has the content of the local run's table."""
    workdir, _, _ = smoke_on_slurm
    local_dir, cfg, local = smoke_local
    cluster_root = workdir / cfg.results_dir / cfg.name
    def outputs(*args: str) -> list[str]:  # declared outputs of the jobs a dry run lists
        dry = run_snakemake(local_dir, "-n", *args, overrides=SLIM)
        assert dry.returncode == 0, dry.stderr[-3000:]
        return [p.strip() for line in re.findall(r"^\s*output: (.+)$", dry.stdout, re.M) for p in line.split(",")]
    stale = outputs()  # jobs whose config the slim sweep changes: they would rerun on the local study
    kept = [o for o in outputs("--forceall") if o not in stale]
    prefix = f"{cfg.results_dir}/{cfg.name}/"
    tables = sorted(str(p.relative_to(cluster_root)) for p in cluster_root.rglob("*.parquet"))
    same = [t for t in tables if any(prefix + t == o or (prefix + t).startswith(o + "/") for o in kept)]
    assert {"problems.parquet", "rollouts/seeds.parquet", "rollouts/mc_base.parquet",
            "labels/base_k4.parquet"} <= set(same), same
    assert 10 < len(same) < len(tables)  # the val choice, the RL set and the report do change
    for rel in same:
        a, b = pl.read_parquet(local.root / rel), pl.read_parquet(cluster_root / rel)
        assert a.equals(b), rel
    # every cluster job left its W&B offline run next to the results (synced as in the README), named
    # as the same job's run in the local study
    runs = {r.name for r in find_offline_runs(cluster_root)}
    assert len(runs) == len(our_jobs(smoke_on_slurm))
    assert runs <= {r.name for r in find_offline_runs(local.root)}
