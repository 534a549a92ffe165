"""
One decoder-only transformer for both worlds this project lives in:

- the CPU toy: a tiny Qwen2-style GPT trained from scratch here on byte tokens (train_sft.py; its --arch gpt2
  builds the GPT-2 style instead: learned positions, LayerNorm, GELU);
- the paper's models: Qwen2-family checkpoints such as DeepSeek-R1-Distill-Qwen-1.5B (RoPE, RMSNorm,
  SwiGLU, grouped-query attention, q/k/v bias), plus GPT-2 and bias-free Llama, from a local
  Hugging Face folder. Nothing is ever downloaded.

The same class is the critic: with `GPTConfig.value_head=True` the language-model head is replaced by a
scalar head and `forward` returns one value per position instead of logits.

Conventions used everywhere in the project:
- `attention_mask` is (batch, keys) with 1 for real tokens and 0 for left padding; it covers every column
  of the KV cache plus the new tokens. Position ids default to `cumsum(mask) - 1`, so a left-padded row
  produces the logits of the same row without padding, up to rounding (other shapes round differently:
  about 1e-5 in fp32 on the toy).
- `forward(idx)` returns logits (batch, time, vocab): logits at position t score token t + 1.
"""

import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from common import InputError, lfs_pointer_error, read_json, save_safetensors, write_json


class CheckpointError(InputError):
    """A checkpoint folder that cannot be loaded; the message names the file, tensor or field."""


@dataclass
class GPTConfig:
    vocab_size: int = 258
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None: n_head; fewer: grouped-query attention (Qwen2)
    n_embd: int = 128
    n_inner: int = 512  # MLP hidden width
    head_dim: int | None = None  # None: n_embd // n_head
    max_seq_len: int = 512
    norm: str = "layernorm"  # "layernorm" (GPT-2) | "rmsnorm" (Qwen2, Llama)
    norm_eps: float = 1e-5
    pos: str = "learned"  # "learned" (GPT-2) | "rope"
    rope_theta: float = 10000.0
    mlp: str = "gelu"  # "gelu" (tanh approximation, GPT-2) | "swiglu"
    qkv_bias: bool = True  # GPT-2 and Qwen2 have q/k/v biases, Llama does not
    bias: bool = True  # biases on the output/MLP projections and norms (GPT-2 only)
    tie_embeddings: bool = True
    value_head: bool = False  # critic: scalar value per position instead of logits

    def __post_init__(self):
        for f in fields(self):  # every field checked for its type: config.json files are ours or Hugging Face's
            value, allowed = getattr(self, f.name), getattr(f.type, "__args__", (f.type,))  # int | None: (int, None)
            allowed += (int,) if float in allowed else ()  # 10000 is a fine rope_theta
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise CheckpointError(f"config.json: {f.name} must be {' or '.join(t.__name__ for t in allowed)}, "
                                      f"got {value!r}")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        checks = {
            "norm": self.norm in ("layernorm", "rmsnorm"),
            "pos": self.pos in ("learned", "rope"),
            "mlp": self.mlp in ("gelu", "swiglu"),
            "n_head": self.n_head > 0 and self.n_kv_head > 0 and self.n_head % self.n_kv_head == 0,
            **{name: getattr(self, name) > 0 for name in ("vocab_size", "n_embd", "max_seq_len")},
            **{name: getattr(self, name) >= 0 for name in ("n_layer", "n_inner")},
            **{name: 0 < getattr(self, name) < math.inf for name in ("norm_eps", "rope_theta")},  # NaN fails too
        }
        for name, ok in checks.items():
            if not ok:
                raise CheckpointError(f"GPTConfig: unsupported {name}={getattr(self, name)!r}")
        if self.head_dim is None:
            self.head_dim = self.n_embd // self.n_head
        if self.pos == "rope" and (self.head_dim < 2 or self.head_dim % 2):
            raise CheckpointError(f"GPTConfig: RoPE needs an even head_dim of 2 or more, got {self.head_dim} "
                                  f"(n_embd {self.n_embd} / n_head {self.n_head}): use fewer heads or a wider model")

    @classmethod
    def from_dict(cls, d):
        """A config from a project checkpoint's config.json (__post_init__ checks each field's type)."""
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown:
            raise CheckpointError(f"config.json: unknown GPTConfig fields {unknown}")
        if missing:  # a default would build another model silently (a missing "norm": layernorm for rmsnorm)
            raise CheckpointError(f"config.json: GPTConfig fields {missing} are missing; a checkpoint saved by this "
                                  "project has them all (a Hugging Face config.json names its model_type)")
        return cls(**d)


# ----------------------------------------------------------------------------------------------------
# Building blocks


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # Normalise in fp32 and cast back before the scale, exactly as Qwen2/Llama do, so bf16 matches.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def make_norm(cfg):
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, cfg.norm_eps)
    return nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)


