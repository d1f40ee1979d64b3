"""Tasks by name. A task turns config into problems, prompts, steps and grades."""
from __future__ import annotations

from omegaconf import OmegaConf

from pavflow.tasks.arith import Arith, ArithSpec
from pavflow.tasks.base import Problem, Task
from pavflow.tasks.countdown import Countdown, CountdownSpec

__all__ = ["Arith", "ArithSpec", "Countdown", "CountdownSpec", "Problem", "Task", "make_task", "check_task"]

KNOWN = ["arith", "countdown", "gsm_symbolic", "reasoning_gym", "jsonl", "parquet"]


def make_task(task_cfg, seed: int, policy_cfg) -> Task:
    """Build the task named by `task_cfg.name` (a config mapping) for the policy `policy_cfg` that will
    read its prompts: prompts of the real-data tasks are wrapped in that policy's chat template when it
    has one (pavflow.policy.source.ChatFormatter). The one place a prompt's text is decided."""
    name = task_cfg["name"]
    sizes = {"train": task_cfg["n_train"], "val": task_cfg["n_val"], "test": task_cfg["n_test"]}
    if name == "arith":
        spec = ArithSpec(**{k: task_cfg[k] for k in ArithSpec.__dataclass_fields__})
        return Arith(spec, sizes, seed)
    if name == "countdown":
        spec = CountdownSpec(**{k: task_cfg[k] for k in CountdownSpec.__dataclass_fields__})
        return Countdown(spec, sizes, seed)
    fmt = None
    if policy_cfg["kind"] == "hf" and policy_cfg["chat_template"]:
        from pavflow.policy.source import ChatFormatter
        fmt = ChatFormatter(policy_cfg)
    options = task_cfg.get("options") or {}
    if OmegaConf.is_config(options):
        options = OmegaConf.to_container(options, resolve=True)
    if name == "gsm_symbolic":
        from pavflow.tasks.rgym import GSMSymbolic
        return GSMSymbolic(sizes, seed, options, formatter=fmt)
    if name == "reasoning_gym":
        from pavflow.tasks.rgym import ReasoningGym
        return ReasoningGym(task_cfg["dataset"], sizes, seed, options, formatter=fmt)
    if name in ("jsonl", "parquet"):
        from pavflow.tasks.files import FileTask
        return FileTask(task_cfg["path"], name, sizes, seed, formatter=fmt)
    raise ValueError(f"task.name: unknown task {name!r}; known: {KNOWN}")


def check_task(task_cfg, seed: int, policy_cfg) -> Task:
    """Build every split of the task now, so bad data (a malformed row, a missing column, too few
    problems) fails when the DAG is built, before any job runs; the task. Raises TaskDataError."""
    task = make_task(task_cfg, seed, policy_cfg)
    check = getattr(task, "check", None)
    if check is not None:
        check()
    return task
