"""Stage `verifier`: train job.verifier on the train split's seeds and report its quality on the val
split (Brier score against its own targets, outcome AUROC). Value verifiers (orm, pqv, pav_<prover>
and their label variants) fit a value head to MC targets; implicit PRMs (implicit_ce|dpo) fit
beta * log pi/pi_ref to outcomes. The fuller comparison of every verifier is the `quality` stage."""
import numpy as np
import polars as pl
from transformers import AutoTokenizer

from pavflow.data import CONTINUATIONS, LABELS, MC, METRICS, SAMPLES, TRAIN_LOG, atomic_dir, read_table, write_table
from pavflow.labels import make_labels
from pavflow.names import Verifier
from pavflow.policy.device import resolve_device
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stats import bootstrap_ci
from pavflow.tasks import make_task
from pavflow.train import TrainHooks
from pavflow.verifiers.fit import FitSettings
from pavflow.verifiers.metrics import auroc, within_auroc
from pavflow.verifiers.selection import hard_targets, select_states
from pavflow.verifiers.targets import state_targets
from pavflow.verifiers.value import (StateExample, ValueVerifier, save_value_model, train_value, value_model_from_policy,
                                     value_model_scratch)

KEY = ["problem_id", "split", "sample_id", "h"]


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


def continuation_examples(task, problems, continuations: pl.DataFrame) -> list[StateExample]:
    """The train split's MC continuations as ORM examples: the outcome on the finished state only. The
    other splits' continuations are dropped here, whatever the pool holds."""
    out = []
    for r in continuations.filter(pl.col("split") == "train").iter_rows(named=True):
        steps = task.split_steps(r["response"])
        out.append(StateExample(task.prompt(problems[r["problem_id"]].question), steps,
                                [None] * len(steps) + [float(r["correct"])]))
    return out