def rope_cos_sin(position_ids, head_dim, theta, dtype):
    """cos/sin tables of shape (batch, 1, time, head_dim) for the given integer positions (fp32 maths)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device).float() / head_dim))
    freqs = position_ids.float()[..., None] * inv_freq  # (B, T, head_dim/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    # The "rotate half" layout of Qwen2/Llama checkpoints (not the interleaved one of the RoPE paper).
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class KVCache:
    """Preallocated keys/values for every layer: (layers, batch, kv_heads, max_len, head_dim).

    All rows share one write position, which is what left padding buys: every row's next token goes in
    the same column, and the attention mask hides the padding columns.
    """

    def __init__(self, k, v):
        self.k, self.v = k, v  # only the filled columns are ever read
        self.pos = 0  # columns filled so far

    @property
    def max_len(self):
        return self.k.size(3)

    def update(self, layer, k, v):
        """Write the new keys/values after the filled columns; return the filled prefix including them."""
        end = self.pos + k.size(2)
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def keep_rows(self, rows):
        """Drop finished rows (index tensor of rows to keep) so decoding cost follows the live batch."""
        self.k = self.k[:, rows]
        self.v = self.v[:, rows]


class StaticCache:
    """The cache of a fixed-shape decode step (sample.py's graph sampler): per layer, views of the first rows
    and columns of the buffers, (rows, kv_heads, width, head_dim); the new token is written at column `col`
    (a tensor, so that a CUDA graph replays the step at every column) and all `width` columns are read
    back, those not yet written hidden by the mask."""

    def __init__(self, k, v, col):
        self.k, self.v, self.col = k, v, col

    def update(self, layer, k, v):  # k, v in the cache's dtype: under autocast RoPE may return fp32 keys
        self.k[layer].index_copy_(2, self.col, k.to(self.k[layer].dtype))
        self.v[layer].index_copy_(2, self.col, v.to(self.v[layer].dtype))
        return self.k[layer], self.v[layer]


class Attention(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.sizes = (cfg.n_head * hd, cfg.n_kv_head * hd, cfg.n_kv_head * hd)
        if fused:  # one q|k|v matmul (an inference copy: fewer, larger kernels when decoding)
            self.qkv = nn.Linear(cfg.n_embd, sum(self.sizes), bias=cfg.qkv_bias)
        else:
            self.q = nn.Linear(cfg.n_embd, cfg.n_head * hd, bias=cfg.qkv_bias)
            self.k = nn.Linear(cfg.n_embd, cfg.n_kv_head * hd, bias=cfg.qkv_bias)
            self.v = nn.Linear(cfg.n_embd, cfg.n_kv_head * hd, bias=cfg.qkv_bias)
        self.o = nn.Linear(cfg.n_head * hd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x, rope, mask, cache, layer):
        B, T, _ = x.shape
        cfg = self.cfg
        q, k, v = self.qkv(x).split(self.sizes, -1) if hasattr(self, "qkv") else (self.q(x), self.k(x), self.v(x))
        q = q.view(B, T, cfg.n_head, cfg.head_dim).transpose(1, 2)
        k = k.view(B, T, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)
        v = v.view(B, T, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        if T == 1 and cfg.n_kv_head != cfg.n_head:
            # Decoding one token: the query heads that share a KV head become that head's queries, so no
            # copy of the keys and values is made per query head (mask: (B, 1, 1, keys), the same for all).
            q = q.reshape(B, cfg.n_kv_head, cfg.n_head // cfg.n_kv_head, cfg.head_dim)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).reshape(B, cfg.n_head, 1, cfg.head_dim)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v,
                attn_mask=mask,
                is_causal=mask is None and T > 1,  # no mask given means "plain causal, no cache prefix"
                enable_gqa=cfg.n_kv_head != cfg.n_head,
            )
        return self.o(y.transpose(1, 2).reshape(B, T, cfg.n_head * cfg.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        if self.swiglu and fused:  # one gate|up matmul (an inference copy)
            self.gate_up = nn.Linear(cfg.n_embd, 2 * cfg.n_inner, bias=cfg.bias)
        elif self.swiglu:
            self.gate = nn.Linear(cfg.n_embd, cfg.n_inner, bias=cfg.bias)
        if not (self.swiglu and fused):
            self.up = nn.Linear(cfg.n_embd, cfg.n_inner, bias=cfg.bias)
        self.down = nn.Linear(cfg.n_inner, cfg.n_embd, bias=cfg.bias)

    def forward(self, x):
        if hasattr(self, "gate_up"):
            gate, up = self.gate_up(x).chunk(2, -1)
            return self.down(F.silu(gate) * up)
        if self.swiglu:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg, fused=False):
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg, fused)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg, fused)

    def forward(self, x, rope, mask, cache=None, layer=0):
        x = x + self.attn(self.norm1(x), rope, mask, cache, layer)
        return x + self.mlp(self.norm2(x))


def attention_mask_4d(attention_mask, q_len, k_len):
    """Boolean (batch, 1, q_len, k_len) mask: causal over absolute columns, padded keys hidden.

    Query i sits at column k_len - q_len + i. A left-padding query would see no key at all (softmax of
    nothing is NaN), so every query may always see itself; the outputs at pad positions are never used.
    """
    device = attention_mask.device
    q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k_pos = torch.arange(k_len, device=device)[None, :]
    allowed = (k_pos <= q_pos)[None, None] & attention_mask[:, None, None, :k_len].bool()
    return allowed | (k_pos == q_pos)[None, None]


def positions_from_mask(attention_mask, q_len):
    """Per-row positions of the last q_len columns: padding does not count, pads sit at 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -q_len:]


