"""
How much memory a train_rl.py run needs per GPU, before it runs (train_rl.py --dry-run prints this).

Per model, in bytes, for N parameters, on each of G GPUs (FSDP shards what is trained or frozen, G = 1
without torchrun):
  actor, critic (trained):  weights fp32 4N + gradients fp32 4N + AdamW moments fp32 8N = 16N / G
                            (bf16 runs keep fp32 weights: at lr 5e-7 a bf16 weight would not move at all)
  reference (frozen):       4N / G: fp32 like the actor, so that it runs through exactly the actor's numerics
  rollout copy:             2N in bf16 runs (the sampling copy), 4N in fp32 runs on several GPUs, on every GPU
  critic N:                 the actor's N without the LM head (untied) plus a scalar head
Gathered, on several GPUs: FSDP gathers whole fp32 weights for a pass (the embeddings, LM head and final
norm for all of it, the blocks two at a time) and holds as many whole gradients before reduce-scattering
them: 8 (N_outside_blocks + 2 N_block), counted with the training phase.
Loading, on several GPUs: each model is sharded as soon as it is loaded, so a GPU holds one whole fp32
model (4N) beside the shards of those loaded before it; the total is the larger of this and the run.
Transient, the larger of the two phases of a step:
  sampling:   KV cache 2 (k, v) x layers x rows x kv_heads x head_dim x columns x bytes, rows = the sample
              batch (a power of two: the graph sampler's bucket) of this GPU's share of the step's responses,
              columns = prompt + max_new_tokens rounded up to the graph sampler's static width (a multiple
              of 16, plus 16), plus a few (rows, vocab) fp32 buffers for the next-token distribution;
  training:   activations of one micro-batch: micro_batch x (prompt + max_new_tokens) tokens, or at most
              micro_batch_tokens of them. Without
              gradient checkpointing every layer keeps its inputs to each matmul and nonlinearity, about
              (8 d + 2 kv_dim + 5 d_mlp) values per token per layer (plus RMSNorm's fp32 copies); with it,
              only each layer's input (d per token, fp32: the residual stream stays fp32 under bf16
              autocast) is kept and one layer is live at a time. The LM head's
              log-probs run in chunks of at most 2^24 logits (model.head_logprobs).
On disk, a checkpoint holds 12N per trained model (fp32 weights and AdamW moments), and a save writes the
new one beside the last before deleting it: a run needs room for two.
Not counted: the CUDA context and allocator fragmentation (budget ~10% headroom), the optimiser's
temporary buffers, and the Python process itself.
"""

import os
import shutil

import torch

from common import folder_bytes, has_critic, newest_dir
from eval import held_out
from model import GPT, HEAD_CHUNK_ELEMENTS, GPTConfig, read_checkpoint
from sample import batch_bucket, static_width
from tasks import encode_prompts, read_problems
from tokenizer import Tokenizer

GIB = 2**30


def param_count(cfg: GPTConfig) -> int:
    with torch.device("meta"):
        return GPT(cfg).num_params()


def block_param_count(cfg: GPTConfig) -> int:
    """Parameters of one transformer block."""
    with torch.device("meta"):
        return sum(p.numel() for p in GPT(GPTConfig(**{**cfg.__dict__, "n_layer": 1})).blocks[0].parameters())


def critic_param_count(cfg: GPTConfig) -> int:
    with torch.device("meta"):
        critic = GPT(GPTConfig(**{**cfg.__dict__, "value_head": True}))
    return critic.num_params()


CHECKPOINT_BYTES_PER_PARAM = 12  # a checkpoint holds each trained parameter's fp32 weight and two AdamW moments


def checkpoint_bytes(cfg: GPTConfig, critic=True) -> int:
    """Bytes of a train_rl.py checkpoint on disk: actor and critic (the tokenizer and state.json are small)."""
    return CHECKPOINT_BYTES_PER_PARAM * (param_count(cfg) + (critic_param_count(cfg) if critic else 0))


ACTOR_BYTES_PER_PARAM = 4  # an actor --keep-every keeps: its fp32 weights


