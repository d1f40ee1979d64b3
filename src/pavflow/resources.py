"""What each job asks a scheduler for: threads, memory, wall time and GPUs, derived from the
experiment's `resources` config (conf/resources/) and its `device`. Snakemake passes these to the local
scheduler and to cluster executors alike (the Slurm plugin turns them into `--mem`, `-t`, `--gpus`)."""
from __future__ import annotations

# Every stage of the DAG, and the ones that run a model (a policy or a verifier) on cfg.device: only
# these can use a GPU. problems draws problems, labels does arithmetic on MC tables, report plots.
SEARCH_SWEEPS = ("search_prm", "search_alpha", "search_val", "search_selected", "search_oracle")
STAGES = ("problems", "sft", "seeds", "mc", "labels", "verifier", "quality", "search_pool", "search_bon",
          "search_beam", "search_beamv", *SEARCH_SWEEPS, "rft", "rl", "report")
MODEL_STAGES = frozenset({"sft", "seeds", "mc", "verifier", "quality", "search_pool", "search_bon",
                          "search_beam", "search_beamv",
                          *SEARCH_SWEEPS, "rft", "rl"})


def uses_cuda(device: str) -> bool:
    """True for an explicit CUDA device (cuda, cuda:<i>); `auto` decides on the node, so it asks for
    no GPU unless resources.gpus does."""
    return device == "cuda" or device.startswith("cuda:")


def gpus_per_job(cfg) -> int:
    """GPUs a model-running job asks for: resources.gpus when set, else 1 for a CUDA device, else 0."""
    if cfg.resources.gpus is not None:
        return int(cfg.resources.gpus)
    return 1 if uses_cuda(str(cfg.device)) else 0


def stage_threads(cfg, stage: str) -> int:
    """Model stages run on cfg.threads threads; the others are single-threaded table work."""
    _check(stage)
    return int(cfg.threads) if stage in MODEL_STAGES else 1


def stage_resources(cfg, stage: str) -> dict:
    """Snakemake `resources` of a stage's jobs: mem_mb and runtime (minutes) from resources, with
    resources.stages.<stage> overriding; `gpu` only when the stage runs a model and asks for GPUs."""
    _check(stage)
    r = cfg.resources
    over = r.stages.get(stage) if stage in r.stages else None
    pick = lambda key: int(getattr(over, key)) if over is not None and getattr(over, key) is not None \
        else getattr(r, key)
    out = {"mem_mb": int(pick("mem_mb")), "runtime": int(pick("runtime"))}
    if stage in MODEL_STAGES:
        gpus = int(over.gpus) if over is not None and over.gpus is not None else gpus_per_job(cfg)
        if gpus > 0:
            out["gpu"] = gpus
    return out


def _check(stage: str) -> None:
    if stage not in STAGES:
        raise KeyError(f"stage {stage!r}: not a stage of the DAG; stages are {list(STAGES)}")
