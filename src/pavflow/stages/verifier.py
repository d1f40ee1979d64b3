"""Stage `verifier`: train job.verifier (orm | pqv | pav_<prover>) on the train split's seeds and
report its quality on the val split: Brier score against its own MC targets and outcome AUROC."""
import numpy as np
import polars as pl
from transformers import AutoTokenizer

from pavflow.data import LABELS, MC, METRICS, SAMPLES, TRAIN_LOG, atomic_dir, read_table, write_table
from pavflow.stages.common import Checkpoints, derive_seed, device_of, load_problems, record, stage_main
from pavflow.stats import bootstrap_ci
from pavflow.tasks import make_task
from pavflow.verifiers.metrics import auroc
from pavflow.verifiers.targets import parse_verifier, state_targets
from pavflow.verifiers.value import (StateExample, save_value_model, score_states, train_value,
                                     value_model_from_policy)


def examples(task, problems, seeds: pl.DataFrame, targets: pl.DataFrame) -> list[StateExample]:
    by_seed = {k: dict(zip(g["h"], g["target"])) for k, g in
               targets.group_by(["problem_id", "sample_id"], maintain_order=True)}
    out = []
    for r in seeds.iter_rows(named=True):
        steps = task.split_steps(r["response"])
        t = by_seed.get((r["problem_id"], r["sample_id"]), {})
        out.append(StateExample(task.prompt(problems[r["problem_id"]].question), steps,
                                [t.get(h) for h in range(len(steps) + 1)]))
    return out


def quality(name: str, model, tok, exs: list[StateExample], outcomes: np.ndarray, batch_size: int) -> pl.DataFrame:
    """Brier vs targets (per state, CI by bootstrap over states) and outcome AUROC of v(s_H)."""
    values, _ = score_states(model, tok, [e.prompt for e in exs], [e.steps for e in exs], batch_size)
    pred = np.array([v for vs, e in zip(values, exs) for v, t in zip(vs, e.targets) if t is not None])
    tgt = np.array([t for e in exs for t in e.targets if t is not None], dtype=np.float64)
    sq = (pred - tgt) ** 2
    lo, hi = bootstrap_ci(sq, seed=0)
    final = np.array([vs[-1] for vs in values])
    rows = [(name, "brier", float(sq.mean()), lo, hi, len(sq)),
            (name, "outcome_auroc", auroc(final, outcomes), None, None, len(final)),
            (name, "mean_pred_final", float(final.mean()), None, None, len(final)),
            (name, "outcome_rate", float(outcomes.mean()), None, None, len(final))]
    return pl.DataFrame(rows, schema=METRICS, orient="row")


@stage_main("verifier", lambda cfg: f"verifier-{cfg.job.verifier}",
            lambda cfg: [f"verifier:{cfg.job.verifier}"])
def main(cfg, layout, tracker) -> dict:
    name, v = cfg.job.verifier, cfg.verifier
    kind, prover = parse_verifier(name)
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = {p.problem_id: p for p in load_problems(layout, ["train", "val"])}
    seeds = read_table(layout.seeds(), SAMPLES)
    mc_pi = read_table(layout.mc(cfg.sweep.policy), MC) if kind == "pqv" else None
    labels = read_table(layout.labels(prover), LABELS) if kind == "pav" else None
    targets = state_targets(kind, seeds, mc_pi, labels)
    split = {s: seeds.filter(pl.col("split") == s) for s in ("train", "val")}
    train = examples(task, problems, split["train"], targets)

    model = value_model_from_policy(layout.policy(cfg.sweep.policy), seed=derive_seed(cfg.seed, "verifier", name))
    model = model.to(device_of(cfg))
    tok = AutoTokenizer.from_pretrained(layout.policy(cfg.sweep.policy))
    tracker.define_metric("verifier/*", "verifier/step")
    ckpt = Checkpoints(cfg, layout, f"verifier-{name}", "verifier", verifier=name)
    rows = train_value(model, tok, train, steps=v.steps, batch_size=v.batch_size, lr=v.lr,
                       warmup=v.warmup, seed=derive_seed(cfg.seed, "verifier-train", name),
                       log_every=max(1, v.steps // 20),
                       on_log=lambda r: tracker.log({f"verifier/{k}": x for k, x in r.items()}),
                       checkpoint_every=v.checkpoint_every, on_checkpoint=ckpt.save, resume=ckpt.resume())
    with atomic_dir(layout.verifier(name)) as tmp:
        save_value_model(model, tok, tmp)
    write_table(pl.DataFrame(rows).select(model=pl.lit(name), step="step", tokens_seen="tokens_seen",
                                          loss="loss", val_metric=pl.lit(None, pl.String),
                                          val_value=pl.lit(None, pl.Float64)),
                layout.verifier_log(name), TRAIN_LOG)
    val = examples(task, problems, split["val"], targets)
    metrics = quality(name, model, tok, val, split["val"]["correct"].to_numpy().astype(np.float64),
                      v.score_batch_size)
    write_table(metrics, layout.verifier_metrics(name), METRICS)
    ckpt.done()
    tracker.table("verifier/quality", metrics)
    record(tracker, cfg, f"verifier-{name}", "model", layout.verifier(name))
    record(tracker, cfg, f"verifier-{name}-metrics", "table", layout.verifier_metrics(name))
    return {f"val_{m}": x for m, x in zip(metrics["metric"], metrics["value"])} | {"final_loss": rows[-1]["loss"]}


if __name__ == "__main__":
    main()
