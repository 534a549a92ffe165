"""
Hand-written PPO for concise reasoning (Fatemi et al., 2025): the two phases are two sets of flags.

    python train_rl.py --phase 1 --init runs/base --data data/toy_train.jsonl --levels 4,5 --out runs/phase1
    python train_rl.py --phase 2 --init runs/phase1/checkpoint/actor --data runs/phase2_set.jsonl --out runs/phase2

Phase 1 trains on many hard problems to raise accuracy; phase 2 on a tiny set (8) of problems the model
solves only sometimes, which shortens responses while accuracy holds. The reward is correctness only:
+1 correct, -0.5 boxed but wrong, -1 no boxed answer (reward.py).

One PPO step:
  1. sample  `samples_per_prompt` responses for each of `prompts_per_step` problems (sample.py);
  2. score   each response; a response cut off at --max-new-tokens has no final answer and scores as
             "no answer" (-1) whatever its text says, and the cut is terminal for the critic (the value
             after it is 0), because that is where the episode ended;
  3. reference log-probs from the frozen initial policy; old log-probs and values recomputed with one
     full forward each (so the first PPO ratio is exactly 1);
  4. rewards per token: -kl_coef * (logp - logp_ref) on every response token (k1, in the reward, the
     paper's choice) plus the score on the last response token; GAE (gamma = 1, lambda = 0.95) with the
     critic's values gives advantages and returns; advantages are whitened over the batch;
  5. update  `ppo_epochs` passes over `minibatches` minibatches: clipped policy loss (plus k3 KL in the
     loss with --kl-estimator k3), clipped value loss for the critic, grad-norm clipping, AdamW with a
     cosine schedule and warm-up, separate learning rates.

Masking convention, used everywhere below: tensors of shape (batch, T) are aligned with the *response
tokens*; `mask[i, t] = 1` for the response tokens of row i up to and including its EOS. The log-prob of
response token t is read from the logits of the position before it. Example, prompt [p0 p1], response
[r0 r1 EOS] in a batch with T = 4:
    tokens   p0 p1 r0 r1 EOS pad        logits at p1 score r0, at r0 score r1, at r1 score EOS
    mask           1  1  1   0          values[t] = V(prompt + response[:t]); reward on t = 2 (EOS)

--algo grpo runs a critic-free baseline on the same code path: the advantage of every token of a response
is its score normalised within its group of samples, with KL in the loss (k3).
"""

import argparse
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.checkpoint import checkpoint

from eval import evaluate
import memory
from model import (GPT, CheckpointError, atomic_save_safetensors, atomic_write_json, load_safetensors, publish_dir,
                   read_checkpoint)
from reward import compute_reward
from sample import generate
from tasks import DataError, prompt_text, read_problems
from tokenizer import Tokenizer

# ----------------------------------------------------------------------------------------------------
# The maths: small pure functions on (batch, T) tensors, each pinned by a test with hand-computed numbers.


def masked_mean(x, mask, dim=None):
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x, mask, shift_mean=True, eps=1e-8):
    """(x - mean) / std over the valid positions of the whole batch; padded positions stay 0."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    white = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        white = white + mean
    return white * mask


def compute_gae(rewards, values, mask, gamma=1.0, lam=0.95):
    """Generalised advantage estimation over the valid tokens of each row.

    delta_t = r_t + gamma * V_{t+1} - V_t with V = 0 after the last valid token; A_t = delta_t +
    gamma * lam * A_{t+1}. Returns (advantages, returns) with returns = advantages + values, both 0 at
    masked positions; whitening, if any, happens afterwards and does not touch the returns.
    """
    rewards, values = rewards * mask, values * mask
    T = rewards.size(1)
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_adv = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        # Past the end of a row (m = 0) the carried value and advantage reset to 0.
        next_value = values[:, t] * m
        next_adv = adv * m
    return advantages, (advantages + values) * mask


def group_advantages(scores, group_size, eps=1e-6):
    """GRPO: each score minus its group's mean, over the group's std (groups are consecutive rows)."""
    g = scores.view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + eps)).view(-1)


def kl_penalty(logp, logp_ref, estimator):
    """Per-token estimate of KL(pi || pi_ref) from samples of pi.

    k1 = log r (unbiased, can be negative), k2 = (log r)^2 / 2, k3 = exp(-log r) - 1 + log r (unbiased,
    always >= 0), with log r = logp - logp_ref (Schulman, "Approximating KL divergence").
    """
    log_ratio = logp - logp_ref
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(-log_ratio) - 1 + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (k1, k2, k3)")


def aggregate(loss, mask, mode, num_tokens=None, num_seqs=None):
    """Reduce per-token losses (batch, T) to a scalar; these modes weigh lengths differently.

    token-mean:           sum of all token losses / number of valid tokens (the paper, OpenRLHF);
    seq-mean-token-mean:  mean over sequences of each sequence's token mean (long responses' tokens
                          count less);
    seq-mean-token-sum:   mean over sequences of each sequence's token sum (Dr. GRPO-like, no length
                          normalisation).
    num_tokens / num_seqs: the totals of the whole minibatch when `loss` is one micro-batch of it, so the
    gradient does not depend on how the minibatch was split.
    """
    num_tokens = mask.sum() if num_tokens is None else num_tokens
    num_seqs = mask.size(0) if num_seqs is None else num_seqs
    if mode == "token-mean":
        return (loss * mask).sum() / num_tokens
    if mode == "seq-mean-token-mean":
        return ((loss * mask).sum(1) / mask.sum(1).clamp(min=1)).sum() / num_seqs
    if mode == "seq-mean-token-sum":
        return (loss * mask).sum() / num_seqs
    raise ValueError(f"unknown loss aggregation {mode!r}")


def policy_loss(logp, old_logp, advantages, clip_eps):
    """Per-token clipped surrogate max(-A r, -A clip(r, 1 - eps, 1 + eps)); also the clipped-token mask."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    return torch.maximum(unclipped, clipped), (clipped > unclipped).float()