# ----------------------------------------------------------------------------------------------------
# The model


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, fused=False):
        super().__init__()
        self.config = cfg = config
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.pos == "learned":
            self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg, fused) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg)
        if cfg.value_head:
            self.value_head = nn.Linear(cfg.n_embd, 1)
        else:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            if cfg.tie_embeddings:
                self.lm_head.weight = self.tok_emb.weight
        self.grad_checkpointing = False  # recompute each block in backward: keep only each block's input (d values a
        # token per layer, not ~8d + 5 d_mlp: memory.py), and one block's activations at a time
        self.apply(self._init_weights)
        for block in self.blocks:
            for proj in (block.attn.o, block.mlp.down):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if cfg.value_head:
            nn.init.normal_(self.value_head.weight, std=1.0 / (cfg.n_embd + 1))

    def _init_weights(self, module):
        # GPT-2's scheme; __init__ then scales the residual output projections down by depth (nanoGPT).
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size, max_len, zeros=False):
        """An empty KVCache; under autocast it holds the autocast dtype (fp32 weights, bf16 cache).
        zeros: a cleared one, for steps that read columns not yet written (masked, but 0 * NaN is NaN)."""
        p = next(self.parameters())
        dtype = torch.get_autocast_dtype(p.device.type) if torch.is_autocast_enabled(p.device.type) else p.dtype
        cfg = self.config
        shape = (cfg.n_layer, batch_size, cfg.n_kv_head, max_len, cfg.head_dim)
        new = torch.zeros if zeros else torch.empty
        return KVCache(new(shape, dtype=dtype, device=p.device), new(shape, dtype=dtype, device=p.device))

    def rope_tables(self, max_len):
        """cos/sin of every position below max_len, (max_len, head_dim), for decode_step (None: learned)."""
        if self.config.pos != "rope":
            return None
        p = next(self.parameters())
        cos, sin = rope_cos_sin(torch.arange(max_len, device=p.device)[None], self.config.head_dim,
                                self.config.rope_theta, p.dtype)
        return cos[0, 0], sin[0, 0]

    def decode_step(self, token, position, key_mask, cache, rope):
        """Logits (rows, vocab) of one new token per row on a StaticCache; position (rows,) of the token,
        key_mask (rows, width): the cache columns each row sees, its new token's column included; rope:
        rope_tables(). Every shape is fixed, so a CUDA graph can capture the step."""
        x = self.tok_emb(token)[:, None]
        if rope is None:
            x = x + self.pos_emb(position)[:, None]
        else:
            rope = (rope[0].index_select(0, position)[:, None, None], rope[1].index_select(0, position)[:, None, None])
        # An additive mask, made once for all layers (a boolean one is converted by every attention call).
        mask = torch.zeros(key_mask.shape, dtype=x.dtype, device=x.device).masked_fill_(~key_mask, float("-inf"))
        mask = mask[:, None, None, :]
        for i, block in enumerate(self.blocks):
            x = block(x, rope, mask, cache, i)
        return self.lm_head(self.norm_f(x)[:, -1])

    def hidden_states(self, idx, attention_mask=None, position_ids=None, cache=None):
        """Final-norm hidden states (batch, time, n_embd); both heads read from here."""
        B, T = idx.shape
        cfg = self.config
        start = cache.pos if cache is not None else 0
        k_len = start + T
        if cache is not None and k_len > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} positions, {k_len} needed")
        if attention_mask is not None and attention_mask.shape != (B, k_len):
            raise ValueError(f"attention_mask must be (batch, cache + new tokens) = {(B, k_len)}, "
                             f"got {tuple(attention_mask.shape)}")
        if position_ids is None:
            if attention_mask is not None:
                position_ids = positions_from_mask(attention_mask, T)
            else:
                position_ids = torch.arange(start, k_len, device=idx.device).expand(B, T)
        if attention_mask is not None:
            mask = attention_mask_4d(attention_mask, T, k_len)
        elif start > 0 and T > 1:
            mask = attention_mask_4d(torch.ones(B, k_len, device=idx.device), T, k_len)
        else:
            mask = None  # plain causal (T > 1) or one new token that may see everything before it

        x = self.tok_emb(idx)
        rope = None
        if cfg.pos == "learned":
            if k_len > cfg.max_seq_len:
                raise ValueError(f"sequence of {k_len} tokens exceeds max_seq_len={cfg.max_seq_len}")
            x = x + self.pos_emb(position_ids)
        else:
            rope = rope_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, x.dtype)
        for i, block in enumerate(self.blocks):
            if self.grad_checkpointing and self.training and cache is None:
                x = checkpoint(block, x, rope, mask, use_reentrant=False)
            else:
                x = block(x, rope, mask, cache, i)
        if cache is not None:
            cache.pos = k_len
        return self.norm_f(x)

    def forward(self, idx, attention_mask=None, position_ids=None, cache=None, last_only=False):
        """Logits (batch, time, vocab), or values (batch, time) for a critic.

        last_only: score only the last position (what a sampler needs after prefill).
        """
        h = self.hidden_states(idx, attention_mask, position_ids, cache)
        if last_only:
            h = h[:, -1:]
        if self.config.value_head:
            return self.value_head(h).squeeze(-1)
        return self.lm_head(h)

    # ------------------------------------------------------------------------------------------------
    # Checkpoints: our own format is a folder with model.safetensors + config.json (GPTConfig fields).

    def save(self, path, state=None):
        """Write model.safetensors and config.json into folder `path`, each file atomically. state: the
        weights to write if not this module's own (a sharded model's gathered weights)."""
        os.makedirs(path, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in (state or self.state_dict()).items()}
        if self.config.tie_embeddings and "lm_head.weight" in state:
            del state["lm_head.weight"]  # the same storage as tok_emb.weight; safetensors refuses aliases
        save_safetensors(state, os.path.join(path, "model.safetensors"))
        write_json({"format": "gpt", **asdict(self.config)}, os.path.join(path, "config.json"))

    @classmethod
    def from_pretrained(cls, path, dtype=None, device="cpu", value_head=False):
        """Load our checkpoint folder or a Hugging Face folder (model_type gpt2, qwen2, llama).

        dtype: None keeps the file's dtype. Tensors are read one at a time onto a model built on the meta
        device, so a bf16 1.5B model never exists as an fp32 copy in memory.
        value_head=True builds a critic: the LM head is dropped and a fresh scalar head is added (unless
        the checkpoint already is a critic).
        """
        config, tensors = read_checkpoint(path, critic=value_head)
        if value_head:
            config.value_head = True
        return build_from_tensors(cls, config, tensors, dtype, device)

    def inference_copy(self, dtype, fused=True):
        """A frozen copy of this model for sampling, in `dtype`, with q|k|v and gate|up each fused into one
        matmul (fused=True); load_weights_from refreshes it after each update."""
        with torch.device("meta"):
            copy = GPT(self.config, fused=fused)
        copy = copy.to_empty(device=next(self.parameters()).device).to(dtype).eval().requires_grad_(False)
        if self.config.tie_embeddings and not self.config.value_head:
            copy.lm_head.weight = copy.tok_emb.weight  # to_empty gave each module its own tensor
        copy.load_weights_from(self)
        return copy

    @torch.no_grad()
    def load_weights_from(self, src):
        """Copy (and cast) src's weights into this model, into its fused projections if it has them. src may
        be sharded by FSDP: its parameters are then gathered, which every process must do together."""
        mine = dict(self.named_parameters())
        cfg = self.config
        q, kv = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
        for name, p in src.named_parameters():
            full = p.full_tensor() if hasattr(p, "full_tensor") else p
            m = re.fullmatch(r"(.*)\.(?:(attn)\.([qkv])|(mlp)\.(gate|up))\.(weight|bias)", name)
            if name in mine or m is None:
                mine[name].copy_(full)
            elif m.group(2):  # attn.q / attn.k / attn.v -> rows of attn.qkv
                start = {"q": 0, "k": q, "v": q + kv}[m.group(3)]
                mine[f"{m.group(1)}.attn.qkv.{m.group(6)}"][start : start + full.size(0)].copy_(full)
            else:  # mlp.gate / mlp.up -> the halves of mlp.gate_up
                start = 0 if m.group(5) == "gate" else cfg.n_inner
                mine[f"{m.group(1)}.mlp.gate_up.{m.group(6)}"][start : start + full.size(0)].copy_(full)


