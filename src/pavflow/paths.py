"""Where every stage output lives under results/<experiment>/: one definition, used by the workflow
(with "{wildcard}" strings as arguments) and by the stages (with values)."""
from __future__ import annotations

from pathlib import Path


class Layout:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __getattr__(self, name):  # pragma: no cover - clearer error than AttributeError on a typo
        raise AttributeError(f"Layout has no output {name!r}")

    # problems and policies
    def problems(self) -> Path:
        return self.root / "problems.parquet"

    def policy(self, policy: str) -> Path:
        return self.root / "policies" / policy / "model"

    def policy_log(self, policy: str) -> Path:
        return self.root / "policies" / policy / "train_log.parquet"

    # rollouts: base-policy seeds and one MC pool per rollout policy
    def seeds(self) -> Path:
        return self.root / "rollouts" / "seeds.parquet"

    def mc(self, rollout_policy: str) -> Path:
        return self.root / "rollouts" / f"mc_{rollout_policy}.parquet"

    def continuations(self, rollout_policy: str) -> Path:
        """The MC pool's continuations as complete graded responses."""
        return self.root / "rollouts" / f"continuations_{rollout_policy}.parquet"

    def mc_fresh(self, rollout_policy: str) -> Path:
        """A second, independent MC pool on the val seeds' prefixes: the quality table's ground truth."""
        return self.root / "rollouts" / "fresh" / f"mc_{rollout_policy}.parquet"

    # labels and verifiers
    def labels(self, prover: str) -> Path:
        return self.root / "labels" / f"{prover}.parquet"

    def verifier(self, verifier: str) -> Path:
        return self.root / "verifiers" / verifier / "model"

    def verifier_metrics(self, verifier: str) -> Path:
        return self.root / "verifiers" / verifier / "metrics.parquet"

    def verifier_log(self, verifier: str) -> Path:
        return self.root / "verifiers" / verifier / "train_log.parquet"

    def quality(self) -> Path:
        """Every verifier's quality on held-out problems (one row per verifier and metric)."""
        return self.root / "verifiers" / "quality.parquet"

    def calibration(self) -> Path:
        return self.root / "verifiers" / "calibration.parquet"

    # search: the base policy's sampled pool on the search split, then one table per method
    def pool(self) -> Path:
        return self.root / "search" / "pool.parquet"

    def search(self, method: str) -> Path:
        return self.root / "search" / f"{method}.parquet"

    # RL, its rejection-fine-tuned initial policy, and the report
    def rl(self, arm: str, seed) -> Path:
        return self.root / "rl" / f"{arm}_s{seed}.parquet"

    def rft_policy(self) -> Path:
        return self.root / "rl" / "rft" / "model"

    def rft_log(self) -> Path:
        return self.root / "rl" / "rft" / "train_log.parquet"

    def report(self) -> Path:
        return self.root / "report"

    def checkpoint(self, job: str) -> Path:
        """Resume state of a running training job (sft, verifier, rl); removed when the job ends."""
        return self.root / "checkpoints" / f"{job}.pt"

    def logs(self) -> Path:
        return self.root / "logs"

    def wandb(self) -> Path:
        return self.root / "wandb"
