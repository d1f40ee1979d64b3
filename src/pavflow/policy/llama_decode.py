"""Hand-written decode for Llama-family models: the sampler's fast path.

The prompt is encoded by the model's own forward (prefill); its cache is copied once into one
preallocated static KV tensor, and every decode step runs a plain-torch Llama forward for one token
per row that writes its key/value in place (no torch.cat of the cache per step), with fused q|k|v
and gate|up weights, rotary cos/sin from a precomputed table and F.scaled_dot_product_attention over
the filled prefix under the padding mask. The ops mirror transformers' Llama (same RMSNorm, rotary and
packed-GQA attention formulas), so logits agree with the model's forward up to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

ROPE_TYPES = ("default", "linear", "llama3")  # cos/sin depend on the position only (not "dynamic")


def supports(model) -> bool:
    """A LlamaForCausalLM whose modules are the plain ones this decoder reimplements."""
    from transformers import LlamaForCausalLM
    if not isinstance(model, LlamaForCausalLM) or model.config.model_type != "llama":
        return False
    rope = getattr(model.config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") not in ROPE_TYPES:
        return False
    layers = model.model.layers
    linears = [model.lm_head] + [m for l in layers for m in (l.self_attn.q_proj, l.self_attn.k_proj,
                                                           l.self_attn.v_proj, l.self_attn.o_proj,
                                                           l.mlp.gate_proj, l.mlp.up_proj, l.mlp.down_proj)]
    return all(type(m) is nn.Linear for m in linears) and model.config._attn_implementation in ("sdpa", "eager")


class LlamaWeights:
    """The model's weights rearranged for decoding (q|k|v and gate|up concatenated). Rebuilt when any
    parameter changed in place (optimizer step, load_state_dict) or was replaced."""

    def __init__(self, model):
        self.model, self.key = model, None

    def get(self):
        key = tuple((p.data_ptr(), p._version) for p in self.model.parameters())
        if key != self.key:
            self.build()
            self.key = key
        return self

    @torch.no_grad()
    def build(self):
        m, cfg = self.model.model, self.model.config
        a0 = m.layers[0].self_attn
        self.H, self.K, self.D = cfg.num_attention_heads, cfg.num_key_value_heads, a0.head_dim
        self.scale = a0.scaling
        self.eps = m.norm.variance_epsilon
        self.act = m.layers[0].mlp.act_fn
        self.embed, self.norm, self.head = m.embed_tokens.weight, m.norm.weight, self.model.lm_head.weight
        self.head_b = self.model.lm_head.bias
        cat = lambda *ms: (torch.cat([x.weight for x in ms]),
                           None if ms[0].bias is None else torch.cat([x.bias for x in ms]))
        self.layers = []
        for l in m.layers:
            a, mlp = l.self_attn, l.mlp
            self.layers.append((l.input_layernorm.weight, *cat(a.q_proj, a.k_proj, a.v_proj),
                                a.o_proj.weight, a.o_proj.bias, l.post_attention_layernorm.weight,
                                *cat(mlp.gate_proj, mlp.up_proj), mlp.down_proj.weight, mlp.down_proj.bias))


def rms(x, w, eps):  # LlamaRMSNorm, op for op
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


class LlamaDecode:
    """Decode state of one batch: R rows continuing U prompts (row r continues prompt fan[r]).

    kv: (n_layers, 2, R, K, S, D) with S = L + max_new_tokens - 1 columns: the padded prompt, then one
    column per decode step (all rows share the column, so a step writes one slice). valid: (R, S),
    True on key positions that take part in attention (left padding excluded)."""

    def __init__(self, model, weights: LlamaWeights, max_new_tokens: int):
        self.model, self.w, self.max_new = model, weights.get(), max_new_tokens

    @torch.no_grad()
    def prefill(self, input_ids, mask, pos, fan):
        """input_ids, mask, pos: (U, L) left padded; fan: (R,). Returns last-position logits (R, V)."""
        w, (U, L), R = self.w, input_ids.shape, len(fan)
        cache = DynamicCache()
        logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1]  # (U, V)
        S = L + max(self.max_new - 1, 0)
        kv = torch.empty((len(w.layers), 2, R, w.K, S, w.D), dtype=w.embed.dtype, device=fan.device)
        for i, layer in enumerate(cache.layers):
            kv[i, 0, :, :, :L] = layer.keys[fan]
            kv[i, 1, :, :, :L] = layer.values[fan]
        self.kv, self.t = kv, L  # t: the column the next step writes
        self.valid = torch.zeros((R, S), dtype=torch.bool, device=fan.device)
        self.valid[:, :L] = mask[fan].bool()
        self.pos = pos[fan, -1] + 1  # (R,) position id of the next token
        # rotary table for every position a row can reach; same formula as the model's rotary_emb
        n_pos = int(pos.max()) + self.max_new + 1
        cos, sin = self.model.model.rotary_emb(kv, torch.arange(n_pos, device=fan.device)[None])
        self.cos, self.sin = cos[0], sin[0]  # (n_pos, D)
        return logits[fan]

    def keep(self, idx):
        """Drop finished rows: keep rows idx (r',)."""
        self.kv = self.kv.index_select(2, idx)
        self.valid, self.pos = self.valid[idx], self.pos[idx]

    @torch.no_grad()
    def step(self, nxt):
        """Feed one token per row, nxt (r,); returns the next logits (r, V)."""
        w, t = self.w, self.t
        H, K, D, eps, r = w.H, w.K, w.D, w.eps, len(nxt)
        self.valid[:, t] = True
        mask = self.valid[:, None, None, :t + 1]  # (r, 1, 1, t+1), broadcast over heads and grouped queries
        cos, sin = self.cos[self.pos][:, None], self.sin[self.pos][:, None]  # (r, 1, D)
        x = F.embedding(nxt, w.embed)  # (r, h)
        for i, (w_in, w_qkv, b_qkv, w_o, b_o, w_post, w_gu, b_gu, w_down, b_down) in enumerate(w.layers):
            qkv = F.linear(rms(x, w_in, eps), w_qkv, b_qkv)  # (r, (H + 2K) D)
            qk = qkv[:, :(H + K) * D].view(r, H + K, D)
            qk = qk * cos + torch.cat((-qk[..., D // 2:], qk[..., :D // 2]), -1) * sin  # rotary on q and k
            self.kv[i, 0, :, :, t] = qk[:, H:]
            self.kv[i, 1, :, :, t] = qkv[:, (H + K) * D:].view(r, K, D)
            # packed GQA as transformers does for one query token: the H // K heads of a group become
            # query positions of its key/value head
            q = qk[:, :H].view(r, K, H // K, D)
            a = F.scaled_dot_product_attention(q, self.kv[i, 0, :, :, :t + 1], self.kv[i, 1, :, :, :t + 1],
                                               attn_mask=mask, scale=w.scale)  # (r, K, H // K, D)
            x = x + F.linear(a.reshape(r, H * D), w_o, b_o)
            g, u = F.linear(rms(x, w_post, eps), w_gu, b_gu).chunk(2, -1)  # (r, I) each
            x = x + F.linear(w.act(g) * u, w_down, b_down)
        self.t, self.pos = t + 1, self.pos + 1
        return F.linear(rms(x, w.norm, eps), w.head, w.head_b)  # (r, V)


class HFDecode:
    """The generic path, for any causal LM: the model's own forward with a DynamicCache."""

    def __init__(self, model, max_new_tokens: int):
        self.model = model

    @torch.no_grad()
    def prefill(self, input_ids, mask, pos, fan):
        self.cache = DynamicCache()
        # logits_to_keep=1: only the last position's logits are used (a 49k vocabulary makes the rest costly)
        logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                            past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits[:, -1]  # (U, V)
        if len(fan) != len(input_ids) or (fan != torch.arange(len(fan), device=fan.device)).any():
            self.cache.batch_select_indices(fan)
        self.mask, self.pos = mask[fan], pos[fan, -1] + 1  # (R, L), (R,)
        return logits[fan]

    def keep(self, idx):
        self.cache.batch_select_indices(idx)
        self.mask, self.pos = self.mask[idx], self.pos[idx]

    @torch.no_grad()
    def step(self, nxt):
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        logits = self.model(input_ids=nxt[:, None], attention_mask=self.mask, position_ids=self.pos[:, None],
                            past_key_values=self.cache, use_cache=True).logits[:, -1]
        self.pos = self.pos + 1
        return logits
