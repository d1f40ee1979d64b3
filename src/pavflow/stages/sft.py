"""Stage `sft`: train the policy named by job.policy on reference solutions; save it with its
tokenizer (save_pretrained) and its training log. A `tiny_llama` policy is built from scratch; a
`kind: hf` policy is the pretrained model fine-tuned (all weights) on the task's SFT pairs, or saved
untuned when its max_steps is 0."""
import logging

import numpy as np
import polars as pl

from pavflow.config import ConfigError
from pavflow.data import TRAIN_LOG, atomic_dir, write_table
from pavflow.policy.device import autocast, resolve_device
from pavflow.policy.model import char_tokenizer, load_pretrained, save_policy, tiny_llama
from pavflow.policy.sampler import Sampler
from pavflow.policy.sft import train_sft
from pavflow.seeds import derive_seed
from pavflow.stages.common import load_problems, stage_main
from pavflow.tasks import make_task
from pavflow.train import TrainHooks

log = logging.getLogger("pavflow")


@stage_main("sft")
def main(cfg, job, tracker) -> dict:
    name = job.wildcards["policy"]
    if name not in cfg.sft.policies:
        raise ConfigError(f"job.policy={name!r}: not in sft.policies {sorted(cfg.sft.policies)}")
    spec, pc, device = cfg.sft.policies[name], cfg.policy, resolve_device(cfg.device)
    task = make_task(cfg.task, cfg.seed, cfg.policy)
    if pc.kind == "tiny_llama":
        tok = char_tokenizer(pc.alphabet)
        model = tiny_llama(len(tok), pc.hidden_size, pc.n_layers, pc.n_heads, pc.intermediate_size,
                           pc.max_positions, seed=derive_seed(cfg.seed, "sft-init", name)).to(device)
    else:
        model, tok = load_pretrained(pc, str(device), "float32")  # trained in float32, computed in cfg.dtype
    val = load_problems(job.input.problems, ["val"])[:cfg.sft.eval_problems]
    sampler = Sampler(model, tok, step_sep=task.step_sep, batch_size=min(512, cfg.rollouts.batch_size))
    prompts = [task.prompt(p.question) for p in val]

    def evaluate() -> float:  # sampled (T=1) accuracy on val problems: the stopping rule
        out = sampler.sample(prompts, cfg.sft.eval_samples, seed=derive_seed(cfg.seed, "sft-eval", name),
                             temperature=1.0, max_new_tokens=cfg.sft.max_new_tokens)
        return float(np.mean([task.grade(c.text, p.answer) for p, cs in zip(val, out.completions) for c in cs]))

    tracker.define_metric("sft/*", "sft/step")
    ckpt = job.checkpoints(cfg)
    if spec.max_steps == 0:  # a pretrained policy kept as it is (validate allows 0 only for kind hf)
        rows = [{"step": 0, "tokens_seen": 0, "loss": float("nan"), "val_acc": evaluate()}]
        log.info("sft %s: untuned pretrained policy, val acc %.3f", name, rows[0]["val_acc"])
    else:
        with autocast(device, cfg.dtype):
            rows = train_sft(model, tok, task.sample_train, max_steps=spec.max_steps, batch_size=cfg.sft.batch_size,
                             lr=cfg.sft.lr, warmup=cfg.sft.warmup, seed=derive_seed(cfg.seed, "sft", name),
                             eval_every=cfg.sft.eval_every, evaluate=evaluate, target_acc=spec.target_val_acc,
                             hooks=TrainHooks(on_log=lambda r: (tracker.log({f"sft/{k}": v for k, v in r.items()}),
                                                                log.info("sft %s step %d loss %.3f val acc %.3f", name,
                                                                         r["step"], r["loss"], r["val_acc"])),
                                              checkpoint_every=cfg.sft.checkpoint_every, on_checkpoint=ckpt.save,
                                              resume=ckpt.resume()))
    with atomic_dir(job.output.model) as tmp:
        save_policy(model, tok, tmp)
    df = pl.DataFrame(rows).select(model=pl.lit(name), step="step", tokens_seen="tokens_seen", loss="loss",
                                   val_metric=pl.lit("val_sampled_acc"), val_value="val_acc")
    write_table(df, job.output.log, TRAIN_LOG)
    ckpt.done()
    last = rows[-1]
    reached = spec.target_val_acc is None or last["val_acc"] >= spec.target_val_acc
    if not reached:
        log.warning("policy %s ended at val sampled accuracy %.3f after %d steps, below its target %.3f",
                    name, last["val_acc"], last["step"], spec.target_val_acc)
    return {"steps": last["step"], "val_sampled_acc": last["val_acc"], "reached_target": reached,
            "n_params": sum(p.numel() for p in model.parameters())}


if __name__ == "__main__":
    main()