def value_loss(values, old_values, returns, clip_eps):
    """Per-token 0.5 * max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2)."""
    clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)


def explained_variance(values, returns, mask):
    """1 - Var(R - V) / Var(R) over valid tokens: 1 is a perfect critic, 0 no better than a constant."""
    var_r = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    diff = returns - values
    var_d = masked_mean((diff - masked_mean(diff, mask)) ** 2, mask)
    return (1 - var_d / var_r).item() if var_r > 0 else float("nan")


def token_logprobs(logits, targets, temperature):
    """log softmax(logits / T) at the targets, and the entropy of that distribution, per position."""
    logp_all = (logits.float() / temperature).log_softmax(-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


# ----------------------------------------------------------------------------------------------------
# Rollouts


@dataclass
class Rollout:
    """One step's batch. Sequences are [left-padded prompt | response | right pad]; (batch, T) tensors
    are aligned with the response tokens (see the module docstring)."""

    input_ids: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    prompt_len: int  # P, the width of the left-padded prompts
    mask: torch.Tensor  # (B, T) response tokens through EOS
    scores: torch.Tensor  # (B,) reward of each response
    correct: torch.Tensor  # (B,) bool
    truncated: torch.Tensor  # (B,) bool: cut off at max_new_tokens
    logp: torch.Tensor = None  # (B, T) old policy log-probs (recomputed)
    logp_ref: torch.Tensor = None  # (B, T)
    values: torch.Tensor = None  # (B, T)
    rewards: torch.Tensor = None  # (B, T)
    advantages: torch.Tensor = None  # (B, T)
    returns: torch.Tensor = None  # (B, T)

    @property
    def lengths(self):
        return self.mask.sum(1)

    def rows(self, idx):
        """The sub-batch of rows idx (a micro-batch), trimmed to its own longest response."""
        T = int(self.mask[idx].sum(1).max().item())
        sub = {"input_ids": self.input_ids[idx, : self.prompt_len + T],
               "attention_mask": self.attention_mask[idx, : self.prompt_len + T], "prompt_len": self.prompt_len}
        for name in ("mask", "logp", "logp_ref", "values", "rewards", "advantages", "returns"):
            t = getattr(self, name)
            sub[name] = None if t is None else t[idx, :T]
        for name in ("scores", "correct", "truncated"):
            sub[name] = getattr(self, name)[idx]
        return Rollout(**sub)


def build_rollout(prompts, completions, scores, correct, pad_id, device):
    """Pack prompt ids and sampled completions into one Rollout (left-padded prompts, right-padded responses)."""
    P = max(len(p) for p in prompts)
    T = max(len(c.tokens) for c in completions)
    B = len(prompts)
    ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + T), dtype=torch.long)
    mask = torch.zeros((B, T))
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, P - len(p) : P] = torch.tensor(p)
        ids[i, P : P + len(c.tokens)] = torch.tensor(c.tokens)
        attn[i, P - len(p) : P + len(c.tokens)] = 1
        mask[i, : len(c.tokens)] = 1
    truncated = torch.tensor([c.finish_reason == "length" for c in completions])
    return Rollout(ids.to(device), attn.to(device), P, mask.to(device), torch.tensor(scores, device=device),
                   torch.tensor(correct, device=device), truncated.to(device))


def score_responses(tok, completions, golds, reward_values, score_truncated=False):
    """(scores, correct) of each completion. Cut-off responses score as "no answer" unless score_truncated."""
    scores, correct = [], []
    for c, gold in zip(completions, golds):
        if c.finish_reason == "length" and not score_truncated:
            scores.append(reward_values["no_answer"])
        else:
            scores.append(compute_reward(tok.decode(c.tokens, skip_special=True), gold, **reward_values))
        correct.append(scores[-1] == reward_values["correct"])
    return scores, correct


def place_rewards(scores, mask):
    """(B, T) tensor with each row's score on its last valid response token, 0 elsewhere."""
    rewards = torch.zeros_like(mask)
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(mask.size(0)), last] = scores.to(mask.dtype)
    return rewards


def response_forward(model, batch, temperature=None, autocast=None):
    """Log-probs and entropies (temperature given) or values (critic) of the response tokens, (B, T).

    The outputs at positions P-1 ... P+T-2 belong to response tokens 0 ... T-1: logits at a position score
    the next token, and the value at a position is the value of the state before the next token.
    """
    P, T = batch.prompt_len, batch.mask.size(1)
    with autocast():
        h = model.hidden_states(batch.input_ids, attention_mask=batch.attention_mask)[:, P - 1 : P + T - 1]
        if model.config.value_head:
            return model.value_head(h).squeeze(-1).float() * batch.mask
        logp, entropy = head_logprobs(model.lm_head, h, batch.input_ids[:, P : P + T], temperature)
    return logp * batch.mask, entropy * batch.mask


