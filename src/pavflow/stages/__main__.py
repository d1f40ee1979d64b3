"""`python -m pavflow.stages <stage> [hydra overrides]`: run one registry stage (pavflow.registry) by
name, e.g. `python -m pavflow.stages labels experiment=didactic job.prover=base_k4`. The workflow runs
every job this way."""
import importlib
import sys

from pavflow.registry import STAGES


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        got = sys.argv[1] if len(sys.argv) > 1 else "nothing"
        sys.exit(f"usage: python -m pavflow.stages <stage> [overrides]; got {got!r}; stages: {', '.join(STAGES)}")
    name = sys.argv[1]
    sys.argv = [sys.argv[0], *sys.argv[2:], f"job.stage={name}"]
    if "--help" in sys.argv or "-h" in sys.argv:  # short, naming the stage's own keys
        from pavflow.cli import stage_help_argv
        sys.argv = stage_help_argv(name, sys.argv)
    importlib.import_module(STAGES[name].entry).main()


if __name__ == "__main__":
    main()
