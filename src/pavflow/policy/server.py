"""Generation through an OpenAI-compatible inference server (POST {base_url}/v1/completions): vLLM or
SGLang with prefix caching on GPUs, `transformers serve` on a CPU. `ServerSampler` has the surface of
`pavflow.policy.sampler.Sampler` that fixed-policy stages use (`sample`, `encode`, `tok`, `pad_id`)
and returns the same `Samples`; the policy's weights live in the server, only its tokenizer here.

Requests. vLLM and SGLang get one request per prompt carrying its n copies (`n`) and return every
choice's token ids (`return_token_ids`); greedy copies go one per request there too (vLLM answers
n > 1 at temperature 0 with HTTP 400). Anything else gets one request per copy: transformers serve
ignores `n`, and `usage` sums over a request's choices, so only a one-choice request has an exact
per-choice count. Every request carries `max_tokens`, `temperature`, `top_p` and a `seed` derived
from (call seed, prompt index[, copy index]), so a call is reproducible where the server honours
seeds; at most `max_concurrency` requests are in flight. A step stop is the `stop` string
`step_sep` (vLLM, SGLang, others) or, on transformers serve, the separator tokens as extra EOS ids.

Where each number comes from (never re-derived where the server says it):
    gen tokens     len(choice.token_ids), their sum checked against usage.completion_tokens (vLLM,
                   SGLang); else usage.completion_tokens of the one-choice request
    token ids      choice.token_ids; else the local tokenizer's encoding of the server's text, plus
                   the EOS id when the row ended on EOS, and it must have exactly the server's count
    prompt tokens  usage.prompt_tokens, once per prompt (as Sampler counts a prompt encoded once),
                   checked against the local encoding (and prompt_token_ids where returned)
    finish         from the ids when returned: last id EOS -> eos, a separator token -> step, else
                   max_tokens reached -> length (as Sampler: a stop token wins over the length limit);
                   else from finish_reason, stop_reason (vLLM) / matched_stop (SGLang) and the text.
Any disagreement, a server error, a timeout after `retries` retries or an unreachable server raises
GenerationServerError; a call returns all its completions or none.

Server behaviours worked around (transformers 5.24 `transformers serve`): sampling is never switched
on (do_sample keeps the model's default, False, so temperature 1 is greedy) and top_k defaults to 50;
`stop` raises HTTP 500 for tokenizers that cannot encode "abcdef" (StopStringCriteria), pavflow's
character tokenizer among them; unknown request fields are HTTP 422. So it gets a `generation_config`
(do_sample, top_k=0, repetition_penalty=1, eos ids + separator ids) instead of `stop`. Its text is
decoded with skip_special_tokens: a special token inside a row (e.g. <pad>) vanishes, the local
re-encoding then misses tokens and the row is refused; serve a `serve_copy` of the policy, whose only
special token is EOS, and the text keeps them. Its seed is torch's global seed, set when a
request arrives: with several requests in flight they share one generator, so a call is reproducible
there only with max_concurrency=1 (it generates one request at a time anyway). With
--continuous-batching it batches requests, but takes do_sample / temperature / top_p from the first
request it serves for its whole life and ignores seeds: use it only for calls that all sample alike.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import httpx

from pavflow.policy.sampler import Completion, Samples
from pavflow.progress import progress
from pavflow.seeds import derive_seed

# fields beyond OpenAI's so that vLLM / SGLang sample softmax(logits / T) with top-p only, as Sampler
# does (not the model's generation_config defaults), and return each choice's token ids
IDS_SERVERS = {"vllm", "sglang"}
EXACT_SAMPLING = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "return_token_ids": True}
RETRY_STATUS = {429, 502, 503, 504}


class GenerationServerError(RuntimeError):
    """A generation server could not serve a call; the message names its URL and model and what to do."""


class ServerSampler:
    def __init__(self, base_url: str, model: str, tokenizer, *, step_sep: str = "\n",
                 max_concurrency: int = 16, timeout_s: float = 600.0, retries: int = 2,
                 eos_ids=()):
        """`model` is the served model name; `eos_ids` adds EOS ids beyond the tokenizer's (the policy's
        generation_config.eos_token_id, which Sampler reads from the model)."""
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model, self.tok, self.step_sep = model, tokenizer, step_sep
        self.max_concurrency, self.timeout_s, self.retries = max_concurrency, timeout_s, retries
        self.eos_ids = sorted({tokenizer.eos_token_id, *eos_ids} - {None})
        self.eos_set = set(self.eos_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.step_ids = [i for i, t in enumerate(vocab) if step_sep in tokenizer.convert_tokens_to_string([t])]
        self.step_set = set(self.step_ids)
        self.client = httpx.Client(base_url=self.base_url, limits=httpx.Limits(
            max_connections=max_concurrency, max_keepalive_connections=max_concurrency))
        self.kind = self._check_model()  # "vllm" | "sglang" | "transformers" | "openai"

    # ------------------------------------------------------------------------------------- HTTP

    def _error(self, what: str, todo: str) -> GenerationServerError:
        return GenerationServerError(f"generation server {self.base_url} (model {self.model!r}): {what}. {todo}")

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        cause = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            try:
                r = self.client.request(method, path, json=body, timeout=self.timeout_s)
            except httpx.TimeoutException as e:
                cause = f"no answer within timeout_s={self.timeout_s} ({type(e).__name__})"
                continue
            except httpx.TransportError as e:
                cause = f"unreachable ({type(e).__name__}: {e})"
                continue
            if r.status_code == 200:
                try:
                    return r.json()
                except ValueError:
                    raise self._error(f"answered {method} {path} with non-JSON: {r.text[:300]!r}",
                                      "Check that generation.base_url points at an OpenAI-compatible server")
            if r.status_code not in RETRY_STATUS:
                raise self._error(f"HTTP {r.status_code} on {method} {path}: {r.text[:500]}",
                                  "Check the server's log; the request fields are in pavflow.policy.server")
            cause = f"HTTP {r.status_code} on {method} {path}: {r.text[:300]}"
        raise self._error(f"{cause}, after {self.retries + 1} attempts",
                          "Start the server (or check that it still runs), fix generation.base_url, or "
                          "raise generation.timeout_s / lower generation.max_concurrency if it is overloaded")

    def _check_model(self) -> str:
        cards = self._request("GET", "/v1/models").get("data") or []
        card = next((c for c in cards if c.get("id") == self.model), None)
        if card is None:
            raise self._error(f"serves {[c.get('id') for c in cards]}, not {self.model!r}",
                              "Set generation.model to the served name, or start the server on this policy")
        if card.get("owned_by") in IDS_SERVERS:
            return card["owned_by"]
        return "transformers" if isinstance(card.get("status"), dict) else "openai"  # status: transformers serve's

    # ----------------------------------------------------------------------------------- sampling

    def encode(self, prompts: list[str]) -> list[list[int]]:
        return [self.tok(p).input_ids for p in prompts]

    def stream(self, prompts: list[str], n: int = 1, *, seed: int, desc: str | None = None, **kw):
        """Sampler.stream's interface: one Part per prompt, the same draws as `sample` (the requests are
        sent at once, so memory here is that of `sample`; the server holds the batching)."""
        from pavflow.policy.sampler import Part
        out = self.sample(prompts, n, seed=seed, desc=desc, **kw)
        for i, comps in enumerate(out.completions):
            yield Part(i, 0, comps, out.prompt_tokens[i])

    def sample(self, prompts: list[str], n: int = 1, *, seed: int, temperature: float = 1.0,
               top_p: float = 1.0, max_new_tokens: int = 64, stop_at_step: bool = False,
               desc: str | None = None) -> Samples:
        """n continuations of each prompt, as Sampler.sample; temperature 0 is greedy."""
        ids = self.encode(prompts)
        if n < 1:
            return Samples([[] for _ in prompts], [0] * len(prompts))
        # one request per prompt with n choices, else one per copy (vLLM refuses n > 1 when greedy)
        batched = self.kind in IDS_SERVERS and (temperature > 0 or n == 1)
        items = [(i, 0, n) for i in range(len(prompts))] if batched else \
                [(i, j, 1) for i in range(len(prompts)) for j in range(n)]
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        prompt_tokens = [0] * len(prompts)
        bar = progress(desc=desc, total=len(prompts) * n) if desc else None

        def run(item):  # HTTP only: the tokenizer is used from this thread alone (it is not thread-safe)
            i, j, m = item
            s = derive_seed(seed, "request", i) if batched else derive_seed(seed, "request", i, j)
            return self._request("POST", "/v1/completions",
                                 self._body(prompts[i], m, s, temperature, top_p, max_new_tokens, stop_at_step))

        pool = ThreadPoolExecutor(max_workers=self.max_concurrency)
        try:
            futures = {pool.submit(run, it): it for it in items}
            for f in as_completed(futures):
                i, j, m = futures[f]
                # the first failure raises: no partial Samples
                comps, n_prompt = self._parse(f.result(), m, max_new_tokens, stop_at_step, ids[i])
                out[i][j:j + m] = comps
                prompt_tokens[i] = n_prompt
                if bar is not None:
                    bar.update(m)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if bar is not None:
                bar.close()
        return Samples(out, prompt_tokens)

    def _body(self, prompt: str, n: int, seed: int, temperature: float, top_p: float,
              max_new_tokens: int, stop_at_step: bool) -> dict:
        body = {"model": self.model, "prompt": prompt, "max_tokens": max_new_tokens,
                "temperature": temperature, "top_p": top_p, "seed": seed}
        if self.kind == "transformers":  # see the module docstring: no n, no stop, sampling switched on here
            gc = {"do_sample": temperature > 0, "top_k": 0, "repetition_penalty": 1.0,
                  "max_new_tokens": max_new_tokens,
                  "eos_token_id": self.eos_ids + (self.step_ids if stop_at_step else [])}
            return body | {"generation_config": json.dumps(gc)}
        body["n"] = n
        if stop_at_step:
            body["stop"] = [self.step_sep]
        return body | (EXACT_SAMPLING if self.kind in IDS_SERVERS else {})

    def _parse(self, resp: dict, n: int, max_new: int, stop_at_step: bool,
               prompt_ids: list[int]) -> tuple[list[Completion], int]:
        choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
        usage = resp.get("usage") or {}
        if len(choices) != n:
            raise self._error(f"asked for {n} choices, got {len(choices)}", "The server does not honour `n`")
        n_prompt = usage.get("prompt_tokens")
        served_prompt = choices[0].get("prompt_token_ids")
        if n_prompt != len(prompt_ids) or (served_prompt is not None and list(served_prompt) != prompt_ids):
            raise self._error(f"tokenized a prompt into {n_prompt} tokens, the local tokenizer into "
                              f"{len(prompt_ids)}", "Serve the policy whose tokenizer this sampler was given")
        if all(c.get("token_ids") is not None for c in choices):
            comps = [self._from_ids(list(c["token_ids"]), c, max_new, stop_at_step) for c in choices]
            if sum(c.gen_tokens for c in comps) != usage.get("completion_tokens"):
                raise self._error(f"token_ids add up to {sum(c.gen_tokens for c in comps)} tokens, usage says "
                                  f"{usage.get('completion_tokens')}", "Report this server behaviour")
        elif n == 1:
            comps = [self._from_text(choices[0], usage.get("completion_tokens"), max_new, stop_at_step)]
        else:
            raise self._error(f"returned no token_ids for {n} choices (usage sums over them)",
                              "Use a vLLM / SGLang that honours return_token_ids")
        return comps, n_prompt

    def _finished(self, ids: list[int], finish: str, choice: dict, max_new: int,
                  stop_at_step: bool) -> Completion:
        """The row as Sampler would return it, once its ids and finish are known; checks that the server
        stopped where Sampler stops."""
        stops = self.eos_set | (self.step_set if stop_at_step else set())
        if not 1 <= len(ids) <= max_new or any(t in stops for t in ids[:-1]) or \
                (finish == "length" and len(ids) != max_new):
            raise self._error(f"returned a row of {len(ids)} tokens ({finish}; finish_reason "
                              f"{choice.get('finish_reason')!r}) that does not stop at its first EOS / "
                              f"separator or at max_tokens={max_new}",
                              "The server does not stop where it was asked to: check its stop / EOS handling")
        return Completion(ids, self.tok.decode(ids[:-1] if finish == "eos" else ids), finish)

    def _from_ids(self, ids: list[int], choice: dict, max_new: int, stop_at_step: bool) -> Completion:
        last = ids[-1] if ids else None
        finish = "eos" if last in self.eos_set else "step" if stop_at_step and last in self.step_set else "length"
        if finish == "length" and choice.get("finish_reason") != "length" and len(ids) < max_new:
            raise self._error(f"stopped on token {last} ({choice.get('finish_reason')!r}, stop reason "
                              f"{choice.get('stop_reason', choice.get('matched_stop'))!r}), neither an EOS id "
                              f"{self.eos_ids} nor a separator token",
                              "Pass the policy's generation_config EOS ids as eos_ids")
        return self._finished(ids, finish, choice, max_new, stop_at_step)

    def _from_text(self, choice: dict, count: int | None, max_new: int, stop_at_step: bool) -> Completion:
        text, fr = choice.get("text", ""), choice.get("finish_reason")
        reason = choice.get("stop_reason", choice.get("matched_stop"))
        if fr not in ("stop", "length") or not isinstance(count, int):
            raise self._error(f"finish_reason {fr!r}, usage.completion_tokens {count!r}",
                              "The server must report both for this backend")
        step = stop_at_step and (self.step_sep in text or reason == self.step_sep or reason in self.step_set)
        if stop_at_step and fr == "stop" and not step and reason is None and self.kind == "openai":
            raise self._error("returned neither token ids nor stop_reason / matched_stop, so EOS and a cut-off "
                              "stop string look the same", "Use vLLM, SGLang or transformers serve")
        if step and self.step_sep not in text:
            text += self.step_sep  # OpenAI semantics cut the matched stop string off the text
        ids = self.tok(text, add_special_tokens=False).input_ids
        finish = "step" if step else "eos" if fr == "stop" else "length"
        if finish == "length" and len(ids) == count - 1:
            # transformers serve reports an EOS drawn as the last allowed token as "length". (A special
            # token dropped from such a row would look the same; a policy that emits them is refused on
            # its EOS-ended rows, which are most rows, so it does not get this far unnoticed.)
            finish = "eos"
        if finish == "eos":
            ids = ids + [self.tok.eos_token_id]
        if len(ids) != count:
            raise self._error(f"generated {count} tokens but its text re-encodes to {len(ids)} (special tokens "
                              f"dropped from the text, or a tokenization the local tokenizer does not repeat)",
                              "Use a server that returns token ids (vLLM, SGLang) or generation.backend=local")
        return self._finished(ids, finish, choice, max_new, stop_at_step)


# --------------------------------------------------------------------------- a local test server

SPECIAL_NAMES = ("bos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token",
                 "additional_special_tokens")


def serve_copy(policy: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A copy of a save_pretrained policy (weights linked, not copied) for transformers serve, which
    decodes its text with skip_special_tokens: every special token but EOS becomes an ordinary added
    token, so a <pad> or <bos> the policy emits stays in the text (same ids, same weights)."""
    policy, out = Path(policy), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in policy.iterdir():
        if f.name not in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (out / f.name).symlink_to(f.resolve())
    cfg = json.loads((policy / "tokenizer_config.json").read_text())
    eos = cfg.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    for f in ("tokenizer_config.json", "special_tokens_map.json"):
        if (policy / f).exists():
            d = {k: v for k, v in json.loads((policy / f).read_text()).items() if k not in SPECIAL_NAMES}
            for t in d.get("added_tokens_decoder", {}).values():
                t["special"] = t["content"] == eos
            (out / f).write_text(json.dumps(d, indent=2))
    d = json.loads((policy / "tokenizer.json").read_text())
    for t in d["added_tokens"]:
        t["special"] = t["content"] == eos
    (out / "tokenizer.json").write_text(json.dumps(d))
    return out


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_server(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Stop a started server by its PID: SIGTERM, then SIGKILL if it has not exited after timeout_s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def start_transformers_serve(model: str, port: int, log_path: str | os.PathLike, *,
                             host: str = "127.0.0.1", threads: int = 1) -> subprocess.Popen:
    """`transformers serve <model>` (a save_pretrained directory, or `<dir>:<file>.gguf`) as a child
    process on CPU, fp32, its output in log_path; offline, with `threads` torch threads."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1",
                        "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", model,
           "--host", host, "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_healthy(base_url: str, proc: subprocess.Popen | None = None, timeout_s: float = 120.0) -> None:
    """Return once GET {base_url}/health answers 200; raise if `proc` exits or timeout_s passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise GenerationServerError(f"generation server {base_url}: exited with code {proc.returncode} "
                                        f"before answering /health. See its log")
        try:
            if httpx.get(f"{base_url.rstrip('/')}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise GenerationServerError(f"generation server {base_url}: no healthy answer within {timeout_s:.0f} s")