def head_logprobs(head, h, targets, temperature, max_elements=2**24):
    """token_logprobs of head(h), a chunk of positions at a time.

    A 151k-token vocabulary makes (batch, T, vocab) fp32 logits 5 GB for one 8k-token response; chunks of
    positions bound that, and with gradients on each chunk is recomputed in backward instead of stored.
    """
    chunk = max(1, max_elements // (h.size(0) * head.out_features))
    if chunk >= h.size(1):
        return token_logprobs(head(h), targets, temperature)
    fn = lambda hc, tc: token_logprobs(head(hc), tc, temperature)
    parts = [checkpoint(fn, h[:, s : s + chunk], targets[:, s : s + chunk], use_reentrant=False)
             if torch.is_grad_enabled() else fn(h[:, s : s + chunk], targets[:, s : s + chunk])
             for s in range(0, h.size(1), chunk)]
    return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)


def micro_batches(idx, size, lengths):
    """Rows idx in chunks of at most `size`, longest responses first. Rollout.rows trims a micro-batch to its
    own longest response, so grouping similar lengths spends little compute on padding (toy responses
    vary 4x in length within one batch)."""
    order = idx[torch.argsort(lengths[idx], descending=True, stable=True)]
    return [order[i : i + size] for i in range(0, len(order), size)]


@torch.no_grad()
def batched_forward(model, rollout, micro_batch, **kw):
    """response_forward over micro-batches of the rollout, scattered back to (B, T)."""
    full = torch.zeros_like(rollout.mask)
    for micro in micro_batches(torch.arange(rollout.mask.size(0), device=full.device), micro_batch, rollout.lengths):
        out = response_forward(model, rollout.rows(micro), **kw)
        out = out[0] if isinstance(out, tuple) else out
        full[micro, : out.size(1)] = out.to(full.dtype)
    return full


# ----------------------------------------------------------------------------------------------------
# Configuration: the paper's recipe, scaled to the model by phase presets, every value a flag.


@dataclass
class Config:
    phase: int = 2
    algo: str = "ppo"  # ppo | grpo
    init: str = "checkpoints/toy-base"
    ref: str | None = None  # None: the same weights as init
    critic_init: str | None = None  # None: the actor's weights with a fresh value head
    data: str = "data/toy_train.jsonl"
    levels: str | None = None  # e.g. "4,5": train only on these levels
    eval_data: str | None = None
    eval_every: int = 0
    eval_problems: int = 200
    eval_samples: int = 1
    out: str = "runs/rl"
    steps: int = 100
    prompts_per_step: int = 8
    samples_per_prompt: int = 8
    temperature: float = 0.6
    max_new_tokens: int = 320
    actor_lr: float = 5e-7
    critic_lr: float = 9e-6
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    adam_betas: tuple = (0.9, 0.95)
    ppo_epochs: int = 1
    minibatches: int = 1
    micro_batch: int = 16
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    max_grad_norm: float = 1.0
    gamma: float = 1.0
    gae_lambda: float = 0.95
    whiten_advantages: bool = True
    kl_coef: float = 0.01
    kl_estimator: str = "k1"  # k1: in the reward (paper); k2/k3: in the loss
    loss_agg: str = "token-mean"
    critic_warmup_steps: int = 0
    reward_correct: float = 1.0
    reward_wrong: float = -0.5
    reward_no_answer: float = -1.0
    score_truncated: bool = False
    seed: int = 0
    device: str = "cpu"
    dtype: str = "fp32"  # fp32 | bf16 (bf16 autocast; the trained weights stay fp32)
    grad_checkpointing: bool = False
    sample_batch: int = 64
    save_every: int = 25
    max_bad_steps: int = 3


# The Config defaults above are the paper's recipe (method.md): actor lr 5e-7, critic 9e-6, 8 prompts x 8
# samples, T = 0.6, KL 0.01 (k1), gamma 1, lambda 0.95, clips 0.2, grad clip 1, cosine with 3% warm-up.
# A phase preset fills in what depends on the phase and on the model's scale ("toy": the CPU demo's
# 0.8M-parameter model, fresh from supervised training, which needs far larger learning rates; "paper":
# billion-parameter reasoning models on a GPU). Explicit flags override both.
# Toy phase 1 uses lambda = 1: the tiny critic explains almost none of the return's variance (0.01 on
# average over 80 steps), so with lambda = 0.95 the first steps of a 150-token level-5 answer get
# 0.95^100 ~ 0.006 of the credit and phase 1 cannot fix them (measured, 80 steps: level 5 +1 point with
# 0.95, +11 with 1.0). Phase 2 keeps the paper's 0.95: its length pressure is the method. Toy phase 2 uses
# KL 0.05, not 0.01, to hold back a 0.8M model's drift while it fits 8 problems (same set and start: 0.01
# ended 1.6 points lower at the same length), and two passes over each batch at half phase 1's learning rate:
# from the same phase-1 model and set, 1 pass at 5e-5 shortened by 29% for -2.9 points, 2 passes at 2.5e-5
# by 35% for -1.4 (18% more time per step), 3 passes at 2.5e-5 by 40% for -3.2. Phase 1 stops at 80 steps
# although more steps gain more on levels 4-5 (100 steps: +12 points, 120: +13, vs +8): phase 2 then
# shortened those models by only 15-21% (sets at pass rates 3/8 to 5/8 from the 100- and 120-step models).
PRESETS = {
    (1, "toy"): dict(steps=80, prompts_per_step=8, samples_per_prompt=8, actor_lr=5e-5, critic_lr=2e-4,
                     minibatches=2, critic_warmup_steps=5, eval_every=20, gae_lambda=1.0),
    (2, "toy"): dict(steps=60, prompts_per_step=8, samples_per_prompt=8, actor_lr=2.5e-5, critic_lr=2e-4,
                     minibatches=2, critic_warmup_steps=5, eval_every=20, kl_coef=0.05, ppo_epochs=2),
    (1, "paper"): dict(steps=300, prompts_per_step=8, samples_per_prompt=8, max_new_tokens=8192, micro_batch=1,
                       sample_batch=32, dtype="bf16", grad_checkpointing=True, eval_every=50, device="cuda"),
    (2, "paper"): dict(steps=150, prompts_per_step=8, samples_per_prompt=8, max_new_tokens=8192, micro_batch=1,
                       sample_batch=32, dtype="bf16", grad_checkpointing=True, eval_every=25, device="cuda"),
}
PAPER_SCALE_PARAMS = 50_000_000  # --scale auto: models at least this big get the "paper" preset