def value_targets(spec: Verifier, cfg, job, seeds: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The states that carry a target and their targets (label variants applied), and the MC rollouts
    those train-split targets cost (0 for orm and implicit PRMs: outcomes only)."""
    if spec.kind in ("orm", "implicit"):
        return state_targets("orm", seeds), 0
    mc_pi = read_table(job.input.mc_pi, MC)
    same = spec.kind == "pqv" or job.input.mc_rho == job.input.mc_pi  # the prover's rollouts are pi's
    rho = None if same else read_table(job.input.mc_rho, MC)
    if spec.data is not None:  # the data-scaling variants: m of every state's rollouts
        mc_pi = subsample(mc_pi, spec.data[1], derive_seed(cfg.seed, "subsample", spec, "pi"))
        rho = None if same else subsample(rho, spec.data[1], derive_seed(cfg.seed, "subsample", spec, "rho"))
    rho = mc_pi if same else rho
    if spec.kind == "pqv":
        targets, pool = state_targets("pqv", seeds, mc_pi=mc_pi), mc_pi
    else:
        labels = read_table(job.input.labels, LABELS) if spec.data is None else make_labels(mc_pi, rho, spec.prover)
        targets, pool = state_targets("pav", seeds, labels=labels), rho
    if spec.targets == "hard":
        targets = hard_targets(targets, pool)
    selected, cost = select_states(pool, spec.prefixes, m=cfg.verifier.random_states,
                                   seed=derive_seed(cfg.seed, "prefixes", spec))
    targets = (targets.join(selected.select(*KEY, "inferred"), on=KEY, how="inner")
               .with_columns(target=pl.when(pl.col("inferred")).then(0.0).otherwise(pl.col("target")))
               .drop("inferred").sort(KEY))
    train_ids = seeds.filter(pl.col("split") == "train").select("problem_id", "sample_id")
    return targets, int(cost.join(train_ids, on=["problem_id", "sample_id"])["rollouts"].sum())


def subsample(pool: pl.DataFrame, m: int, seed: int) -> pl.DataFrame:
    """The MC table as if each sampled state had m of its n rollouts: c ~ Hypergeometric(n, c, m), drawn
    in table order from `seed`; graded terminal states (n = 1) are kept."""
    pool = pool.sort(KEY)
    n, c = pool["n"].to_numpy(), pool["c"].to_numpy()
    if (n[n > 1] < m).any():
        raise ValueError(f"subsample: {m} rollouts per state asked, the pool has {int(n[n > 1].min())}")
    sub = np.where(n > 1, np.random.default_rng(seed).hypergeometric(c, n - c, np.minimum(m, n)), c)
    return pool.with_columns(n=pl.Series(np.where(n > 1, m, n), dtype=pl.Int32), c=pl.Series(sub, dtype=pl.Int32))


def quality(name: str, score, exs: list[StateExample], outcomes: np.ndarray, problems: list[str]) -> pl.DataFrame:
    """Brier vs targets (per state, CI by bootstrap over states) and outcome AUROC of v(s_H), over all
    responses and within each problem (`problems`: each example's problem; n = problems with both outcomes)."""
    values, _ = score([e.prompt for e in exs], [e.steps for e in exs])
    pred = np.array([v for vs, e in zip(values, exs) for v, t in zip(vs, e.targets) if t is not None])
    tgt = np.array([t for e in exs for t in e.targets if t is not None], dtype=np.float64)
    sq = (pred - tgt) ** 2
    lo, hi = bootstrap_ci(sq, seed=0)
    final = np.array([vs[-1] for vs in values])
    rows = [(name, "brier", float(sq.mean()), lo, hi, len(sq)),
            (name, "outcome_auroc", auroc(final, outcomes), None, None, len(final)),
            (name, "outcome_auroc_within", *_within(final, outcomes, problems)),
            (name, "mean_pred_final", float(final.mean()), None, None, len(final)),
            (name, "outcome_rate", float(outcomes.mean()), None, None, len(final))]
    return pl.DataFrame(rows, schema=METRICS, orient="row")


def _within(final: np.ndarray, outcomes: np.ndarray, problems: list[str]) -> tuple:
    value, n = within_auroc(final, outcomes, problems)
    return value, None, None, n


def fit_settings(section, seed: int) -> FitSettings:
    """The training loop's settings from a verifier config section (verifier or verifier.implicit)."""
    return FitSettings(steps=section.steps, batch_size=section.batch_size, lr=section.lr, warmup=section.warmup,
                       seed=seed, log_every=max(1, section.steps // 20))


def train_hooks(tracker, ckpt, checkpoint_every: int) -> TrainHooks:
    return TrainHooks(on_log=lambda r: tracker.log({f"verifier/{k}": x for k, x in r.items()}),
                      checkpoint_every=checkpoint_every, on_checkpoint=ckpt.save, resume=ckpt.resume())


def train_implicit_prm(spec: Verifier, cfg, job, task, problems, train_seeds: pl.DataFrame, tracker, ckpt):
    """Implicit PRM implicit_<loss>: pi_theta and pi_ref from the base policy, trained on outcomes."""
    from pavflow.verifiers.implicit import (ImplicitVerifier, ResponseExample, implicit_models_from_policy,
                                            save_implicit, train_implicit)
    im, policy, device = cfg.verifier.implicit, job.input.policy, resolve_device(cfg.device)
    exs = [ResponseExample(task.prompt(problems[r["problem_id"]].question), task.split_steps(r["response"]),
                           int(r["correct"]), r["problem_id"]) for r in train_seeds.iter_rows(named=True)]
    model, ref = implicit_models_from_policy(policy, seed=derive_seed(cfg.seed, "verifier", spec))
    model, ref = model.to(device), ref.to(device)
    tok = AutoTokenizer.from_pretrained(policy)
    rows = train_implicit(model, ref, tok, exs, loss=spec.loss, beta=im.beta,
                          settings=fit_settings(im, derive_seed(cfg.seed, "verifier-train", spec)),
                          max_pairs_per_problem=im.max_pairs_per_problem,
                          hooks=train_hooks(tracker, ckpt, cfg.verifier.checkpoint_every))
    with atomic_dir(job.output.model) as tmp:
        save_implicit(model, tok, tmp, beta=im.beta, loss=spec.loss)
    return rows, ImplicitVerifier(model, ref, tok, im.beta, cfg.verifier.score_batch_size).score


def train_value_verifier(spec: Verifier, cfg, job, train: list[StateExample], tracker, ckpt):
    v, policy = cfg.verifier, job.input.policy
    seed = derive_seed(cfg.seed, "verifier", spec)
    model = value_model_from_policy(policy, seed) if v.init == "policy" else \
        value_model_scratch(policy, seed, hidden_size=v.hidden_size, n_layers=v.n_layers, n_heads=v.n_heads,
                            intermediate_size=v.intermediate_size)
    model = model.to(resolve_device(cfg.device))
    tok = AutoTokenizer.from_pretrained(policy)
    rows = train_value(model, tok, train, fit_settings(v, derive_seed(cfg.seed, "verifier-train", spec)),
                       train_hooks(tracker, ckpt, v.checkpoint_every))
    with atomic_dir(job.output.model) as tmp:
        save_value_model(model, tok, tmp)
    return rows, ValueVerifier(model, tok, v.score_batch_size).score


@stage_main("verifier")
def main(cfg, job, tracker) -> dict:
    name = job.wildcards["verifier"]
    spec = Verifier.parse(name)
    if not spec.trained:
        raise ValueError(f"verifier {name!r} is computed from the pqv, not trained")
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    problems = {p.problem_id: p for p in load_problems(job.input.problems, ["train", "val"])}
    seeds = read_table(job.input.seeds, SAMPLES)
    if spec.data is not None:  # train on the first n seeds of each train problem; validate on all
        seeds = seeds.filter((pl.col("split") != "train") | (pl.col("sample_id") < spec.data[0]))
    targets, label_rollouts = value_targets(spec, cfg, job, seeds)
    split = {s: seeds.filter(pl.col("split") == s) for s in ("train", "val")}
    tracker.define_metric("verifier/*", "verifier/step")
    ckpt = job.checkpoints(cfg)
    if spec.kind == "implicit":
        rows, score = train_implicit_prm(spec, cfg, job, task, problems, split["train"], tracker, ckpt)
    else:
        train = examples(task, problems, split["train"], targets)
        if spec.rollouts:
            extra = continuation_examples(task, problems, read_table(job.input.continuations, CONTINUATIONS))
            train, label_rollouts = train + extra, len(extra)
        rows, score = train_value_verifier(spec, cfg, job, train, tracker, ckpt)
    write_table(pl.DataFrame(rows).select(model=pl.lit(name), step="step", tokens_seen="tokens_seen",
                                          loss="loss", val_metric=pl.lit(None, pl.String),
                                          val_value=pl.lit(None, pl.Float64)),
                job.output.log, TRAIN_LOG)
    n_train = int(targets.join(split["train"].select("problem_id", "sample_id"), on=["problem_id", "sample_id"]).height)
    n_train += label_rollouts if spec.rollouts else 0  # one target (the outcome) per continuation
    val = examples(task, problems, split["val"], targets)
    metrics = pl.concat([
        quality(name, score, val, split["val"]["correct"].to_numpy().astype(np.float64), split["val"]["problem_id"].to_list()),
        pl.DataFrame([(name, "label_rollouts", float(label_rollouts), None, None, n_train),
                      (name, "label_states", float(n_train), None, None, n_train)], schema=METRICS, orient="row")])
    write_table(metrics, job.output.metrics, METRICS)
    ckpt.done()
    tracker.table("verifier/quality", metrics)
    return {f"val_{m}": x for m, x in zip(metrics["metric"], metrics["value"])} | {"final_loss": rows[-1]["loss"]}


if __name__ == "__main__":
    main()