# ----------------------------------------------------------------------------------------------------
# Log-probs of given tokens through the LM head (what PPO trains on)


def token_logprobs(logits, targets, temperature):
    """log softmax(logits / T) at the targets, and the entropy of that distribution, per position."""
    logp_all = (logits.float() / temperature).log_softmax(-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


HEAD_CHUNK_ELEMENTS = 2**24  # the most logits head_logprobs computes at once (64 MiB in fp32)


def fp32_logits(head, h):
    """head(h) in fp32, under bf16 autocast too. bf16 logits are rounded to steps of 1/16 to 1/8 at the sizes
    an LLM's top logits reach (8 to 32): a log-prob at T = 0.6 moves by up to 0.1 when a logit crosses a
    step, so every PPO ratio carried noise of about the clip range (0.2). A bf16 run's one fp32 matmul (TF32
    on a GPU: train_rl.py)."""
    with torch.autocast(h.device.type, enabled=False):
        return F.linear(h.float(), head.weight.float(), None if head.bias is None else head.bias.float())


def head_logprobs(head, h, targets, temperature, max_elements=None):
    """token_logprobs of head(h) (in fp32: fp32_logits), a chunk of positions at a time.

    A 151k-token vocabulary makes (batch, T, vocab) fp32 logits 5 GB for one 8k-token response; chunks of
    positions bound that, and with gradients on each chunk is recomputed in backward instead of stored.
    The checkpoint is the reentrant kind on purpose: its backward recomputes one chunk and finishes that
    chunk's backward before the next. The non-reentrant kind recomputes a chunk when the autograd engine
    first needs it, and the engine visits the first node of every chunk before finishing any, so all the
    chunks' logits came back at once (on an H200: an actor micro-batch of 16k tokens peaked 15 GiB above the
    memory estimate; on a CPU: 2.2 copies of the full logits instead of one chunk's). Do not use
    torch.autograd.grad through this function (reentrant checkpoints support only .backward()).
    """
    chunk = max(1, (max_elements or HEAD_CHUNK_ELEMENTS) // (h.size(0) * head.out_features))
    if chunk >= h.size(1):
        return token_logprobs(fp32_logits(head, h), targets, temperature)
    fn = lambda hc, tc: token_logprobs(fp32_logits(head, hc), tc, temperature)
    grad = torch.is_grad_enabled() and h.requires_grad
    parts = [checkpoint(fn, h[:, s : s + chunk], targets[:, s : s + chunk], use_reentrant=True)
             if grad else fn(h[:, s : s + chunk], targets[:, s : s + chunk])
             for s in range(0, h.size(1), chunk)]
    return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)


# ----------------------------------------------------------------------------------------------------
# Loading


def read_checkpoint_json(path, what):
    """A JSON object from a checkpoint folder (a CheckpointError names the file if it is missing or bad)."""
    try:
        raw = read_json(path, what)
    except InputError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return raw


def read_checkpoint(path, critic=False):
    """(GPTConfig, iterator of (our tensor name, tensor)) for our folder or a Hugging Face folder. A critic
    (value-head) checkpoint is refused unless `critic`, and so is a train_rl.py run folder."""
    if not os.path.isdir(path):
        problem = f"{path} is a file, not a" if os.path.exists(path) else f"{path}: no such"
        raise CheckpointError(f"{problem} checkpoint folder (expected config.json + *.safetensors)")
    for kind, actor in [("run", os.path.join(path, "checkpoint", "actor")),  # train_rl.py's --out
                        ("checkpoint", os.path.join(path, "actor"))]:  # or its checkpoint/ folder
        if os.path.isdir(actor):
            raise CheckpointError(f"{path} is a train_rl.py {kind} folder, not a model; its model is {actor}")
    snapshots = os.path.join(path, "snapshots")
    if not os.path.exists(os.path.join(path, "config.json")) and os.path.isdir(snapshots):
        found = sorted(os.path.join(snapshots, n) for n in os.listdir(snapshots))
        raise CheckpointError(f"{path} is a Hugging Face cache folder, not a model: give its snapshot, "
                              f"{' or '.join(found) or f'{snapshots}/<revision> (none is there yet)'}")
    raw = read_checkpoint_json(os.path.join(path, "config.json"), "config.json (is this a checkpoint folder?)")
    model_type = raw.get("model_type")
    if model_type is None:
        raw.pop("format", None)
        config, rename = GPTConfig.from_dict(raw), lambda name: [(name, lambda t: t)]
    elif model_type == "gpt2":
        config, rename = config_from_gpt2(raw), rename_gpt2
    elif model_type in ("qwen2", "llama"):
        config, rename = config_from_qwen2(raw), rename_qwen2
    else:
        raise CheckpointError(f"{path}/config.json: unsupported model_type {model_type!r} "
                              "(supported: gpt2, qwen2, llama, or this project's own checkpoints)")
    if config.value_head and not critic:
        actor = os.path.join(os.path.dirname(os.path.normpath(path)), "actor")
        raise CheckpointError(f"{path} is a critic (value-head) checkpoint, not a policy; give the actor beside it, "
                              f"{actor}")
    files = safetensors_files(path)
    check_weights(config, files, rename)  # headers only: a bad folder is refused before any long work
    return config, iter_tensors(files, rename)


def safetensors_files(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        weight_map = read_checkpoint_json(index, "index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
            raise CheckpointError(f"{index}: not a safetensors index (expected \"weight_map\": "
                                  f"{{tensor name: shard file}}, got {weight_map!r:.60})")
        files = [os.path.join(path, s) for s in sorted(set(weight_map.values()))]
    else:
        files = [os.path.join(path, "model.safetensors")]
    for f in files:
        if not os.path.isfile(f):
            raise CheckpointError(f"{f}: missing weights file{missing_weights_hint(path, f)}")
    return files


def missing_weights_hint(path, f):
    """Why a folder's weights file may be missing, from what the folder holds instead."""
    names = sorted(os.listdir(path))
    shards = [n for n in names if re.fullmatch(r".+-\d+-of-\d+\.safetensors", n)]
    pickles = [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    download = os.path.join(path, ".cache", "huggingface", "download")
    partial = os.path.isdir(download) and any(n.endswith(".incomplete") for _, _, ns in os.walk(download) for n in ns)
    if os.path.islink(f):
        return f" (a link to {os.readlink(f)}, which is missing: a download that did not finish; run it again)"
    if partial:
        return " (.cache/huggingface/download holds *.incomplete files: a download that did not finish; run it again)"
    if shards and not f.endswith(".index.json") and os.path.basename(f) == "model.safetensors":
        return (f" ({len(shards)} shards such as {shards[0]} are here, but not model.safetensors.index.json, which "
                "names them: copy it from the model's source too)")
    if pickles:
        return (f" (only pickled weights found: {', '.join(pickles[:3])}; this code reads safetensors only and never "
                "unpickles a file: convert them, where you trust them, with transformers' "
                "save_pretrained(folder, safe_serialization=True))")
    return ""


def check_weights(config, files, rename):
    """Check the weights files against the config from their headers alone, reading no tensor: each file is a
    whole safetensors file (not a git-lfs pointer, not cut short), no tensor is in two files, and the tensors are
    exactly those of the model the config describes, in number of layers, names and shapes."""
    owner, found = {}, []
    for f in files:
        for name, info in safetensors_entries(f):
            if name in owner:
                raise CheckpointError(f"tensor {name!r} is in both {owner[name]} and {f}: a stale or foreign shard; "
                                      "download the model's files again")
            owner[name] = f
            found += [(ours, transform(torch.empty(info["shape"], dtype=_SAFETENSORS_DTYPES[info["dtype"]],
                                                   device="meta"))) for ours, transform in rename(name)]
    layers = {int(m.group(1)) for name, _ in found if (m := re.match(r"blocks\.(\d+)\.", name))}
    if len(layers) != config.n_layer or layers != set(range(len(layers))):  # before n_layer blocks are built
        held = "none" if not layers else f"{len(layers)} (numbered {min(layers)} to {max(layers)})"
        raise CheckpointError(f"config.json describes {config.n_layer} layers, but the weights hold {held}: the "
                              "config and the weights are of different models")
    build_from_tensors(GPT, config, iter(found), None, "meta")  # names and shapes, as a real load checks them


def iter_tensors(files, rename):
    """Yield (our name, tensor) one tensor at a time; `rename` maps a file's name to [(ours, transform)]."""
    for f in files:
        for name, tensor in read_safetensors(f):
            for ours, transform in rename(name):
                yield ours, transform(tensor)


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path, keep=None):
    """Yield (name, tensor) from a .safetensors file, each read straight into freshly allocated memory; with
    `keep`, only the tensors whose name it accepts (the others are not read).

    Not the library's mmap views: those sit at arbitrary alignment (CPU kernels then take other paths, so
    a resumed run drifts from an uninterrupted one in the last bits), and their touched file pages stay
    resident beside our copies, doubling peak memory while a big model loads. The format is simple: an
    8-byte header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw bytes.
    """
    with open(path, "rb") as f:
        entries, base = checked_header(path, f)
        for name, info in entries:
            if keep is not None and not keep(name):
                continue
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            start, end = info["data_offsets"]
            tensor = torch.empty(info["shape"], dtype=dtype)
            f.seek(base + start)
            f.readinto(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
            yield name, tensor


def safetensors_entries(path):
    """[(name, {dtype, shape, data_offsets})] of a .safetensors file, each entry checked (see checked_header)."""
    with open(path, "rb") as f:
        return checked_header(path, f)[0]


def checked_header(path, f):
    """(entries, offset of the data) of the open .safetensors file `path`: a CheckpointError names a git-lfs
    pointer, a file that is not safetensors, a dtype we do not read, and a tensor cut short by the end of the file
    (a partial download)."""
    size = os.fstat(f.fileno()).st_size
    try:
        entries = safetensors_header(f, size)
    except ValueError as e:  # JSON and UTF-8 errors are ValueErrors too
        lfs = lfs_pointer_error(path)
        raise (CheckpointError(str(lfs)) if lfs else CheckpointError(f"{path}: not a safetensors file ({e})")) from None
    base = f.tell()
    for name, info in entries:
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        if end - start != math.prod(info["shape"]) * dtype.itemsize:
            raise CheckpointError(f"{path}: tensor {name!r}: its size does not match its shape")
        if base + end > size:
            raise CheckpointError(f"{path}: tensor {name!r} is truncated (it ends at byte {base + end}, the file at "
                                  f"{size}): a partial download or copy; download or copy the file again")
    return entries, base


def safetensors_header(f, size):
    """[(name, {dtype, shape, data_offsets})] of an open .safetensors file of `size` bytes, in file order; a
    ValueError says what is wrong with it."""
    length = int.from_bytes(f.read(8), "little")
    if size < 8 or 8 + length > size:
        raise ValueError(f"{size} bytes, too few for the 8-byte header length and the header it announces")
    header = json.loads(f.read(length))
    if not isinstance(header, dict):
        raise ValueError(f"the header is a JSON {type(header).__name__}, not an object")
    header.pop("__metadata__", None)
    count = lambda x: type(x) is int and x >= 0
    for name, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("dtype"), str) and isinstance(info.get("shape"), list)
                and all(map(count, info["shape"])) and isinstance(info.get("data_offsets"), list)
                and len(info["data_offsets"]) == 2 and all(map(count, info["data_offsets"]))):
            raise ValueError(f"tensor {name!r}: expected {{dtype, shape, data_offsets}} with non-negative integers, "
                             f"got {info!r:.80}")
    return sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])


