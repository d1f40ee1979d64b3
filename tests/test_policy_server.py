"""ServerSampler against real `transformers serve` processes on 127.0.0.1 (no mock server), serving a saved
tiny pavflow policy: greedy rows equal the local Sampler's token for token, with equal counts and finish
reasons; seeded sampling reproduces; a killed server, a wrong model name, an HTTP error and a timeout
each raise GenerationServerError naming the URL and the model."""
import os
import signal

import pytest
import torch

from pavflow.policy.model import save_policy
from pavflow.policy.sampler import Sampler
from pavflow.policy.server import (GenerationServerError, ServerSampler, free_port, serve_copy,
                                   start_transformers_serve, stop_server, wait_healthy)

PROMPTS = ["Q:72*5-3\n", "Q:1+2\n", "Q:12+3\n12+3=15\n", "Q:9\n", "Q:4*4*4+1\n", "Q:3-8*2\n", "Q:50+7\n"]
EOS = 2


@pytest.fixture(scope="module")
def model(random_model):
    """Varied rows that stop on EOS, on the separator and at the length limit, with an occasional
    <pad> / <bos> inside a row (the served copy keeps those in its text)."""
    return random_model


@pytest.fixture(scope="module")
def servers(model, tok, tmp_path_factory, serve_available):
    """Two `transformers serve` processes on a serve_copy of the saved policy, started together: [0]
    serves the tests, [1] is killed by one. Each is (base_url, served model name, process)."""
    tmp = tmp_path_factory.mktemp("served")
    save_policy(model, tok, tmp / "saved")
    served = str(serve_copy(tmp / "saved", tmp / "policy"))
    out = []
    try:
        for k in range(2):
            port = free_port()
            out.append((f"http://127.0.0.1:{port}", served,
                        start_transformers_serve(served, port, tmp / f"serve{k}.log")))
        for url, _, proc in out:
            wait_healthy(url, proc, timeout_s=180)
        yield out
    finally:
        for _, _, proc in out:
            stop_server(proc)


@pytest.fixture(scope="module")
def server(servers):
    return servers[0][:2]


@pytest.fixture(scope="module")
def local(model, tok):
    return Sampler(model, tok)


def rows(samples):
    return [[(c.tokens, c.text, c.finish) for c in cs] for cs in samples.completions]


@pytest.mark.parametrize("stop_at_step", [False, True])
def test_greedy_equals_local_sampler(server, tok, local, stop_at_step):
    url, name = server
    remote = ServerSampler(url, name, tok, max_concurrency=4, timeout_s=60)
    assert remote.kind == "transformers"
    kw = dict(seed=0, temperature=0, max_new_tokens=30, stop_at_step=stop_at_step)
    want, got = local.sample(PROMPTS, 3, **kw), remote.sample(PROMPTS, 3, **kw)
    assert rows(got) == rows(want)
    assert got.prompt_tokens == want.prompt_tokens == [len(i) for i in local.encode(PROMPTS)]
    assert got.gen_tokens == want.gen_tokens
    finishes = {c.finish for cs in got.completions for c in cs}
    assert finishes == ({"step"} if stop_at_step else {"eos", "length"})  # every greedy row here has a step


def test_tiny_top_p_at_temperature_one_is_greedy(server, tok, local):
    remote = ServerSampler(*server, tok, max_concurrency=4, timeout_s=60)
    got = remote.sample(PROMPTS, 2, seed=3, temperature=1.0, top_p=1e-6, max_new_tokens=20)
    assert rows(got) == rows(local.sample(PROMPTS, 2, seed=0, temperature=0, max_new_tokens=20))


def test_seeded_sampling_reproduces_and_varies(server, tok):
    # transformers serve's seed is torch's global seed: reproducible with one request in flight
    remote = ServerSampler(*server, tok, max_concurrency=1, timeout_s=60)
    prompts, kw = PROMPTS[:5], dict(n=3, temperature=1.0, max_new_tokens=20)
    a, b, c = (remote.sample(prompts, seed=s, **kw) for s in (11, 11, 12))
    assert rows(a) == rows(b)
    assert rows(a) != rows(c)
    # sampling is really on (the server would be greedy without ServerSampler's generation_config)
    assert sum(len({tuple(x.tokens) for x in cs}) > 1 for cs in a.completions) >= len(prompts) - 1
    step = remote.sample(prompts, seed=11, stop_at_step=True, **kw)
    for samples, stop_at_step in ((a, False), (step, True)):
        for cs in samples.completions:
            for x in cs:
                assert 1 <= len(x.tokens) <= 20 and EOS not in x.tokens[:-1]
                assert x.text == tok.decode(x.tokens[:-1] if x.finish == "eos" else x.tokens)
                assert x.finish == ("eos" if x.tokens[-1] == EOS else
                                    "step" if stop_at_step and x.text.endswith("\n") else "length")
                if x.finish == "length":
                    assert len(x.tokens) == 20
                if stop_at_step:
                    assert "\n" not in x.text[:-1]
    assert {x.finish for cs in step.completions for x in cs} >= {"step", "length"}


