"""The oracle step scorer of beam search: fresh Monte-Carlo rollouts of the policy from every
candidate (an upper bound on what a learned Q^pi verifier can do; costly, for small experiments).

A candidate whose last step does not end with the task's step separator is finished (the policy
stopped with EOS or ran out of tokens): its value is its grade. Any other candidate is the state s_H;
`n` continuations are sampled from it and its value is the fraction that end correct, the
estimate V^pi(s_H) = Q^pi(s_{H-1}, a_H). The verifier cost of an item is the tokens its rollouts
generated plus the prompt tokens the sampler encoded for it.
"""
from __future__ import annotations


from pavflow.search.beam import StepScoreFn
from pavflow.seeds import derive_seed


def mc_value_fn(sampler, task, answers: dict[str, str], *, n: int, seed: int, temperature: float,
                max_new_tokens: int) -> StepScoreFn:
    """StepScoreFn scoring (prompt, steps) by MC rollouts; `answers` maps each prompt
    (`task.prompt(question)`) to its reference answer. Call i samples with a seed derived from
    (`seed`, i), so a search is deterministic."""
    if n < 1:
        raise ValueError(f"mc_value_fn: n must be >= 1, got {n}")
    calls = [0]

    def step_score(prompts: list[str], steps: list[list[str]]) -> tuple[list[float], list[int]]:
        scores: list[float] = [0.0] * len(steps)
        tokens: list[int] = [0] * len(steps)
        open_items = []
        for j, (p, s) in enumerate(zip(prompts, steps)):
            text = "".join(s)
            if s and not s[-1].endswith(task.step_sep):
                scores[j] = float(task.grade(text, answers[p]))
            else:
                open_items.append(j)
        if open_items:
            call_seed = derive_seed(seed, "call", calls[0])
            out = sampler.sample([prompts[j] + "".join(steps[j]) for j in open_items], n, seed=call_seed,
                                 temperature=temperature, max_new_tokens=max_new_tokens)
            for b, j in enumerate(open_items):
                done = "".join(steps[j])
                comps = out.completions[b]
                scores[j] = sum(task.grade(done + c.text, answers[prompts[j]]) for c in comps) / n
                tokens[j] = out.prompt_tokens[b] + sum(c.gen_tokens for c in comps)
        calls[0] += 1
        return scores, tokens

    return step_score