def _hf_get(raw, key, default=None):
    if key in raw and raw[key] is not None:
        return raw[key]
    if default is None:
        raise CheckpointError(f"config.json: missing field {key!r}")
    return default


def config_from_gpt2(raw):
    act = raw.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(f"config.json: activation_function {act!r} not supported (gelu_new or "
                              "gelu_pytorch_tanh only)")
    if raw.get("scale_attn_by_inverse_layer_idx") or raw.get("reorder_and_upcast_attn"):
        raise CheckpointError("config.json: scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn unsupported")
    n_embd = _hf_get(raw, "n_embd")
    return GPTConfig(
        vocab_size=_hf_get(raw, "vocab_size"), n_layer=_hf_get(raw, "n_layer"),
        n_head=_hf_get(raw, "n_head"), n_kv_head=_hf_get(raw, "n_head"), n_embd=n_embd,
        n_inner=_hf_get(raw, "n_inner", 4 * n_embd), max_seq_len=_hf_get(raw, "n_positions"),
        norm="layernorm", norm_eps=_hf_get(raw, "layer_norm_epsilon", 1e-5), pos="learned", mlp="gelu",
        qkv_bias=True, bias=True, tie_embeddings=raw.get("tie_word_embeddings", True),
    )


def config_from_qwen2(raw):
    model_type = raw["model_type"]
    if raw.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"config.json: hidden_act {raw['hidden_act']!r} not supported (silu only)")
    rope = raw.get("rope_parameters") or {}  # transformers >= 5 nests rope settings here
    scaling = raw.get("rope_scaling") or rope
    if not isinstance(rope, dict) or not isinstance(scaling, dict):
        raise CheckpointError(f"config.json: rope_parameters / rope_scaling must be an object, got {scaling!r}")
    if scaling.get("rope_type", scaling.get("type", "default")) != "default":
        raise CheckpointError(f"config.json: rope scaling {scaling} not supported (plain RoPE only)")
    if model_type == "qwen2" and raw.get("use_sliding_window"):
        raise CheckpointError("config.json: use_sliding_window=true not supported")
    if model_type == "llama" and (raw.get("attention_bias") or raw.get("mlp_bias")):
        raise CheckpointError("config.json: llama attention_bias/mlp_bias not supported")
    n_head = _hf_get(raw, "num_attention_heads")
    return GPTConfig(
        vocab_size=_hf_get(raw, "vocab_size"), n_layer=_hf_get(raw, "num_hidden_layers"),
        n_head=n_head, n_kv_head=_hf_get(raw, "num_key_value_heads", n_head),
        n_embd=_hf_get(raw, "hidden_size"), n_inner=_hf_get(raw, "intermediate_size"),
        head_dim=raw.get("head_dim"), max_seq_len=_hf_get(raw, "max_position_embeddings"),
        norm="rmsnorm", norm_eps=_hf_get(raw, "rms_norm_eps", 1e-6), pos="rope",
        rope_theta=rope.get("rope_theta", raw.get("rope_theta", 10000.0)), mlp="swiglu",
        qkv_bias=model_type == "qwen2", bias=False, tie_embeddings=raw.get("tie_word_embeddings", False),
    )