def test_killed_server_raises_naming_url_and_model(servers, tok):
    url, name, proc = servers[1]
    remote = ServerSampler(url, name, tok, retries=1, timeout_s=30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with pytest.raises(GenerationServerError) as e:
        remote.sample(PROMPTS, 2, seed=0, temperature=0, max_new_tokens=10)
    assert url in str(e.value) and repr(name) in str(e.value) and "unreachable" in str(e.value)
    with pytest.raises(GenerationServerError, match="unreachable") as e:
        ServerSampler(url, name, tok, retries=0)
    assert url in str(e.value) and repr(name) in str(e.value)


def test_wrong_model_name_raises(server, tok):
    url, name = server
    with pytest.raises(GenerationServerError) as e:
        ServerSampler(url, "other-policy", tok)
    msg = str(e.value)
    assert url in msg and "'other-policy'" in msg and repr(name) in msg and "generation.model" in msg


def test_http_error_and_timeout_raise(server, tok):
    url, name = server
    remote = ServerSampler(url, name, tok, retries=1, timeout_s=60)
    remote.model = "other-policy"  # the server refuses it (HTTP 400): not retried
    with pytest.raises(GenerationServerError, match="HTTP 400") as e:
        remote.sample(PROMPTS[:2], 1, seed=0, temperature=0, max_new_tokens=10)
    assert url in str(e.value) and "'other-policy'" in str(e.value)
    remote.model, remote.timeout_s = name, 0.001
    with pytest.raises(GenerationServerError, match="timeout_s=0.001.*after 2 attempts"):
        remote.sample(PROMPTS[:2], 1, seed=0, temperature=0, max_new_tokens=30)


def test_token_id_responses_map_exactly(server, tok):
    """The vLLM / SGLang path (one request per prompt, choices with token_ids), fed response bodies of
    the shape vLLM's and SGLang's protocols define: no such server runs here."""
    remote = ServerSampler(*server, tok)
    remote.kind = "vllm"
    body = remote._body("Q:1+2\n", 4, 7, 1.0, 0.9, 5, True)
    assert body["n"] == 4 and body["stop"] == ["\n"] and body["return_token_ids"] and body["top_k"] == -1
    assert "generation_config" not in body
    p = tok("Q:1+2\n").input_ids
    nl, d1, d2 = tok("\n").input_ids[0], tok("1").input_ids[0], tok("2").input_ids[0]
    choices = [  # EOS; step (vLLM cuts the stop string off the text); EOS as the 5th token, which vLLM
        # reports as "length"; the length limit; SGLang's matched_stop names the stop string
        {"index": 0, "text": "1", "token_ids": [d1, EOS], "finish_reason": "stop", "stop_reason": None},
        {"index": 1, "text": "12", "token_ids": [d1, d2, nl], "finish_reason": "stop", "stop_reason": "\n"},
        {"index": 2, "text": "1212", "token_ids": [d1, d2, d1, d2, EOS], "finish_reason": "length"},
        {"index": 3, "text": "12121", "token_ids": [d1, d2, d1, d2, d1], "finish_reason": "length"},
    ]
    resp = {"choices": choices, "usage": {"prompt_tokens": len(p), "completion_tokens": 15}}
    comps, n_prompt = remote._parse(resp, 4, 5, True, p)
    assert n_prompt == len(p)
    assert [(c.text, c.finish, c.gen_tokens) for c in comps] == \
        [("1", "eos", 2), ("12\n", "step", 3), ("1212", "eos", 5), ("12121", "length", 5)]
    sglang = {"choices": [{"index": 0, "text": "1", "token_ids": [d1, nl], "finish_reason": "stop",
                           "matched_stop": "\n", "prompt_token_ids": p}],
              "usage": {"prompt_tokens": len(p), "completion_tokens": 2}}
    assert remote._parse(sglang, 1, 5, True, p)[0][0].finish == "step"

    def refused(resp, match):
        with pytest.raises(GenerationServerError, match=match):
            remote._parse(resp, 4, 5, True, p)
    refused(resp | {"usage": {"prompt_tokens": len(p), "completion_tokens": 14}}, "usage says 14")
    refused(resp | {"usage": {"prompt_tokens": len(p) + 1, "completion_tokens": 15}}, "local tokenizer")
    refused(resp | {"choices": choices[:3]}, "asked for 4 choices, got 3")
    odd = [dict(choices[0], token_ids=[d1, d2], stop_reason=d2)] + choices[1:]  # a stop token we do not know
    refused(resp | {"choices": odd, "usage": {"prompt_tokens": len(p), "completion_tokens": 15}}, "neither an EOS")
    past = [dict(choices[3], token_ids=[d1, nl, d1, d2, d1])] + choices[:3]  # went on past a separator
    refused(resp | {"choices": past}, "does not stop at its first EOS / separator")
    no_ids = [{k: v for k, v in c.items() if k != "token_ids"} for c in choices]
    refused(resp | {"choices": no_ids}, "no token_ids for 4 choices")
