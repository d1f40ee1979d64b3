"""The one generation engine of pavflow: batched KV-cache sampling with per-row stopping, prefix fan-out
and exact token accounting. Every stage that samples goes through `Sampler.sample`.

A call takes P prompts and n continuations per prompt. Prompts are sorted by length and packed into
batches of at most `batch_size` rows; each batch encodes its distinct prompts once (left padding,
position ids from the attention mask) and fans the cache out to the n rows that continue them.
Rows stop on EOS, on the task's step separator (if asked) or at `max_new_tokens`; finished rows are
dropped from the cache so they stop costing compute. Llama-family models run on a hand-written
static-cache forward (`llama_decode.LlamaDecode`, logits equal to the model's up to float rounding);
any other model on its own forward with a DynamicCache (`llama_decode.HFDecode`). Both share this loop.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import torch

from pavflow.policy import llama_decode
from pavflow.policy.llama_decode import HFDecode, LlamaDecode
from pavflow.progress import progress


@dataclass
class Completion:
    tokens: list[int]  # generated ids, including the stop token (EOS or the separator token)
    text: str  # decoded generated text, EOS excluded
    finish: str  # "eos" | "step" | "length"
    logprobs: list[float] | None = None  # log pi(token) of each generated token at temperature 1 (logprobs=True)

    @property
    def gen_tokens(self) -> int:
        return len(self.tokens)


@dataclass
class Samples:
    completions: list[list[Completion]]  # [prompt][copy]
    prompt_tokens: list[int] = field(default_factory=list)  # tokens encoded per prompt (all batches)

    @property
    def gen_tokens(self) -> int:
        return sum(c.gen_tokens for cs in self.completions for c in cs)


class Part(NamedTuple):
    """Copies start..start+len(completions)-1 of prompt `prompt`, as `Sampler.stream` draws them."""
    prompt: int
    start: int
    completions: list[Completion]
    prompt_tokens: int  # tokens encoded for this part's prompt (once per batch it is in)


class Sampler:
    def __init__(self, model, tokenizer, *, batch_size: int = 256, step_sep: str = "\n",
                 compact_fraction: float = 0.25):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.device = next(model.parameters()).device
        self.compact_fraction = compact_fraction
        eos = {tokenizer.eos_token_id}
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else {gen_eos}
        self.eos_ids = torch.tensor(sorted(i for i in eos if i is not None), device=self.device)
        self.eos_set = set(self.eos_ids.tolist())
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        is_step = [step_sep in tokenizer.convert_tokens_to_string([t]) for t in vocab]
        self.step_mask = torch.tensor(is_step, device=self.device)
        # (V,) tokens that end a row, without / with stop_at_step; V covers ids the model emits beyond the tokenizer
        V = max(len(is_step), getattr(model.config, "vocab_size", 0) or 0)
        self.stop_eos = torch.zeros(V, dtype=torch.bool, device=self.device)
        self.stop_eos[self.eos_ids] = True
        self.stop_step = self.stop_eos.clone()
        self.stop_step[:len(is_step)] |= self.step_mask
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0].item()
        # Llama-family models decode through a hand-written static-cache forward; others through their own
        self.fast = llama_decode.supports(model)
        self.weights = llama_decode.LlamaWeights(model) if self.fast else None

    def encode(self, prompts: list[str]) -> list[list[int]]:
        return [self.tok(p).input_ids for p in prompts]

    def sample(self, prompts: list[str], n: int = 1, *, seed: int, temperature: float = 1.0,
               top_p: float = 1.0, max_new_tokens: int = 64, stop_at_step: bool = False,
               desc: str | None = None, logprobs: bool = False) -> Samples:
        """n continuations of each prompt. temperature 0 is greedy. Deterministic given all arguments.
        `desc` shows a progress bar over the continuations under that name. With `logprobs`, each
        completion also carries log pi(token) of its tokens under the model itself (temperature 1, no
        top-p), read off the logits the decode computed anyway: a forward pass over the samples
        would give the same values up to float rounding."""
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        prompt_tokens = [0] * len(prompts)
        for part in self.stream(prompts, n, seed=seed, temperature=temperature, top_p=top_p,
                                max_new_tokens=max_new_tokens, stop_at_step=stop_at_step, desc=desc,
                                logprobs=logprobs):
            out[part.prompt][part.start:part.start + len(part.completions)] = part.completions
            prompt_tokens[part.prompt] += part.prompt_tokens
        return Samples(out, prompt_tokens)

    def stream(self, prompts: list[str], n: int = 1, *, seed: int, temperature: float = 1.0,
               top_p: float = 1.0, max_new_tokens: int = 64, stop_at_step: bool = False,
               desc: str | None = None, logprobs: bool = False) -> Iterator[Part]:
        """`sample`'s continuations batch by batch, as they are drawn (the same draws): one Part per
        work item, copies start..start+m-1 of prompt i. Nothing is kept between batches, so memory
        does not grow with n."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        ids = self.encode(prompts)
        # work items (prompt, first copy, copies), longest prompts first, packed into row batches
        order = sorted(range(len(prompts)), key=lambda i: (-len(ids[i]), i))
        items = ((i, start, min(n - start, self.batch_size)) for i in order for start in range(0, n, self.batch_size))
        batch, rows = [], 0
        bar = progress(desc=desc, total=len(prompts) * n) if desc else None
        try:
            for item in itertools.chain(items, [None]):
                if item is None or rows + item[2] > self.batch_size:
                    if batch:
                        with torch.no_grad():
                            comps = self._run([ids[i] for i, _, _ in batch], [m for _, _, m in batch], gen,
                                              temperature, top_p, max_new_tokens, stop_at_step, logprobs)
                        for (i, start, _), c in zip(batch, comps):
                            yield Part(i, start, c, len(ids[i]))
                        if bar is not None:
                            bar.update(rows)
                    batch, rows = [], 0
                if item is not None:
                    batch.append(item)
                    rows += item[2]
        finally:
            if bar is not None:
                bar.close()

    def _run(self, prompt_ids: list[list[int]], copies: list[int], gen: torch.Generator,
             temperature: float, top_p: float, max_new_tokens: int, stop_at_step: bool, want_lp: bool = False):
        dev, U = self.device, len(prompt_ids)
        L = max(len(p) for p in prompt_ids)
        input_ids = torch.full((U, L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((U, L), dtype=torch.long)
        for u, p in enumerate(prompt_ids):
            input_ids[u, L - len(p):] = torch.tensor(p)
            mask[u, L - len(p):] = 1
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        fan = torch.repeat_interleave(torch.arange(U, device=dev), torch.tensor(copies, device=dev))  # (R,)
        # row r continues prompt fan[r]: each prompt is encoded once, its cache fanned out to its rows
        if self.fast and not (self.model.training and self.model.config.attention_dropout > 0):
            eng = LlamaDecode(self.model, self.weights, max_new_tokens)
        else:
            eng = HFDecode(self.model, max_new_tokens)
        logits = eng.prefill(input_ids, mask, pos, fan)  # (R, V)
        R = len(fan)
        stops = self.stop_step if stop_at_step else self.stop_eos
        row_ids = torch.arange(R, device=dev)  # original row of each current row
        tokens = torch.zeros((R, max_new_tokens), dtype=torch.long, device=dev)  # valid up to lengths
        lps = torch.zeros((R, max_new_tokens), dtype=torch.float32, device=dev) if want_lp else None
        lengths, finish = [max_new_tokens] * R, ["length"] * R
        live = torch.ones(R, dtype=torch.bool, device=dev)  # among current rows
        n_live, n_dead = R, 0  # live rows / finished rows not yet dropped, among current rows
        for t in range(max_new_tokens):
            nxt = self._pick(logits.float(), gen, temperature, top_p)  # (r,)
            tokens[row_ids, t] = nxt  # finished rows write past their end, which is never read
            if want_lp:
                lps[row_ids, t] = logits.float().log_softmax(-1).gather(1, nxt[:, None])[:, 0]
            stop = stops[nxt] & live
            done = torch.nonzero(stop).flatten()
            if len(done):
                for r, tok in zip(row_ids[done].tolist(), nxt[done].tolist()):
                    lengths[r], finish[r] = t + 1, "eos" if tok in self.eos_set else "step"
                live &= ~stop
                n_live, n_dead = n_live - len(done), n_dead + len(done)
            if n_live == 0 or t == max_new_tokens - 1:
                break
            if n_dead / len(live) >= self.compact_fraction:
                keep = torch.nonzero(live).flatten()
                eng.keep(keep)
                row_ids, live, nxt, n_dead = row_ids[keep], live[keep], nxt[keep], 0
            logits = eng.step(nxt)
        tokens = tokens.tolist()
        lps = lps.tolist() if want_lp else None
        comps, r = [], 0
        for m in copies:
            group = []
            for _ in range(m):
                toks = tokens[r][:lengths[r]]
                text_ids = toks[:-1] if finish[r] == "eos" else toks
                group.append(Completion(toks, self.tok.decode(text_ids), finish[r],
                                        lps[r][:lengths[r]] if want_lp else None))
                r += 1
            comps.append(group)
        return comps

    @staticmethod
    def _pick(logits: torch.Tensor, gen: torch.Generator, temperature: float, top_p: float):
        if temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / temperature, dim=-1)  # (r, V)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest set with mass >= top_p
            sorted_p[drop] = 0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return sample_categorical(probs, gen)


def sample_categorical(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One index per row of probs (r, V), drawn with probability proportional to its entry.

    Two-level exponential race: split the vocabulary into blocks of M ~ sqrt(V) tokens, pick a block
    with probability proportional to its mass (argmax of mass / Exp(1), as torch.multinomial races
    every token), then a token inside it the same way. Exact, and 2 sqrt(V) random numbers a row
    instead of V: multinomial's V exponentials cost more than a decode step at a 49k vocabulary.
    Unlike inverse-CDF sampling, the pick moves only when two candidates nearly tie, so rounding-level
    differences in the logits (fast vs generic decode path) leave the samples unchanged."""
    r, V = probs.shape
    M = math.isqrt(V - 1) + 1  # tokens per block; the last block may be partial
    full, tail = divmod(V, M)
    mass = probs[:, :full * M].view(r, full, M).sum(-1)  # (r, B)
    if tail:
        mass = torch.cat((mass, probs[:, full * M:].sum(-1, keepdim=True)), -1)
    B = mass.shape[1]
    race = torch.empty((r, B + M), device=probs.device, dtype=probs.dtype).exponential_(generator=gen)
    race.clamp_(min=torch.finfo(race.dtype).tiny)  # a zero draw would let a zero-probability entry win
    block = (mass / race[:, :B]).argmax(-1)  # (r,)
    idx = block[:, None] * M + torch.arange(M, device=probs.device)  # (r, M) the block's tokens
    inside = probs.gather(1, idx.clamp(max=V - 1)).masked_fill_(idx >= V, 0)
    return idx.gather(1, (inside / race[:, B:]).argmax(-1, keepdim=True)).squeeze(-1)