_GPT2_NAMES = {"ln_1": "norm1", "ln_2": "norm2", "attn.c_proj": "attn.o", "mlp.c_fc": "mlp.up",
               "mlp.c_proj": "mlp.down"}


def rename_gpt2(name):
    """GPT-2 names -> ours. Conv1D weights are stored (in, out): transpose; c_attn splits into q, k, v."""
    name = name.removeprefix("transformer.")
    if name.endswith((".attn.bias", ".attn.masked_bias")):
        return []  # causal-mask buffers of old checkpoints, not weights
    top = {"wte.weight": "tok_emb.weight", "wpe.weight": "pos_emb.weight", "ln_f.weight": "norm_f.weight",
           "ln_f.bias": "norm_f.bias", "lm_head.weight": "lm_head.weight"}
    if name in top:
        return [(top[name], lambda t: t)]
    m = re.fullmatch(r"h\.(\d+)\.(.+)\.(weight|bias)", name)
    if not m:
        return [(name, lambda t: t)]  # reported as unexpected by the loader
    layer, part, kind = m.groups()
    prefix = f"blocks.{layer}."
    conv = (lambda t: t.t()) if kind == "weight" and not part.startswith("ln_") else (lambda t: t)
    if part == "attn.c_attn":
        return [(f"{prefix}attn.{p}.{kind}", lambda t, i=i: conv(t).chunk(3, dim=0)[i]) for i, p in
                enumerate("qkv")]
    if part in _GPT2_NAMES:
        return [(f"{prefix}{_GPT2_NAMES[part]}.{kind}", conv)]
    return [(name, lambda t: t)]


