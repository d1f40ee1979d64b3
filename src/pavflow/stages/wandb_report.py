"""A W&B Report of a study's panels, on demand:

    python -m pavflow.stages.wandb_report experiment=<name> [hydra overrides] [--entity E]

after `wandb sync results/<name>/wandb/offline-run-*`. It needs the `wandb-report` extra
(`pip install -e '.[wandb-report]'`, i.e. wandb-workspaces), a reachable W&B server (WANDB_BASE_URL,
default api.wandb.ai) and an API key. Without any of them, or with WANDB_MODE=offline, it says
which one is missing and exits 0: a study never depends on a server.
"""
from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

from pavflow.config import ConfigError, compose
from pavflow.names import SEARCH_METHODS
from pavflow.stages.common import ACC_BY_BUDGET, ACC_BY_TOKENS, BUDGET, GEN_TOKENS

CONNECT_TIMEOUT_S = 3.0
SEARCH_JOBS = ["search_bon", "search_beam"]  # the job types that log accuracy against budget and tokens


def build_report(cfg, entity: str):
    """The report: one panel grid per part of the study, each over this experiment's runs (W&B group)
    of one job type, plotting the metrics the stages log against the figures' axes."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    def runs(job_type: str | list[str], name: str):
        jt = expr.Metric("JobType")
        return wr.Runset(entity=entity, project=cfg.tracking.project, name=name,
                         filters=[expr.Metric("Group") == cfg.name,
                                  jt.isin(job_type) if isinstance(job_type, list) else jt == job_type])

    def grid(job_type: str, name: str, *panels):
        return wr.PanelGrid(runsets=[runs(job_type, name)], panels=list(panels))

    return wr.Report(
        entity=entity, project=cfg.tracking.project, title=f"pavflow: {cfg.name}",
        description="Process advantage verifiers (Setlur et al., 2024): accuracy vs test-time compute per "
                    "verifier, the prover-K curve, online RL, verifier quality.",
        blocks=[
            wr.P(f"Runs of experiment {cfg.name} (W&B group), one per pipeline job; the same tables with 95% "
                 f"CIs and every figure are in the Snakemake report: snakemake --report "
                 f"results/{cfg.name}/report.html --config experiment={cfg.name}"),
            wr.H2("Accuracy vs test-time compute"),
            grid(SEARCH_JOBS, "search jobs",
                 wr.LinePlot(title="accuracy vs budget N", x=BUDGET, log_x=True, title_x="budget N",
                             y=[ACC_BY_BUDGET + m for m in SEARCH_METHODS], title_y="test accuracy"),
                 wr.LinePlot(title="accuracy vs generated tokens", x=GEN_TOKENS, log_x=True,
                             title_x="mean generated tokens per problem",
                             y=[ACC_BY_TOKENS + m for m in SEARCH_METHODS], title_y="test accuracy")),
            wr.H2("Prover K, and every search configuration with 95% CIs"),
            grid("report", "report job", wr.WeavePanelSummaryTable(table_name="report/per_k"),
                 wr.WeavePanelSummaryTable(table_name="report/per_budget")),
            wr.H2("Online RL"),
            grid("rl", "rl jobs",
                 wr.LinePlot(title="test accuracy (sampled) vs samples seen", x="rl/samples_seen",
                             y=["rl/test_acc_sampled"], title_x="training samples seen"),
                 wr.LinePlot(title="test accuracy (greedy) vs samples seen", x="rl/samples_seen",
                             y=["rl/test_acc_greedy"], title_x="training samples seen")),
            wr.H2("Verifier quality"),
            grid("verifier", "verifier jobs",
                 wr.BarPlot(title="Brier vs own targets (val)", metrics=["val_brier"]),
                 wr.BarPlot(title="outcome AUROC (val)", metrics=["val_outcome_auroc"]),
                 wr.LinePlot(title="training loss", x="verifier/step", y=["verifier/loss"])),
            wr.H2("Policies"),
            grid("sft", "sft jobs", wr.LinePlot(title="SFT loss", x="sft/step", y=["sft/loss"]),
                 wr.LinePlot(title="val sampled accuracy", x="sft/step", y=["sft/val_acc"])),
        ])


def server_reachable(base_url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    u = urlparse(base_url)
    try:
        socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    entity = None
    if "--entity" in args:
        i = args.index("--entity")
        entity, args = args[i + 1], args[:i] + args[i + 2:]
    exp = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), "didactic")
    try:
        cfg = compose(exp, [a for a in args if not a.startswith("experiment=")])
    except ConfigError as e:
        print(f"pavflow: {e}", file=sys.stderr)
        return 2
    base_url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")

    def skip(why: str) -> int:
        print(f"W&B Report for {cfg.name} skipped: {why}. The Snakemake report has the same figures: "
              f"snakemake --report results/{cfg.name}/report.html --config experiment={cfg.name}")
        return 0

    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return skip(f"WANDB_MODE={os.environ['WANDB_MODE']}")
    try:
        import wandb_workspaces  # noqa: F401
    except ImportError:
        return skip("wandb-workspaces is not installed (pip install -e '.[wandb-report]')")
    if not server_reachable(base_url):
        return skip(f"no W&B server reachable at {base_url}")
    import wandb
    try:
        api = wandb.Api(timeout=30)
        entity = entity or api.default_entity
    except Exception as e:  # no API key, or the server refused it
        return skip(f"W&B login failed ({type(e).__name__}: {e}); run `wandb login`")
    report = build_report(cfg, entity)
    report.save()
    print(f"W&B Report for {cfg.name}: {report.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