CHOICES = {"algo": ("ppo", "grpo"), "kl_estimator": ("k1", "k2", "k3"), "dtype": ("fp32", "bf16"),
           "loss_agg": ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")}
HELP = {
    "phase": "1: many hard problems (accuracy); 2: the small selected set (conciseness). Fills the defaults below",
    "algo": "ppo (critic + GAE) or grpo (group-normalised scores, no critic) on the same code path",
    "init": "actor checkpoint to start from (project or Hugging Face folder)",
    "ref": "frozen reference policy for the KL term (default: --init)",
    "critic_init": "critic initialisation (default: --init with a fresh scalar head)",
    "data": "problems JSONL (toy or MATH-style)",
    "levels": "comma-separated levels of --data to train on (default: all)",
    "eval_data": "held-out problems JSONL evaluated every --eval-every steps (default: none)",
    "eval_every": "evaluate on --eval-data every N steps (0: never)",
    "eval_problems": "number of held-out problems per evaluation",
    "eval_samples": "samples per held-out problem per evaluation",
    "out": "run folder: config.json, log.jsonl, checkpoint/ (actor/ inside is the trained model)",
    "steps": "PPO steps (each: sample, score, update)",
    "prompts_per_step": "problems per step",
    "samples_per_prompt": "responses sampled per problem",
    "temperature": "sampling temperature, also used for every log-prob (ratios, KL, entropy)",
    "max_new_tokens": "response cut-off; a cut-off response scores as 'no answer'",
    "actor_lr": "actor peak learning rate",
    "critic_lr": "critic peak learning rate",
    "warmup_ratio": "share of steps for linear learning-rate warm-up",
    "min_lr_ratio": "cosine schedule floor, as a share of the peak",
    "weight_decay": "AdamW weight decay",
    "adam_betas": "AdamW betas, two floats",
    "ppo_epochs": "passes over each step's batch",
    "minibatches": "optimiser steps per pass (the batch is split in this many minibatches)",
    "micro_batch": "rows per forward/backward (gradient accumulation within a minibatch)",
    "clip_eps": "PPO ratio clip",
    "value_clip_eps": "value clip around the old values",
    "max_grad_norm": "gradient-norm clip",
    "gamma": "GAE discount",
    "gae_lambda": "GAE lambda (1.0 removes the length pressure the paper describes)",
    "whiten_advantages": "normalise advantages over the batch (true/false)",
    "kl_coef": "KL-to-reference coefficient",
    "kl_estimator": "k1: in the per-token reward (paper); k2/k3: added to the policy loss",
    "loss_agg": "token aggregation of the losses",
    "critic_warmup_steps": "first N steps update only the critic",
    "reward_correct": "reward of a correct answer",
    "reward_wrong": "reward of a boxed but wrong answer",
    "reward_no_answer": "reward without a boxed answer (and of cut-off responses)",
    "score_truncated": "score cut-off responses by their text instead of as 'no answer' (true/false)",
    "seed": "seed for data order and sampling",
    "device": "cpu, cuda, cuda:1, ...",
    "dtype": "fp32, or bf16 autocast (weights and optimiser stay fp32)",
    "grad_checkpointing": "recompute activations in backward to save memory (true/false)",
    "sample_batch": "rows per sampling chunk (bounds KV-cache memory)",
    "save_every": "write a resumable checkpoint every N steps (and at the end)",
    "max_bad_steps": "stop after this many consecutive steps with a NaN/inf loss",
}


def parse_bool(s):
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def default_text(name):
    """The help suffix " (default: 5e-07; toy phase 1: 5e-05; ...)": the paper's value, then each preset's."""
    if "(default" in HELP[name]:
        return ""
    presets = [f"{scale} phase {phase}: {values[name]}" for (phase, scale), values in PRESETS.items()
               if name in values]
    return " (default: " + "; ".join([str(Config.__dataclass_fields__[name].default), *presets]) + ")"


def build_parser():
    p = argparse.ArgumentParser(description="PPO for concise reasoning; --phase picks the preset.",
                                epilog="Flags left out take the --phase preset, then the paper's values.")
    for f in Config.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        kind = {bool: parse_bool, int: int, float: float}.get(type(f.default), str)
        kw = dict(default=None, help=HELP[f.name] + default_text(f.name))
        if f.name == "adam_betas":
            kw.update(nargs=2, type=float)
        elif f.name in CHOICES:
            kw.update(choices=CHOICES[f.name])
        else:
            kw.update(type=kind)
        p.add_argument(flag, **kw)
    p.add_argument("--scale", choices=("auto", "toy", "paper"), default="auto",
                   help="which preset --phase fills in: toy (CPU demo) or paper (1B+ models on a GPU); auto "
                        f"picks paper for models of {PAPER_SCALE_PARAMS // 10**6}M+ parameters")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and the estimated memory (memory.py), then exit")
    p.add_argument("--gpu-mem", type=float, default=None, help="with --dry-run: GiB available, to say if it fits")
    return p


def model_scale(init):
    """ "paper" for models of PAPER_SCALE_PARAMS or more, else "toy" (reads config.json only)."""
    return "paper" if memory.param_count(read_checkpoint(init)[0]) >= PAPER_SCALE_PARAMS else "toy"


def resolve_config(args):
    """Config defaults (the paper's recipe) <- phase preset for the model's scale <- explicit flags."""
    phase = args.phase if args.phase is not None else Config.phase
    if phase not in (1, 2):
        raise SystemExit(f"error: --phase must be 1 or 2, got {phase}")
    scale = args.scale
    if scale == "auto":
        try:
            scale = model_scale(args.init or Config.init)
        except (CheckpointError, FileNotFoundError) as e:
            raise SystemExit(f"error: --init: {e}")
    print(f"preset: phase {phase}, {scale} scale")
    values = {"phase": phase, **PRESETS[(phase, scale)]}
    values.update({k: v for k, v in vars(args).items() if k in Config.__dataclass_fields__ and v is not None})
    if "adam_betas" in values:
        values["adam_betas"] = tuple(values["adam_betas"])
    cfg = Config(**values)
    if cfg.algo == "grpo" and cfg.kl_estimator == "k1" and args.kl_estimator is None:
        cfg.kl_estimator = "k3"  # GRPO has no per-token reward to put k1 in
    if cfg.algo == "grpo" and cfg.kl_estimator == "k1":
        raise SystemExit("error: --algo grpo has no critic and no per-token reward; use --kl-estimator k3")
    return cfg


# ----------------------------------------------------------------------------------------------------
# Training


def lr_factor(step, total, warmup_ratio, min_ratio):
    """Linear warm-up over warmup_ratio of the steps, then cosine decay to min_ratio of the peak."""
    warmup = max(1, math.ceil(warmup_ratio * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_generator(seed, step):
    """A generator that depends only on (seed, step): a resumed run draws the same numbers."""
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + step)
    return g


def pick_problems(problems, n, seed, step):
    """Problems for this step: consecutive slices of a seeded shuffle, reshuffled every epoch. A function
    of (seed, step) alone, so a resumed run picks what the uninterrupted one would have."""
    orders = {}
    picked = []
    for j in range(step * n, (step + 1) * n):
        epoch, i = divmod(j, len(problems))
        if epoch not in orders:
            orders[epoch] = list(range(len(problems)))
            random.Random(f"{seed}-{epoch}").shuffle(orders[epoch])
        picked.append(problems[orders[epoch][i]])
    return picked


def autocast_for(cfg):
    device_type = torch.device(cfg.device).type
    if cfg.dtype == "bf16":
        return lambda: torch.autocast(device_type, dtype=torch.bfloat16)
    return lambda: torch.autocast(device_type, enabled=False)


def collect(cfg, actor, ref, critic, tok, problems, step):
    """Steps 1-3 of the module docstring: a scored Rollout with old/reference log-probs and values."""
    autocast, times = autocast_for(cfg), {}
    batch_problems = pick_problems(problems, cfg.prompts_per_step, cfg.seed, step)
    prompts = [tok.encode(prompt_text(p["problem"], tok)) for p in batch_problems for _ in range(cfg.samples_per_prompt)]
    golds = [p["answer"] for p in batch_problems for _ in range(cfg.samples_per_prompt)]

    t = time.perf_counter()
    with autocast():
        completions = generate(actor, prompts, cfg.max_new_tokens, cfg.temperature, eos_id=tok.eos_id,
                               pad_id=tok.pad_id, seed=f"{cfg.seed}/{step}", batch_size=cfg.sample_batch)
    times["sample"] = time.perf_counter() - t

    t = time.perf_counter()
    rewards = {"correct": cfg.reward_correct, "wrong": cfg.reward_wrong, "no_answer": cfg.reward_no_answer}
    scores, correct = score_responses(tok, completions, golds, rewards, cfg.score_truncated)
    batch = build_rollout(prompts, completions, scores, correct, tok.pad_id, cfg.device)
    times["score"] = time.perf_counter() - t

    t = time.perf_counter()
    batch.logp = batched_forward(actor, batch, cfg.micro_batch, temperature=cfg.temperature, autocast=autocast)
    batch.logp_ref = batched_forward(ref, batch, cfg.micro_batch, temperature=cfg.temperature, autocast=autocast)
    times["reference"] = time.perf_counter() - t

    t = time.perf_counter()
    if critic is not None:
        batch.values = batched_forward(critic, batch, cfg.micro_batch, autocast=autocast)
    else:
        batch.values = torch.zeros_like(batch.mask)
    times["critic"] = time.perf_counter() - t
    return batch, times


def compute_advantages(cfg, batch):
    """Step 4: per-token rewards (score + k1 KL), GAE, whitening; GRPO: group-normalised scores."""
    batch.rewards = place_rewards(batch.scores, batch.mask)
    if cfg.algo == "grpo":
        batch.advantages = group_advantages(batch.scores, cfg.samples_per_prompt)[:, None] * batch.mask
        batch.returns = torch.zeros_like(batch.mask)
        return
    if cfg.kl_estimator == "k1":
        batch.rewards = batch.rewards - cfg.kl_coef * kl_penalty(batch.logp, batch.logp_ref, "k1") * batch.mask
    adv, batch.returns = compute_gae(batch.rewards, batch.values, batch.mask, cfg.gamma, cfg.gae_lambda)
    batch.advantages = masked_whiten(adv, batch.mask) if cfg.whiten_advantages else adv


def actor_minibatch(cfg, actor, batch, idx, autocast, stats):
    """Accumulate the policy gradient of minibatch rows idx; returns False on a non-finite loss."""
    num_tokens, num_seqs = batch.mask[idx].sum(), len(idx)
    for micro in micro_batches(idx, cfg.micro_batch, batch.lengths):
        sub = batch.rows(micro)
        logp, entropy = response_forward(actor, sub, cfg.temperature, autocast)
        loss_tok, clipped = policy_loss(logp, sub.logp, sub.advantages, cfg.clip_eps)
        if cfg.kl_estimator != "k1":
            loss_tok = loss_tok + cfg.kl_coef * kl_penalty(logp, sub.logp_ref, cfg.kl_estimator)
        loss = aggregate(loss_tok, sub.mask, cfg.loss_agg, num_tokens, num_seqs)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        with torch.no_grad():
            log_ratio = (logp - sub.logp) * sub.mask
            share = lambda x: ((x * sub.mask).sum() / num_tokens).item()
            stats["policy_loss"] += loss.item()
            stats["clip_frac"] += share(clipped)
            stats["entropy"] += share(entropy)
            stats["approx_kl"] += share(torch.exp(log_ratio) - 1 - log_ratio)
            if "ratio_dev_first" not in stats:  # max |ratio - 1| on the first micro-batch: must be ~0
                stats["ratio_dev_first"] = (torch.exp(log_ratio) - 1).abs().max().item()
    return True


def critic_minibatch(cfg, critic, batch, idx, autocast, stats):
    num_tokens, num_seqs = batch.mask[idx].sum(), len(idx)
    for micro in micro_batches(idx, cfg.micro_batch, batch.lengths):
        sub = batch.rows(micro)
        values = response_forward(critic, sub, autocast=autocast)
        loss = aggregate(value_loss(values, sub.values, sub.returns, cfg.value_clip_eps), sub.mask, cfg.loss_agg,
                         num_tokens, num_seqs)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        stats["value_loss"] += loss.item()
    return True


def optimizer_step(model, opt, cfg, ok):
    """Clip and apply the accumulated gradient; skip (and report) a non-finite one."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm).item()
    ok = ok and math.isfinite(norm)
    if ok:
        opt.step()
    opt.zero_grad(set_to_none=True)
    return ok, norm


def update(cfg, actor, critic, actor_opt, critic_opt, batch, step, train_actor):
    """Step 5: ppo_epochs passes over the batch in `minibatches` optimiser steps per model."""
    autocast = autocast_for(cfg)
    stats = {k: 0.0 for k in ("policy_loss", "clip_frac", "entropy", "approx_kl", "value_loss")}
    norms = {"actor_grad_norm": [], "critic_grad_norm": []}
    ok = True
    n_updates = 0
    gen = step_generator(cfg.seed, step)
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(batch.mask.size(0), generator=gen).chunk(cfg.minibatches):
            idx = idx.to(batch.mask.device)
            n_updates += 1
            if train_actor:
                good, norm = optimizer_step(actor, actor_opt, cfg, actor_minibatch(cfg, actor, batch, idx, autocast, stats))
                norms["actor_grad_norm"].append(norm)
                ok = ok and good
            if critic is not None:
                good, norm = optimizer_step(critic, critic_opt, cfg, critic_minibatch(cfg, critic, batch, idx, autocast, stats))
                norms["critic_grad_norm"].append(norm)
                ok = ok and good
    out = {k: v / n_updates for k, v in stats.items() if k != "ratio_dev_first"}
    out["ratio_dev_first"] = stats.get("ratio_dev_first")
    out.update({k: sum(v) / len(v) if v else None for k, v in norms.items()})
    return ok, out


# ----------------------------------------------------------------------------------------------------
# Models, optimisers, checkpoints


def load_models(cfg, actor_path, critic_path):
    """(actor, critic or None, ref, tokenizer). The reference is frozen; bf16 runs keep it in bf16."""
    tok = Tokenizer.load(actor_path)
    actor = GPT.from_pretrained(actor_path, dtype=torch.float32, device=cfg.device)
    ref_dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
    ref = GPT.from_pretrained(cfg.ref or cfg.init, dtype=ref_dtype, device=cfg.device).eval().requires_grad_(False)
    critic = None
    if cfg.algo == "ppo":
        critic = GPT.from_pretrained(critic_path, dtype=torch.float32, device=cfg.device, value_head=True)
    for m in (actor, critic):
        if m is not None:
            m.grad_checkpointing = cfg.grad_checkpointing
            m.train()
    return actor, critic, ref, tok


def make_optimizer(model, lr, cfg):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)


def optimizer_tensors(opt, prefix):
    """AdamW state as flat {name: tensor} for safetensors (no pickles anywhere)."""
    return {f"{prefix}.{i}.{k}": v.detach().reshape(-1) if v.dim() == 0 else v.detach()
            for i, state in opt.state_dict()["state"].items() for k, v in state.items()}


def load_optimizer(opt, tensors, prefix):
    sd = opt.state_dict()
    for name, value in tensors.items():
        head, i, key = name.split(".")
        if head == prefix:
            sd["state"].setdefault(int(i), {})[key] = value.reshape(()) if key == "step" else value
    opt.load_state_dict(sd)


def save_checkpoint(cfg, step, actor, critic, actor_opt, critic_opt, tok):
    """Write out/checkpoint (actor/, critic/, optim.safetensors, state.json) as one atomic swap."""
    final = os.path.join(cfg.out, "checkpoint")
    tmp = final + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)  # a half-written checkpoint from a crash
    actor.save(os.path.join(tmp, "actor"))
    tok.save(os.path.join(tmp, "actor"))
    tensors = optimizer_tensors(actor_opt, "actor")
    if critic is not None:
        critic.save(os.path.join(tmp, "critic"))
        tensors.update(optimizer_tensors(critic_opt, "critic"))
    atomic_save_safetensors(tensors, os.path.join(tmp, "optim.safetensors"))
    atomic_write_json({"step": step, "config": asdict(cfg)}, os.path.join(tmp, "state.json"))
    publish_dir(tmp, final)


def log_record(cfg, step, batch, stats, times, lrs, tokens):
    """The numbers that say whether a PPO run is healthy (ppo-pitfalls.md, item 12)."""
    lengths = batch.lengths.float()
    groups = batch.correct.view(-1, cfg.samples_per_prompt).float().mean(1)
    kl_tok = (batch.logp - batch.logp_ref) * batch.mask
    rec = {
        "step": step, "phase": cfg.phase, "algo": cfg.algo, "loss_agg": cfg.loss_agg,
        "reward_mean": batch.scores.float().mean().item(), "accuracy": batch.correct.float().mean().item(),
        "length_mean": lengths.mean().item(), "length_min": lengths.min().item(), "length_max": lengths.max().item(),
        "truncated_share": batch.truncated.float().mean().item(),
        "groups_all_correct": int((groups == 1).sum()), "groups_all_wrong": int((groups == 0).sum()),
        "kl": (kl_tok.sum() / batch.mask.sum()).item(), "kl_per_response": kl_tok.sum(1).mean().item(),
        "value_mean": masked_mean(batch.values, batch.mask).item(),
        "return_mean": masked_mean(batch.returns, batch.mask).item(),
        "explained_variance": explained_variance(batch.values, batch.returns, batch.mask) if cfg.algo == "ppo" else None,
        **stats, **lrs,
        "tokens_per_s": tokens / sum(times.values()),
        **{f"time_{k}": v for k, v in times.items()}, "time_total": sum(times.values()),
    }
    return rec


def progress_line(rec):
    line = (f"step {rec['step']:4d} | reward {rec['reward_mean']:+.3f} | acc {rec['accuracy']:.2f} | "
            f"len {rec['length_mean']:5.1f} [{rec['length_min']:.0f}-{rec['length_max']:.0f}] | "
            f"kl {rec['kl']:+.4f} | ent {rec['entropy']:.3f} | clip {rec['clip_frac']:.3f} | "
            f"vloss {rec['value_loss']:.3f} | {rec['time_total']:.1f}s")
    if "eval_accuracy" in rec:
        line += f" | eval acc {rec['eval_accuracy']:.3f} len {rec['eval_length']:.1f}"
    return line


def held_out(cfg):
    """A fixed, level-mixed subset of the evaluation problems (the files are sorted by level)."""
    if not cfg.eval_data or not cfg.eval_every:
        return None
    problems = read_problems(cfg.eval_data)
    random.Random(cfg.seed).shuffle(problems)
    return problems[: cfg.eval_problems]


def evaluate_during_training(cfg, actor, tok, problems):
    summary, _ = evaluate(actor, tok, problems, samples=cfg.eval_samples, temperature=cfg.temperature, top_p=0.95,
                          max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.sample_batch)
    actor.train()
    rec = {"eval_accuracy": summary["all"]["accuracy"], "eval_length": summary["all"]["length_mean"]}
    for lv, s in summary["levels"].items():
        rec[f"eval_accuracy_L{lv}"], rec[f"eval_length_L{lv}"] = s["accuracy"], s["length_mean"]
    return rec


def load_training_problems(cfg):
    problems = read_problems(cfg.data)
    if cfg.levels:
        levels = {int(x) for x in cfg.levels.split(",")}
        problems = [p for p in problems if p["level"] in levels]
        if not problems:
            raise DataError(f"{cfg.data}: no problems at levels {sorted(levels)}")
    return problems


class StopRequest:
    """Ctrl-C once: finish the current step, save, exit. Twice: exit at once without saving."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step, then saving (Ctrl-C again to quit without saving)", flush=True)


def train(cfg, resume=False):
    """The whole run; returns the last step's log record."""
    torch.manual_seed(cfg.seed)
    ckpt = os.path.join(cfg.out, "checkpoint")
    start = 0
    actor_path = critic_path = cfg.init
    if cfg.critic_init:
        critic_path = cfg.critic_init
    if resume:
        state = json.load(open(os.path.join(ckpt, "state.json")))
        start = state["step"]
        actor_path, critic_path = os.path.join(ckpt, "actor"), os.path.join(ckpt, "critic")
    problems = load_training_problems(cfg)
    eval_problems = held_out(cfg)
    actor, critic, ref, tok = load_models(cfg, actor_path, critic_path)
    actor_opt = make_optimizer(actor, cfg.actor_lr, cfg)
    critic_opt = make_optimizer(critic, cfg.critic_lr, cfg) if critic is not None else None
    if resume:
        tensors = load_safetensors(os.path.join(ckpt, "optim.safetensors"))
        load_optimizer(actor_opt, tensors, "actor")
        if critic is not None:
            load_optimizer(critic_opt, tensors, "critic")
        print(f"resumed from {ckpt} at step {start}")
    os.makedirs(cfg.out, exist_ok=True)
    atomic_write_json(asdict(cfg), os.path.join(cfg.out, "config.json"))
    log_path = os.path.join(cfg.out, "log.jsonl")
    keep_log_until(log_path, start)
    print(f"actor {actor.num_params() / 1e6:.2f}M params | {len(problems)} training problems | "
          f"{cfg.prompts_per_step} x {cfg.samples_per_prompt} samples per step | {cfg.steps} steps")
    if eval_problems and start == 0:  # the starting point of the curves
        rec = {"step": -1, **evaluate_during_training(cfg, actor, tok, eval_problems)}
        append_jsonl(log_path, rec)
        print(f"step   -1 | eval acc {rec['eval_accuracy']:.3f} len {rec['eval_length']:.1f}")

    stop, bad_steps, rec = StopRequest(), 0, None
    actor_start = cfg.critic_warmup_steps if critic is not None else 0  # the actor's schedule starts here
    for step in range(start, cfg.steps):
        train_actor = step >= actor_start
        actor_factor = lr_factor(step - actor_start, cfg.steps - actor_start, cfg.warmup_ratio, cfg.min_lr_ratio)
        lrs = {"actor_lr": cfg.actor_lr * actor_factor if train_actor else 0.0,
               "critic_lr": cfg.critic_lr * lr_factor(step, cfg.steps, cfg.warmup_ratio, cfg.min_lr_ratio)}
        for opt, lr in ((actor_opt, lrs["actor_lr"]), (critic_opt, lrs["critic_lr"])):
            for group in opt.param_groups if opt else []:
                group["lr"] = lr
        batch, times = collect(cfg, actor, ref, critic, tok, problems, step)
        compute_advantages(cfg, batch)
        t = time.perf_counter()
        ok, stats = update(cfg, actor, critic, actor_opt, critic_opt, batch, step, train_actor)
        times["update"] = time.perf_counter() - t
        rec = log_record(cfg, step, batch, stats, times, lrs, int(batch.mask.sum().item()))
        rec["actor_trained"] = train_actor
        if not ok:
            bad_steps += 1
            rec["warning"] = "non-finite loss or gradient: skipped the optimiser step(s)"
            print(f"warning: step {step}: non-finite loss or gradient, update skipped "
                  f"({bad_steps}/{cfg.max_bad_steps} in a row)", flush=True)
            if bad_steps >= cfg.max_bad_steps:
                append_jsonl(log_path, rec)
                raise SystemExit(f"error: {bad_steps} steps in a row with NaN/inf; stopped. The last good "
                                 f"checkpoint is {ckpt}. Try a lower --actor-lr/--critic-lr.")
        else:
            bad_steps = 0
        done = step + 1
        if ok and (done % cfg.save_every == 0 or done == cfg.steps or stop.requested):
            save_checkpoint(cfg, done, actor, critic, actor_opt, critic_opt, tok)
        if eval_problems and (done % cfg.eval_every == 0 or done == cfg.steps):
            rec.update(evaluate_during_training(cfg, actor, tok, eval_problems))
        append_jsonl(log_path, rec)
        print(progress_line(rec), flush=True)
        if stop.requested:
            print(f"saved {ckpt} at step {done}; continue with --resume --out {cfg.out}")
            sys.exit(130)
    print(f"done: the trained model is {os.path.join(ckpt, 'actor')}")
    return rec


def dry_run_report(cfg, gpu_mem_gib):
    """Estimated memory of this run, from the init checkpoint's config and the longest prompt."""
    model_cfg, _ = read_checkpoint(cfg.init)
    tok = Tokenizer.load(cfg.init)
    prompt_len = max(len(tok.encode(prompt_text(p["problem"], tok))) for p in load_training_problems(cfg))
    est = memory.estimate(model_cfg, prompt_len=prompt_len, max_new_tokens=cfg.max_new_tokens,
                          sample_batch=min(cfg.sample_batch, cfg.prompts_per_step * cfg.samples_per_prompt),
                          micro_batch=cfg.micro_batch, bf16=cfg.dtype == "bf16",
                          grad_checkpointing=cfg.grad_checkpointing, critic=cfg.algo == "ppo")
    head = (f"estimated memory: {memory.param_count(model_cfg) / 1e9:.3f}B-parameter model, longest prompt "
            f"{prompt_len} + {cfg.max_new_tokens} new tokens, sample batch {cfg.sample_batch}, micro-batch "
            f"{cfg.micro_batch}, {cfg.dtype}, gradient checkpointing {'on' if cfg.grad_checkpointing else 'off'}")
    return head + "\n" + memory.report(est, gpu_mem_gib)


def append_jsonl(path, rec):
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def keep_log_until(path, step):
    """On resume, drop log records of steps after the checkpoint (they will be redone)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] < step]
    if step == 0:
        kept = []
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
    os.replace(path + ".tmp", path)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume:
        saved = os.path.join(args.out or Config.out, "checkpoint", "state.json")
        if not os.path.isfile(saved):
            raise SystemExit(f"error: --resume: no checkpoint at {saved}")
        cfg = Config(**{**json.load(open(saved))["config"]})
        cfg.adam_betas = tuple(cfg.adam_betas)
        print("resuming with the run's saved configuration (other flags are ignored)")
    else:
        cfg = resolve_config(args)
    print(json.dumps(asdict(cfg), indent=1))
    if args.dry_run:
        try:
            print(dry_run_report(cfg, args.gpu_mem))
        except (DataError, CheckpointError, FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}")
        return
    try:
        train(cfg, resume=args.resume)
    except (DataError, CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
