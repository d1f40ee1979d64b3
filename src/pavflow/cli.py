"""`pavflow`: the common verbs over Snakemake, which stays the engine (each verb prints the snakemake
command it runs, so anything it does can be typed by hand, with more of Snakemake's options).

    pavflow run smoke                                  # snakemake --cores all --config experiment=smoke
    pavflow run didactic sweep.prover_k=[1,4,12]       # Hydra overrides after the experiment
    pavflow what-reruns didactic search.alpha=0.5      # snakemake -n: the jobs a change would run
    pavflow status --watch                             # one line per running job: step/total, ETA
    pavflow report smoke                               # snakemake --report results/smoke/report.html
    pavflow resume smoke                               # after a crash: unlock if no live run holds the lock, rerun incomplete jobs
    pavflow stage labels experiment=smoke job.prover=base_k4   # one stage by hand (python -m pavflow.stages)
    pavflow spread didactic_seed0 didactic_seed1 didactic_seed2   # how much each headline moves across studies

Arguments after `--` go to snakemake unchanged, e.g. `pavflow run smoke -- --keep-going`.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from pavflow import status

REPO = Path(__file__).resolve().parents[2]  # the checkout holding the Snakefile (editable installs)
QUIET_S = 30.0  # `run` prints the running jobs' progress after this long without Snakemake output


def snakefile_args() -> list[str]:
    """`-s <checkout>/Snakefile` unless the current directory has a Snakefile (Snakemake's default)."""
    if Path("Snakefile").exists() or not (REPO / "Snakefile").exists():
        return []
    return ["-s", str(REPO / "Snakefile")]


def config_args(experiment: str | None, overrides: list[str]) -> list[str]:
    out = ([f"experiment={experiment}"] if experiment else []) + ([f"overrides={json.dumps(overrides)}"] if overrides else [])
    return ["--config", *out] if out else []


def snakemake(args: argparse.Namespace, *extra: str) -> list[str]:
    """The snakemake command line of a verb (without the interpreter)."""
    where = ["-d", args.directory] if args.directory != "." else []
    return ["snakemake", *snakefile_args(), *where, *extra,
            *config_args(args.experiment, args.overrides), *args.snakemake]


def execute(cmd: list[str], workdir: Path, watch: bool = False) -> int:
    """Print `cmd` and run it (snakemake through this interpreter); with `watch`, print the running
    jobs' progress (pavflow.status) whenever Snakemake has been quiet for QUIET_S."""
    print("$ " + shlex.join(cmd), flush=True)
    argv = [sys.executable, "-m", "snakemake", *cmd[1:]]
    if not watch:
        return subprocess.call(argv)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    last, stop = [time.monotonic()], threading.Event()

    def ticker():
        while not stop.wait(2.0):
            if time.monotonic() - last[0] < QUIET_S:
                continue
            study = status.read_study(workdir)
            if study is not None and study.running:
                print("\n".join("  | " + line for line in status.lines(study)), flush=True)
            last[0] = time.monotonic()

    threading.Thread(target=ticker, daemon=True).start()
    try:
        for line in proc.stdout:
            last[0] = time.monotonic()
            print(line, end="", flush=True)
        return proc.wait()
    finally:
        stop.set()


def cmd_run(args) -> int:
    return execute(snakemake(args, "--cores", args.cores), Path(args.directory), watch=not args.no_watch)


def cmd_what_reruns(args) -> int:
    return execute(snakemake(args, "-n"), Path(args.directory))


def cmd_report(args) -> int:
    out = args.out or f"results/{args.experiment or 'didactic'}/report.html"
    rc = execute(snakemake(args, "--report", out), Path(args.directory))
    if rc == 0:
        print(f"report: {Path(args.directory, out).resolve()}")
    return rc


def cmd_status(args) -> int:
    workdir = Path(args.directory)
    while True:
        study = status.read_study(workdir)
        if study is None:
            print(f"no Snakemake run in {workdir.resolve()} (.snakemake/log/ is empty)", file=sys.stderr)
            return 1
        text = "\n".join(status.lines(study))
        if not args.watch:
            print(text)
            return 0
        if sys.stdout.isatty():
            print("\033[H\033[J", end="")
        print(time.strftime("%H:%M:%S ") + text, flush=True)
        time.sleep(args.watch)


def cmd_resume(args) -> int:
    """After a crash or kill: pavflow.lock.resume refuses while a live run holds the directory's lock,
    else removes the stale lock and reruns the incomplete jobs (`python -m pavflow.lock`)."""
    from pavflow import lock
    cmd = snakemake(args, *(("--cores", args.cores) if args.cores != "all" else ()))
    print("$ " + shlex.join(["python", "-m", "pavflow.lock", *cmd[1:], *(["--force"] if args.force else [])]), flush=True)
    try:
        return lock.resume(cmd[1:], force=args.force)
    except lock.LockHeld as e:
        print(f"pavflow: {e}", file=sys.stderr)
        return 1


def cmd_stage(args) -> int:
    cmd = [sys.executable, "-m", "pavflow.stages", *args.rest]
    print("$ " + shlex.join(["python", *cmd[1:]]), flush=True)
    return subprocess.call(cmd)


def study_dir(arg: str, directory: str = ".") -> Path:
    """A study on the command line: a path (it has a '/' or is a directory) or a name, results/<name>."""
    p = Path(directory, arg)
    return p if "/" in arg or p.is_dir() else Path(directory, "results", arg)


def spread_out(dirs: list[Path]) -> Path:
    """`spread`'s default output: <results>/<the study names' common prefix, else the first name>_spread."""
    prefix = os.path.commonprefix([d.name for d in dirs]).rstrip("_-.") or dirs[0].name
    return dirs[0].parent / f"{prefix}_spread"


def cmd_spread(args) -> int:
    from pavflow.data import write_text
    from pavflow.report.spread import SpreadError, spread_markdown, study_spread
    dirs = [study_dir(a, args.directory) for a in args.studies]
    try:
        s = study_spread(dirs)
    except SpreadError as e:
        print(f"pavflow: {e}", file=sys.stderr)
        return 1
    out = Path(args.directory, args.out) if args.out else spread_out(dirs)
    text = spread_markdown(s.spread, s.agreement, s.alone, s.settings)
    write_text(out / "spread.md", text)
    write_text(out / "spread.json", json.dumps(s.as_dict(), indent=2))
    print(text + f"\nspread: {out.resolve()}/spread.md, spread.json")
    return 0


def stage_help_argv(name: str, argv: list[str]) -> list[str]:
    """`python -m pavflow.stages <stage> ... --help`: the argv that makes Hydra's help short, with the
    stage's name as the app name and a template naming the config its outputs depend on (registry
    params) with this composition's values, instead of Hydra's default (every group, the whole config
    and shell-completion hints). Overrides go first: argparse reads them in one run."""
    from hydra import compose, initialize_config_dir

    from pavflow.config import CONF_DIR, register
    from pavflow.registry import STAGES, params
    args = argv[1:]
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    stage = STAGES[name]
    register()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    job = {w: cfg.job[w] if cfg.job[w] is not None else f"<{w}>" for w in stage.wildcards}
    lines = [f"{stage.name}: one stage of the pavflow DAG (pavflow.registry; Snakemake rule {stage.name}).", "",
             f"Usage: pavflow stage {stage.name} [key=value ...]   (python -m pavflow.stages {stage.name} ...)",
             "  e.g. pavflow stage " + " ".join([stage.name, "experiment=smoke", *(f"job.{w}=..." for w in stage.wildcards)]),
             ""]
    if stage.wildcards:
        lines += ["Its jobs: " + ", ".join(f"job.{w}" for w in stage.wildcards) + " (this study: " +
                  "; ".join(" ".join(f"{w}={j[w]}" for w in stage.wildcards) for j in stage.jobs(cfg)[:6]) + ")", ""]
    lines += ["Config its outputs depend on (changing one reruns it), with this composition's values:"]
    for key, value in params(stage.name, cfg, job).items():
        if key == "code":
            continue
        if isinstance(value, dict):
            lines.append(f"  {key}: " + ", ".join(f"{k}={_short(v)}" for k, v in value.items()))
        else:
            lines.append(f"  {key}={_short(value)}")
    lines += ["", "Every other key: conf/ (one group per concern); the whole config: --cfg job; Hydra's flags: "
              "--hydra-help."]
    text = "\n".join(lines).replace("\\", "\\\\").replace("'", "\\'").replace("$", "$$")
    return [argv[0], *[a for a in args if not a.startswith("-")], f"hydra.help.app_name={stage.name}",
            f"hydra.help.template='{text}'", *[a for a in args if a.startswith("-")]]


def _short(v, width: int = 48) -> str:
    t = str(v)
    return t if len(t) <= width else t[:width - 1] + "…"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pavflow", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True, metavar="verb")

    def study(name, fn, help_, **kw):
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("experiment", nargs="?", help="preset in conf/experiment/ (Snakemake's default: didactic)")
        s.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. sweep.prover_k=[1,4,12]")
        s.add_argument("-d", "--directory", default=".", help="Snakemake's working directory (default: .)")
        s.set_defaults(fn=fn, snakemake=[])
        return s

    r = study("run", cmd_run, "run the study (snakemake --cores N --config ...)")
    r.add_argument("-c", "--cores", default="all")
    r.add_argument("--no-watch", action="store_true", help=f"no progress lines after {QUIET_S:.0f} s of quiet")
    study("what-reruns", cmd_what_reruns, "the jobs a run would execute, and why (snakemake -n)")
    rep = study("report", cmd_report, "the Snakemake HTML report (snakemake --report)")
    rep.add_argument("-o", "--out", help="report path (default: results/<experiment>/report.html)")
    res = study("resume", cmd_resume, "after a crash: unlock if safe, rerun incomplete jobs")
    res.add_argument("-c", "--cores", default="all")
    res.add_argument("--force", action="store_true", help="unlock even when the lock's holder cannot be checked "
                     "(another host's run)")
    st = sub.add_parser("status", help="one line per running job: stage, step/total, ETA (reads the logs)")
    st.add_argument("-d", "--directory", default=".")
    st.add_argument("--watch", type=float, nargs="?", const=2.0, default=None, metavar="SECONDS",
                    help="redraw every SECONDS (default 2)")
    st.set_defaults(fn=cmd_status)
    sp = sub.add_parser("spread", help="how much each headline.json number moves across studies (e.g. seeds)",
                        description="Per headline of the studies' report/headline.json: mean, sd, range beside the "
                        "studies' mean 95% CI half-width; per string headline: whether the studies agree. Writes "
                        "spread.md and spread.json.")
    sp.add_argument("studies", nargs="+", help="study names (results/<name>) or directories, at least two")
    sp.add_argument("-d", "--directory", default=".", help="where results/ is (default: .)")
    sp.add_argument("-o", "--out", help="output directory (default: results/<the names' common prefix>_spread)")
    sp.set_defaults(fn=cmd_spread)
    sg = sub.add_parser("stage", help="run one stage by hand: pavflow stage <stage> [overrides] (--help: its keys)",
                        add_help=False)
    sg.add_argument("rest", nargs=argparse.REMAINDER)
    sg.set_defaults(fn=cmd_stage)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv and (not argv or argv[0] != "stage"):
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = parser().parse_args(argv)
    if extra:
        args.snakemake = extra
    if getattr(args, "experiment", None) and "=" in args.experiment:  # overrides without an experiment
        args.overrides, args.experiment = [args.experiment, *args.overrides], None
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
