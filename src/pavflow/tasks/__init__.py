"""Tasks by name. A task turns config into problems, prompts, steps and grades."""
from __future__ import annotations

from pavflow.tasks.arith import Arith, ArithSpec
from pavflow.tasks.base import Problem, Task

__all__ = ["Arith", "ArithSpec", "Problem", "Task", "make_task"]


def make_task(task_cfg, seed: int) -> Task:
    """Build the task named by `task_cfg.name` (a config mapping)."""
    name = task_cfg["name"]
    sizes = {"train": task_cfg["n_train"], "val": task_cfg["n_val"], "test": task_cfg["n_test"]}
    if name == "arith":
        spec = ArithSpec(**{k: task_cfg[k] for k in ArithSpec.__dataclass_fields__})
        return Arith(spec, sizes, seed)
    raise ValueError(f"task.name: unknown task {name!r}; known: ['arith']")