_QWEN2_NAMES = {"input_layernorm": "norm1", "post_attention_layernorm": "norm2", "self_attn.q_proj": "attn.q",
                "self_attn.k_proj": "attn.k", "self_attn.v_proj": "attn.v", "self_attn.o_proj": "attn.o",
                "mlp.gate_proj": "mlp.gate", "mlp.up_proj": "mlp.up", "mlp.down_proj": "mlp.down"}


def rename_qwen2(name):
    """Qwen2/Llama names -> ours (same layout, no transposes)."""
    top = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "norm_f.weight",
           "lm_head.weight": "lm_head.weight"}
    if name in top:
        return [(top[name], lambda t: t)]
    if name.endswith("rotary_emb.inv_freq"):
        return []  # recomputed from rope_theta
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", name)
    if m and m.group(2) in _QWEN2_NAMES:
        return [(f"blocks.{m.group(1)}.{_QWEN2_NAMES[m.group(2)]}.{m.group(3)}", lambda t: t)]
    return [(name, lambda t: t)]


# The way back: our tensors under a Hugging Face architecture's names (export_hf.py writes such folders).


def hf_model_type(config):
    """The Hugging Face model_type whose models have this config's shape (gpt2, qwen2 or llama), else None."""
    c, layers = config, (config.norm, config.pos, config.mlp)
    if c.value_head:
        return None
    if layers == ("layernorm", "learned", "gelu") and c.qkv_bias and c.bias and c.n_kv_head == c.n_head and \
            c.head_dim * c.n_head == c.n_embd:
        return "gpt2"
    if layers == ("rmsnorm", "rope", "swiglu") and not c.bias:
        if not c.qkv_bias:
            return "llama"
        return "qwen2" if c.head_dim * c.n_head == c.n_embd else None  # Qwen2Config has no head_dim: readers derive it
    return None


def hf_config(config, dtype, bos_id=None, eos_id=None):
    """config.json of the Hugging Face folder (hf_model_type's architecture) that holds this model in `dtype`."""
    c, model_type = config, hf_model_type(config)
    shared = {"model_type": model_type, "vocab_size": c.vocab_size, "tie_word_embeddings": c.tie_embeddings,
              "torch_dtype": str(dtype).removeprefix("torch."), "bos_token_id": bos_id, "eos_token_id": eos_id}
    if model_type == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], **shared, "n_embd": c.n_embd, "n_layer": c.n_layer,
                "n_head": c.n_head, "n_inner": c.n_inner, "n_positions": c.max_seq_len,
                "layer_norm_epsilon": c.norm_eps, "activation_function": "gelu_new"}
    own = {"use_sliding_window": False} if model_type == "qwen2" else \
        {"head_dim": c.head_dim, "attention_bias": False, "mlp_bias": False}
    return {"architectures": [f"{'Qwen2' if model_type == 'qwen2' else 'Llama'}ForCausalLM"], **shared,
            "hidden_size": c.n_embd, "intermediate_size": c.n_inner, "num_hidden_layers": c.n_layer,
            "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_head,
            "max_position_embeddings": c.max_seq_len, "rms_norm_eps": c.norm_eps, "rope_theta": c.rope_theta,
            "hidden_act": "silu", **own}


