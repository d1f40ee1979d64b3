"""Hand-written decode for Llama-family models: the sampler's fast path, and the generic path.

`LlamaDecode` runs a plain-torch Llama forward (prefill and one token per row per step) reading the
weights of the HF module: fused q|k|v and gate|up weights, rotary cos/sin from a precomputed table,
keys/values written in place into preallocated static cache tensors (no torch.cat of the cache per
step), attention as batched matmuls over the filled columns under the left-padding mask. The ops
mirror transformers' Llama (same RMSNorm, rotary and grouped-query attention formulas), so logits agree
with the model's own forward up to float rounding (~1e-6 relative in fp32). `HFDecode` is the model's
own forward with a DynamicCache, for every other model.
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
        self.arena: dict[str, torch.Tensor] = {}

    def buffer(self, name: str, shape) -> torch.Tensor:
        """An uninitialised tensor of `shape`, backed by memory kept across calls: a fresh allocation of
        this size is page-faulted in on first touch, which costs more than the decode writes into it."""
        n, buf = torch.Size(shape).numel(), self.arena.get(name)
        if buf is None or buf.numel() < n or buf.dtype != self.embed.dtype or buf.device != self.embed.device:
            buf = self.arena[name] = self.embed.new_empty(n)
        return buf[:n].view(shape)

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


def rms(x, w, eps):
    """LlamaRMSNorm as one fused op (bitwise equal to the module's op-by-op formula in fp32)."""
    return F.rms_norm(x, w.shape, w, eps)


class LlamaDecode:
    """Decode state of one batch: R rows continuing U prompts, row r continues prompt fan[r] (sorted).

    Generated keys/values are stored column-major, kvg (n_layers, 2, C, R, K, D): column c of every row
    is one contiguous (R, K, D) slab, so a step writes one slab per layer and the attention reads the
    filled slabs in order (a row-major cache made both strided and cost twice as much on the CPU,
    where decode attention is bound by memory traffic).
    With fan-out (R > U) the prompt's keys/values are kept once per prompt, not per row: kvp
    (n_layers, 2, U, K, L, D), the left-padded prompt, and kvg has C = G = max_new_tokens - 1 columns
    for the generated tokens. A row attends to its prompt's prefix and to its own generated tokens
    under one softmax over both parts. For the prefix product the rows of a prompt are stacked as
    query positions of one matmul (slot[r] = rank of row r among its prompt's rows), so each prefix is
    read once per step however many rows continue it. Without fan-out (R == U) each row's prompt sits
    in the first L columns of kvg (C = L + G)."""

    def __init__(self, model, weights: LlamaWeights, max_new_tokens: int):
        self.model, self.w, self.max_new = model, weights.get(), max_new_tokens

    @torch.no_grad()
    def prefill(self, input_ids, mask, pos, fan):
        """input_ids, mask, pos: (U, L) left padded; fan: (R,). Returns last-position logits (R, V)."""
        w, R, dev, (U, L) = self.w, len(fan), fan.device, input_ids.shape
        H, K, D, eps, n_layers, G = w.H, w.K, w.D, w.eps, len(w.layers), max(self.max_new - 1, 1)
        # rotary table for every position a row can reach; same formula as the model's rotary_emb
        n_pos = int(pos.max()) + self.max_new + 1
        cos, sin = self.model.model.rotary_emb(w.embed, torch.arange(n_pos, device=dev)[None])
        # rotate_half(x) * sin == x.roll(D/2) * sin with the first half of sin negated (exactly)
        self.cos, self.sin = cos[0], torch.cat((-sin[0, :, :D // 2], sin[0, :, D // 2:]), -1)  # (n_pos, D)
        neg = torch.finfo(w.embed.dtype).min
        bias = torch.zeros((U, L), dtype=w.embed.dtype, device=dev).masked_fill_(mask == 0, neg)  # left padding
        self.spare, self.pos = None, pos[:, -1] + 1  # (U,) position id of the first generated token
        self.shared = R > U
        if self.shared:  # prefix kept per prompt, rows hold their generated tokens only
            self.kvp = w.buffer("prefix", (n_layers, 2, U, K, L, D))
            self.kvg = w.buffer("a", (n_layers, 2, G, R, K, D))
            self.pbias, self.j0 = bias, 0
        else:  # one row per prompt: each row holds its prompt and its generated tokens
            self.kvg = w.buffer("a", (n_layers, 2, L + G, R, K, D))
            self.pbias, self.j0 = torch.cat((bias, bias.new_zeros((R, G))), 1), L  # (R, L + G)
        self.j = self.j0  # the column of kvg the next step writes

        # the prompt through the same layers, keys/values into the cache. Causal and padding mask as an
        # additive bias: a padding query sees only masked keys, so gets finite garbage (never NaN), which
        # no real position attends to.
        allowed = torch.ones((L, L), dtype=torch.bool, device=dev).tril() & (mask[:, None, None, :] == 1)
        attn_bias = torch.zeros(allowed.shape, dtype=w.embed.dtype, device=dev).masked_fill_(~allowed, neg)
        c, s = self.cos[pos][:, :, None], self.sin[pos][:, :, None]  # (U, L, 1, D)
        x = F.embedding(input_ids, w.embed)  # (U, L, h)
        for i, (w_in, w_qkv, b_qkv, w_o, b_o, w_post, w_gu, b_gu, w_down, b_down) in enumerate(w.layers):
            qkv = F.linear(rms(x, w_in, eps), w_qkv, b_qkv)  # (U, L, (H + 2K) D)
            qk = qkv[..., :(H + K) * D].view(U, L, H + K, D)
            qk = qk * c + qk.roll(D // 2, -1) * s
            k, v = qk[:, :, H:], qkv[..., (H + K) * D:].view(U, L, K, D)  # (U, L, K, D)
            if self.shared:
                self.kvp[i, 0], self.kvp[i, 1] = k.transpose(1, 2), v.transpose(1, 2)
                k, v = self.kvp[i, 0], self.kvp[i, 1]  # (U, K, L, D)
            else:
                self.kvg[i, 0, :L], self.kvg[i, 1, :L] = k.transpose(0, 1), v.transpose(0, 1)  # (L, U, K, D)
                k, v = k.transpose(1, 2), v.transpose(1, 2)
            q = qk[:, :, :H].transpose(1, 2)  # (U, H, L, D)
            if i == n_layers - 1:  # past the last keys/values only the last position matters (its logits)
                q, x, attn_bias = q[:, :, -1:], x[:, -1:], attn_bias[:, :, -1:]
            if H > K:
                k, v = k.repeat_interleave(H // K, 1), v.repeat_interleave(H // K, 1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=w.scale)  # (U, H, l, D)
            x = x + F.linear(a.transpose(1, 2).reshape(U, -1, H * D), w_o, b_o)
            g, u = F.linear(rms(x, w_post, eps), w_gu, b_gu).chunk(2, -1)
            x = x + F.linear(w.act(g) * u, w_down, b_down)
        logits = F.linear(rms(x[:, -1], w.norm, eps), w.head, w.head_b)  # (U, V)
        self.set_rows(fan)
        return logits[fan]

    def set_rows(self, fan):
        """Row bookkeeping for fan (R,), sorted; prompts no row continues are dropped."""
        if not self.shared:  # fan indexes the rows of the previous call
            self.pbias, self.pos = self.pbias[fan], self.pos[fan]
            self.row_bias, self.row_pos = self.pbias[:, None, None], self.pos  # (R, 1, 1, L + G), (R,)
            return
        used, fan = torch.unique(fan, return_inverse=True)
        if len(used) < self.kvp.shape[2]:
            self.kvp, self.pbias, self.pos = self.kvp.index_select(2, used), self.pbias[used], self.pos[used]
        self.fan = fan
        self.slot = torch.arange(len(fan), device=fan.device) - torch.searchsorted(fan, fan)
        self.n_slot = int(self.slot.max()) + 1
        self.row_bias = self.pbias[fan][:, None, None]  # (R, 1, 1, L)
        self.row_pos = self.pos[fan]  # (R,)

    def keep(self, idx):
        """Drop finished rows: keep rows idx (r',), sorted. Only the filled columns are copied, into the
        leading rows of a second buffer (the two buffers then swap roles)."""
        if self.spare is None:
            self.spare = self.w.buffer("b", self.kvg.shape)
        out = self.spare[:, :, :, :len(idx)]
        if out.is_cpu:
            torch.index_select(self.kvg[:, :, :self.j], 3, idx, out=out[:, :, :self.j])
        else:  # index_select into a strided out= is a CPU-tested path only
            out[:, :, :self.j] = self.kvg[:, :, :self.j].index_select(3, idx)
        self.spare, self.kvg = self.kvg, out
        self.set_rows(self.fan[idx] if self.shared else idx)

    @torch.no_grad()
    def step(self, nxt):
        """Feed one token per row, nxt (r,); returns the next logits (r, V)."""
        w, j = self.w, self.j
        H, K, D, eps, r = w.H, w.K, w.D, w.eps, len(nxt)
        rep = H // K
        pos = self.row_pos + (j - self.j0)
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # (r, 1, D)
        x = F.embedding(nxt, w.embed)  # (r, h)
        for i, (w_in, w_qkv, b_qkv, w_o, b_o, w_post, w_gu, b_gu, w_down, b_down) in enumerate(w.layers):
            qkv = F.linear(rms(x, w_in, eps), w_qkv, b_qkv)  # (r, (H + 2K) D)
            qk = qkv[:, :(H + K) * D].view(r, H + K, D)
            qk = qk * cos + qk.roll(D // 2, -1) * sin  # rotary on q and k
            self.kvg[i, 0, j], self.kvg[i, 1, j] = qk[:, H:], qkv[:, (H + K) * D:].view(r, K, D)
            # (r K, D, j+1) and (r K, j+1, D): the filled columns as one batched matrix per row and head
            kg = self.kvg[i, 0, :j + 1].view(j + 1, r * K, D).permute(1, 2, 0)
            vg = self.kvg[i, 1, :j + 1].view(j + 1, r * K, D).transpose(0, 1)
            # the H // K query heads sharing a key/value head are query positions of one product (GQA);
            # softmax in float32, as transformers' eager attention and SDPA do in bf16
            q = qk[:, :H].reshape(r, K, rep, D) * w.scale
            sg = torch.bmm(q.view(r * K, rep, D), kg).view(r, K, rep, j + 1)  # scores on generated tokens
            if not self.shared:
                p = (sg + self.row_bias[..., :j + 1]).softmax(-1, dtype=torch.float32).to(q.dtype)
                a = torch.bmm(p.view(r * K, rep, j + 1), vg)  # (r K, rep, D)
            else:
                kp, vp = self.kvp[i, 0], self.kvp[i, 1]  # (U, K, L, D)
                U, L, fan, slot, S = kp.shape[0], kp.shape[2], self.fan, self.slot, self.n_slot
                qp = q.new_zeros((U, K, S, rep, D))
                qp[fan, :, slot] = q  # (U, K, S, rep, D): rows of a prompt side by side
                sp = (qp.view(U, K, S * rep, D) @ kp.transpose(-1, -2)).view(U, K, S, rep, L)
                p = torch.cat((sp[fan, :, slot] + self.row_bias, sg), -1)  # (r, K, rep, L+j+1)
                p = p.softmax(-1, dtype=torch.float32).to(q.dtype)
                pp = p.new_zeros((U, K, S, rep, L))
                pp[fan, :, slot] = p[..., :L]
                a = (pp.view(U, K, S * rep, L) @ vp).view(U, K, S, rep, D)[fan, :, slot]
                a = a.view(r * K, rep, D) + torch.bmm(p[..., L:].reshape(r * K, rep, j + 1), vg)
            x = x + F.linear(a.reshape(r, H * D), w_o, b_o)
            g, u = F.linear(rms(x, w_post, eps), w_gu, b_gu).chunk(2, -1)  # (r, I) each
            x = x + F.linear(w.act(g) * u, w_down, b_down)
        self.j = j + 1
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
