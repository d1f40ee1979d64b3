"""Stage `rft`: rejection fine-tuning, the paper's other RL initialisation. The base policy samples
rl.rft.samples_per_problem responses per train problem; it is then fine-tuned on its own correct
ones (distinct responses, each problem weighted by how many it has)."""
import numpy as np
import polars as pl

from pavflow.data import TRAIN_LOG, atomic_dir, write_table
from pavflow.policy.device import autocast
from pavflow.policy.model import save_policy
from pavflow.policy.sft import train_sft
from pavflow.rollouts import correct_pairs, sample_responses
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.stages.sampling import local_sampler, policy_sampler
from pavflow.tasks import make_task
from pavflow.train import TrainHooks


@stage_main("rft")
def main(cfg, job, tracker) -> dict:
    task, r, base = make_task(cfg.task, cfg.seed, cfg.policy), cfg.rl.rft, cfg.sweep.policy
    train = load_problems(job.input.problems, ["train"])
    sampler = policy_sampler(cfg, job.input.policy, task)
    samples = sample_responses(sampler, task, train, n=r.samples_per_problem, seed=derive_seed(cfg.seed, "rft-samples"),
                               temperature=1.0, max_new_tokens=cfg.rl.max_new_tokens, policy=base)
    pairs = correct_pairs(samples, {p.problem_id: task.prompt(p.question) for p in train})
    if not pairs:
        raise RuntimeError(f"rft: policy {base} solved none of {len(train)} train problems in "
                           f"{r.samples_per_problem} samples each; nothing to fine-tune on (use rl.init=base)")

    # fine-tuned in place on float32 weights (policy.device.autocast); evaluate() samples it as it trains
    if cfg.generation.backend != "local" or cfg.dtype != "float32":
        sampler = local_sampler(cfg, job.input.policy, task, dtype="float32")
    model, tok = sampler.model, sampler.tok
    val = load_problems(job.input.problems, ["val"])[:cfg.sft.eval_problems]
    prompts = [task.prompt(p.question) for p in val]

    def evaluate() -> float:  # sampled (T=1) accuracy on val problems, for the log
        out = sampler.sample(prompts, cfg.sft.eval_samples, seed=derive_seed(cfg.seed, "rft-eval"),
                             temperature=1.0, max_new_tokens=cfg.rl.max_new_tokens)
        return float(np.mean([task.grade(c.text, p.answer) for p, cs in zip(val, out.completions) for c in cs]))

    start_acc = evaluate()
    tracker.define_metric("rft/*", "rft/step")
    with autocast(model.device, cfg.dtype):
        rows = train_sft(model, tok, lambda rng: pairs[rng.randrange(len(pairs))], max_steps=r.steps,
                         batch_size=r.batch_size, lr=r.lr, warmup=r.warmup, seed=derive_seed(cfg.seed, "rft"),
                         eval_every=r.steps, evaluate=evaluate,
                         hooks=TrainHooks(on_log=lambda row: tracker.log({f"rft/{k}": v for k, v in row.items()})))
    with atomic_dir(job.output.model) as tmp:
        save_policy(model, tok, tmp)
    df = pl.DataFrame(rows).select(model=pl.lit(f"{base}_rft"), step="step", tokens_seen="tokens_seen",
                                   loss="loss", val_metric=pl.lit("val_sampled_acc"), val_value="val_acc")
    write_table(df, job.output.log, TRAIN_LOG)
    return {"train_acc_sampled": float(samples["correct"].mean()), "n_pairs": len(pairs),
            "val_sampled_acc_before": start_acc,
            "val_sampled_acc_after": rows[-1]["val_acc"]}


if __name__ == "__main__":
    main()