def kept_actors(cfg, start=0) -> int:
    """How many actors --keep-every keeps after step `start`: one at each of its multiples up to --steps."""
    return cfg.steps // cfg.keep_every - start // cfg.keep_every if cfg.keep_every else 0


def free_bytes(path) -> int:
    """Free space on the disk that holds `path`, or would hold it (the nearest folder above it that exists)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def layer_activation_values(cfg: GPTConfig) -> int:
    """Values a transformer block keeps for backward, per token (see the module docstring)."""
    kv_dim = cfg.n_kv_head * cfg.head_dim
    mlp = (5 if cfg.mlp == "swiglu" else 3) * cfg.n_inner
    return 8 * cfg.n_embd + 2 * kv_dim + mlp


def estimate(model_cfg: GPTConfig, *, prompt_len, max_new_tokens, sample_batch, micro_batch, bf16,
             grad_checkpointing, critic=True, micro_batch_tokens=0, gpus=1) -> dict:
    """Bytes per GPU by item (see the module docstring); "total" is persistent + the larger transient phase.
    sample_batch: the rows one GPU samples at once."""
    act_bytes = 2 if bf16 else 4
    n_actor = param_count(model_cfg)
    n_critic = critic_param_count(model_cfg) if critic else 0
    seq = prompt_len + max_new_tokens
    d, L = model_cfg.n_embd, model_cfg.n_layer
    out = {
        "actor weights+grads+adam": 16 * n_actor // gpus,
        "critic weights+grads+adam": 16 * n_critic // gpus,
        "reference weights": 4 * n_actor // gpus,  # fp32, so it runs through exactly the actor's numerics
        "rollout copy": (2 if bf16 else 4) * n_actor if bf16 or gpus > 1 else 0,
    }
    rows, columns = batch_bucket(sample_batch), static_width(seq)  # the graph sampler's static cache
    kv = 2 * L * rows * model_cfg.n_kv_head * model_cfg.head_dim * columns * act_bytes
    out["sampling: kv cache + logits"] = kv + 4 * rows * model_cfg.vocab_size * 4

    tokens = min(micro_batch * seq, micro_batch_tokens or micro_batch * seq)
    norm_fp32 = 2 * d * 4 if model_cfg.norm == "rmsnorm" and bf16 else 0  # RMSNorm upcasts in bf16 runs
    per_layer = tokens * (layer_activation_values(model_cfg) * act_bytes + norm_fp32)
    if grad_checkpointing:  # the layer inputs kept are the residual stream: fp32, autocast or not (fp32 weights)
        acts = L * tokens * d * 4 + per_layer
    else:
        acts = L * per_layer
    head = min(HEAD_CHUNK_ELEMENTS, tokens * model_cfg.vocab_size) * 4 * 3  # logits, log-softmax, its gradient
    out["training: activations (one micro-batch)"] = acts + head + tokens * d * 4 * 2  # + embeddings, final norm
    if gpus > 1:  # the whole fp32 weights FSDP gathers for a pass, and their gradients before reduce-scatter
        block = block_param_count(model_cfg)
        out["training: gathered weights + grads (FSDP)"] = 8 * (n_actor - L * block + 2 * block)
    transient = max(out["sampling: kv cache + logits"], sum(v for k, v in out.items() if k.startswith("training:")))
    steady = sum(v for k, v in out.items() if ":" not in k) + transient
    if gpus > 1:  # at load: the last whole fp32 model beside the shards of those before it (runs.load_models)
        out["loading: one whole model beside shards"] = 4 * max(n_actor, n_critic) + 8 * n_actor // gpus
    out["total"] = max(steady, out.get("loading: one whole model beside shards", 0))
    return out


def report(estimates: dict, gpu_mem_gib: float | None) -> str:
    lines = [f"  {name:<42} {b / GIB:8.2f} GiB" for name, b in estimates.items()]
    lines[-1] += "  (not the sum: sampling, training and loading never hold their memory at once)"
    if gpu_mem_gib:
        fits = estimates["total"] * 1.1 <= gpu_mem_gib * GIB
        lines.append(f"  fits {gpu_mem_gib:g} GiB with 10% headroom: {'yes' if fits else 'NO'}")
    return "\n".join(lines)


def disk_needed(out, checkpoint, kept):
    """(bytes a run needs free at `out`, bytes of the checkpoint already there): a save writes the new checkpoint
    before deleting the last, so room for two, less the one already there (an earlier run's, which --overwrite
    deletes at the first save; the run's own on --resume), plus `kept` bytes of actors --keep-every keeps."""
    there = folder_bytes(newest_dir(os.path.join(out, "checkpoint")))
    return max(checkpoint, 2 * checkpoint - there) + kept, there


def run_report(cfg, gpu_mem_gib=None, gpus=1):
    """train_rl.py --dry-run: the estimate per GPU for a run's config on `gpus` GPUs, from its --init's
    config.json and longest prompt. The held-out evaluation (if any) samples with the same sample batch, so
    its prompts and its rows count too."""
    model_cfg, _ = read_checkpoint(cfg.init)
    tok = Tokenizer.load(cfg.init)
    encode = lambda problems: encode_prompts(problems, tok, cfg.max_new_tokens, model_cfg.max_seq_len)
    prompts, rows = encode(read_problems(cfg.data, cfg.levels)), cfg.prompts_per_step * cfg.samples_per_prompt
    if cfg.eval_every and cfg.eval_data:
        held = encode(held_out(cfg.eval_data, cfg.eval_problems, cfg.seed))
        prompts, rows = prompts + held, max(rows, len(held) * cfg.eval_samples)
    prompt_len = max(len(ids) for ids in prompts)
    sample_batch = min(cfg.sample_batch, -(-rows // gpus))  # the rows one GPU samples at once
    est = estimate(model_cfg, prompt_len=prompt_len, max_new_tokens=cfg.max_new_tokens,
                   sample_batch=sample_batch, micro_batch=cfg.micro_batch,
                   bf16=cfg.dtype == "bf16", grad_checkpointing=cfg.grad_checkpointing, critic=has_critic(cfg.algo),
                   micro_batch_tokens=cfg.micro_batch_tokens, gpus=gpus)
    n = param_count(model_cfg)
    size = f"{n / 1e9:.3f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"  # R1-Distill: 1.777B; the toy: 0.79M
    head = (f"estimated memory per GPU: {size}-parameter model on {gpus} GPU(s), "
            f"longest prompt {prompt_len} + {cfg.max_new_tokens} new tokens, sample batch {sample_batch}, "
            f"micro-batch {cfg.micro_batch} rows / {cfg.micro_batch_tokens or 'any'} tokens, {cfg.dtype}, "
            f"gradient checkpointing {'on' if cfg.grad_checkpointing else 'off'}")
    ckpt = checkpoint_bytes(model_cfg, critic=has_critic(cfg.algo))
    n_kept = kept_actors(cfg)
    kept = n_kept * ACTOR_BYTES_PER_PARAM * param_count(model_cfg)
    actors = f" and {n_kept} kept actors (--keep-every)" if n_kept else ""
    critic = " and the critic" if has_critic(cfg.algo) else ""
    (need, there), free = disk_needed(cfg.out, ckpt, kept), free_bytes(cfg.out)  # as runs.check_disk counts
    held = f", less the {there / GIB:.2f} GiB checkpoint already there" if there else ""
    disk = (f"checkpoint on disk: {ckpt / GIB:.2f} GiB (fp32 weights and AdamW moments of the actor"
            f"{critic}); a save writes the new one before deleting the last, "
            f"so a run needs {need / GIB:.2f} GiB free at --out for two checkpoints{actors}{held} "
            f"({free / GIB:.2f} GiB free now")
    if free < need:
        disk += ": NOT enough, so the run would refuse to start; free some space or pick another --out)"
    else:
        disk += ")"
    return head + "\n" + report(est, gpu_mem_gib) + "\n" + disk