def hf_tensors(config, tensors):
    """{Hugging Face name: tensor} of our (name, tensor) pairs: rename_gpt2 / rename_qwen2 undone (GPT-2's
    Conv1D weights transposed back, its q, k and v joined into c_attn)."""
    tensors = dict(tensors)
    gpt2 = hf_model_type(config) == "gpt2"
    names = {ours: theirs for theirs, ours in (_GPT2_NAMES if gpt2 else _QWEN2_NAMES).items()}
    top = {"tok_emb.weight": "transformer.wte.weight", "pos_emb.weight": "transformer.wpe.weight",
           "norm_f.weight": "transformer.ln_f.weight", "norm_f.bias": "transformer.ln_f.bias"} if gpt2 else \
        {"tok_emb.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight"}
    out = {}
    for name, t in tensors.items():
        if name in top or name == "lm_head.weight":
            out[top.get(name, name)] = t
            continue
        layer, part, kind = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", name).groups()
        if not gpt2:
            out[f"model.layers.{layer}.{names[part]}.{kind}"] = t
        elif part == "attn.q":  # c_attn holds q, k and v, stored (in, out) as Conv1D weights are
            qkv = torch.cat([tensors[f"blocks.{layer}.attn.{p}.{kind}"] for p in "qkv"])
            out[f"transformer.h.{layer}.attn.c_attn.{kind}"] = qkv.t() if kind == "weight" else qkv
        elif part not in ("attn.k", "attn.v"):
            conv = kind == "weight" and not part.startswith("norm")
            out[f"transformer.h.{layer}.{names[part]}.{kind}"] = t.t() if conv else t
    return {name: t.contiguous() for name, t in out.items()}


def build_from_tensors(cls, config, tensors, dtype, device):
    """Materialise `cls(config)` from (name, tensor) pairs, checking names and shapes strictly."""
    try:
        with torch.device("meta"):
            model = cls(config)
    except RuntimeError as e:  # a size past what a tensor can hold ("Storage size calculation overflowed")
        raise CheckpointError(f"config.json describes a model too large to build ({e})") from None
    expected = {k: v for k, v in model.state_dict().items()}
    tied = config.tie_embeddings and not config.value_head
    if tied:
        expected.pop("lm_head.weight", None)
    loaded, head = {}, None
    for name, t in tensors:
        if name == "lm_head.weight" and tied:
            head = t  # a tied head is the embedding: kept only to check that it is
            continue
        if name == "lm_head.weight" and config.value_head:
            continue  # a critic has no LM head
        if name not in expected:
            raise CheckpointError(f"unexpected tensor {name!r} in checkpoint (model config: {config})")
        if not t.is_floating_point():
            raise CheckpointError(f"tensor {name!r} is {t.dtype}, not floating point: not a model's weights")
        if tuple(t.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"tensor {name!r} has shape {tuple(t.shape)}, model expects "
                                  f"{tuple(expected[name].shape)}")
        loaded[name] = t.to(device=device, dtype=dtype or t.dtype).contiguous()
        # NaN or inf weights could only emit garbage; min and max show them with no copy of the tensor
        real = t.device.type != "meta"  # check_weights builds on the meta device: shapes only
        if real and t.numel() and not torch.isfinite(torch.stack(torch.aminmax(loaded[name]))).all():
            raise CheckpointError(f"tensor {name!r} holds NaN or inf: the checkpoint is damaged; load an earlier one")
    if dtype is None and len({t.dtype for t in loaded.values()}) > 1:  # fp32 norms beside bf16 matrices: one dtype,
        dtype = max(loaded.values(), key=torch.Tensor.numel).dtype     # the largest tensor's, or a matmul fails
        loaded = {name: t.to(dtype) for name, t in loaded.items()}
    emb = loaded.get("tok_emb.weight")
    if head is not None and emb is not None and head.device.type != "meta" and \
            not (head.shape == emb.shape and torch.equal(head.to(device=emb.device, dtype=emb.dtype), emb)):
        raise CheckpointError("config.json sets tie_word_embeddings, but the weights hold an lm_head.weight that "
                              "differs from the embeddings: loaded tied, that head would be dropped (transformers 5 "
                              "keeps it and warns). If the head was trained, set tie_word_embeddings to false in "
                              "config.json; if not, remove lm_head.weight from the weights")
    fresh = {k for k in expected if k.startswith("value_head.")} - set(loaded)
    missing = sorted(set(expected) - set(loaded) - fresh)
    if missing:
        raise CheckpointError(f"checkpoint is missing tensor(s) {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
    if fresh:  # a critic made from an actor: a new scalar head, as in the paper's PPO
        head = nn.Linear(config.n_embd, 1, device=device, dtype=dtype or loaded["tok_emb.weight"].dtype)
        nn.init.normal_(head.weight, std=1.0 / (config.n_embd + 1))
        nn.init.zeros_(head.bias)
        loaded["value_head.weight"], loaded["value_head.bias"] = head.weight.data, head.bias.data
    model.load_state_dict(loaded, strict=False, assign=True)
    if tied:
        model.lm_head.weight = model.tok_emb.weight
    return model
