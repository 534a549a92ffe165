"""
Hand-written PPO for concise reasoning (Fatemi et al., 2025): the two phases are two presets of flags.

    python tasks.py                  # writes the toy's data/toy_train.jsonl and data/toy_test.jsonl
    python train_rl.py --phase 1 --init checkpoints/toy-base --data data/toy_train.jsonl --levels 4,5 --out runs/phase1
    python select_problems.py --ckpt runs/phase1/checkpoint/actor --data data/toy_train.jsonl --levels 4,5 \\
        --out runs/phase2_set.jsonl  # the paper's rule: the 8 lowest pass rates; the demo's is in demo.SETTINGS
    python train_rl.py --phase 2 --init runs/phase1/checkpoint/actor --data runs/phase2_set.jsonl --out runs/phase2

Phase 1 trains on many hard problems to raise accuracy; phase 2 on a small set (the paper: 8 problems; the
toy demo: 64) of problems the model solves only sometimes, which shortens responses while accuracy holds. The
reward is correctness only: +1 correct, -0.5 boxed but wrong, -1 no boxed answer (reward.py).

One PPO step:
  1. sample  `samples_per_prompt` responses for each of `prompts_per_step` problems (sample.py);
  2. score   each response; a response cut off at --max-new-tokens has no final answer and scores as
             "no answer" (-1) whatever its text says, and the cut is terminal for the critic (the value
             after it is 0), because that is where the episode ended;
  3. reference log-probs from the frozen initial policy; old log-probs and values recomputed with one
     full forward each, through the numerics of the update (so the first PPO ratio is 1 up to rounding:
     exactly where a micro-batch has the same rows as in the recomputation, else within about 1e-5 in fp32
     (the shipped toy: up to 1.0e-5) and about 1e-2 in bf16, as matmuls round differently at another width;
     log.jsonl's ratio_dev_first holds it; the ratio to the reference at the first step, log.jsonl's step 0, is
     exactly 1). The log-probs take fp32 logits in bf16 runs too (model.fp32_logits);
  4. rewards per token: -kl_coef * (logp - logp_ref) on every response token (k1, in the reward, the
     paper's choice) plus the score on the last response token; GAE (gamma = 1, lambda = --gae-lambda:
     the paper's 0.95; the toy's phase 1 uses 1.0, see PHASE_PRESETS) with the critic's values gives
     advantages and returns; advantages are whitened over the batch (README.md, "Why lambda < 1 shortens
     responses", says what each of these does to response length);
  5. update  `ppo_epochs` passes over `minibatches` minibatches: clipped policy loss (plus k3 KL in the
     loss with --kl-estimator k3), clipped value loss for the critic, grad-norm clipping, AdamW with a
     cosine schedule and warm-up (the toy's phase 2: constant after the warm-up), separate learning rates.
     The first --critic-warmup-steps steps (toy: 5) train the critic alone: the actor's lr is 0, so the
     terminal line shows "ent - | clip -" and kl stays 0 until the actor's first update has been sampled.

The terminal line of a step: "step N" counts steps done, as the saves and --keep-every do (log.jsonl's "step"
counts from 0, so it holds N - 1; "step 0" is the held-out evaluation before training). reward, acc and len
are that step's training batch (prompts_per_step x samples_per_prompt responses to --data, not held-out
problems), len [min-max] in tokens with the EOS; kl is log.jsonl's kl; ent, clip and vloss are the update's
entropy, clip_frac and value_loss ("-": not trained).

Masking convention, used everywhere below: tensors of shape (batch, T) are aligned with the *response
tokens*; `mask[i, t] = 1` for the response tokens of row i up to and including its EOS. The log-prob of
response token t is read from the logits of the position before it. Example, prompt [p0 p1], response
[r0 r1 EOS] in a batch with T = 4:
    tokens   p0 p1 r0 r1 EOS pad        logits at p1 score r0, at r0 score r1, at r1 score EOS
    mask           1  1  1   0          values[t] = V(prompt + response[:t]); reward on t = 2 (EOS)

--algo grpo runs a critic-free baseline on the same code path: the advantage of every token of a response
is its score normalised within its group of samples, with KL in the loss (k3). Under torchrun the step is
split over processes and gives what one process gives (distributed.py); run folders: runs.py.

log.jsonl, one record per step (log_record), where a name could mislead:
  reward_mean  the scores alone (step 2), without step 4's KL term;
  kl           mean k1 (logp - logp_ref) per response token: it can be negative, and stays k1 when
               --kl-estimator k2/k3 puts another estimator in the loss; kl_per_response is its sum per row;
  policy_loss  the clipped loss, plus kl_coef x k2/k3 when the KL is in the loss; it, clip_frac, entropy
               (at the run's temperature), approx_kl (k3 of the update's ratio) and value_loss are means
               over the step's optimiser steps, None where not trained: all but value_loss in the critic's
               warm-up, value_loss (and value_mean, return_mean, explained_variance) without a critic (GRPO);
  lengths      response tokens, the EOS included;
  sampler_logp_gap  mean |log-prob a token was sampled with - its old log-prob recomputed by the trainer| per
               response token (_max: the largest): how far the sampler's policy is from the one PPO's ratios
               assume (under 1e-7 on the toy in fp32; about 1e-3 in bf16, whose one-token decode steps and bf16
               logits round differently from the trainer's forward over the whole sequence);
  time_*       seconds per stage (time_reference holds the old log-probs' forward too), time_total their
               sum, time_wall the whole step with its evaluation and save; tokens_per_s is response tokens
               over time_total.
A figure that is not finite is written null (explained_variance when a step's returns do not vary).
"""

import json
import math
import os
import sys
import time
from dataclasses import dataclass

import torch

import distributed
import memory
import runs
from common import (InputError, Parser, StopRequest, append_jsonl, bool_flag, cli, device, fraction, has_critic,
                    int_list, lr_at, non_negative_float, non_negative_int, positive_float, positive_int, ranged,
                    sampling_temperature, seed_int, timed, torchrun_reads_timeout, torchrun_stop_timeout)
from distributed import all_max, all_sum, gather, is_main, my_share, on_main, world
from eval import eval_record, held_out
from model import head_logprobs, read_checkpoint
from reward import REWARDS, grade
from sample import ENGINES, SAMPLER_HELP, NonFiniteLogits, generate, pad_rows
from tasks import PAPER_NEW_TOKENS, encode_prompts, pick_problems, read_problems

# ----------------------------------------------------------------------------------------------------
# The maths: small pure functions on (batch, T) tensors, each pinned by a test with hand-computed numbers.


def masked_mean(x, mask, dim=None):
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x, mask, eps=1e-8):
    """(x - mean) / std over the valid positions of the whole batch; padded positions stay 0."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


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


def kl_in_reward(cfg):
    """Where the KL to the reference goes: k1 into the per-token rewards (the paper's choice; compute_advantages),
    k2 and k3 into the policy loss (actor_backward). A critic-free algorithm has no per-token reward, so it
    needs k2 or k3 (resolve_config refuses k1)."""
    return cfg.kl_estimator == "k1"


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
    """1 - Var(R - V) / Var(R) over valid tokens: 1 is a perfect critic, 0 no better than a constant. NaN when
    the returns do not vary (every response scored the same, lambda = 1): their variance is then rounding
    noise, and the ratio would be any huge number."""
    var_r = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    diff = returns - values
    var_d = masked_mean((diff - masked_mean(diff, mask)) ** 2, mask)
    noise = (1e-5 * (returns * mask).abs().max()) ** 2  # a spread below 1e-5 of the returns' size
    return (1 - var_d / var_r).item() if var_r > noise else float("nan")


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
    sampler_logp: torch.Tensor = None  # (B, T) the log-probs the sampler drew the tokens with: for the log only
    # A new field goes in one of these, or rows() leaves it out of every micro-batch (as sampler_logp):
    PER_TOKEN = ("mask", "logp", "logp_ref", "values", "rewards", "advantages", "returns")  # (B, T), trimmed by rows()
    PER_ROW = ("scores", "correct", "truncated")  # (B,)

    @property
    def lengths(self):
        return self.mask.sum(1)

    def rows(self, idx):
        """The sub-batch of rows idx (a micro-batch), trimmed to its own longest response."""
        T = int(self.mask[idx].sum(1).max().item())
        sub = {"input_ids": self.input_ids[idx, : self.prompt_len + T],
               "attention_mask": self.attention_mask[idx, : self.prompt_len + T], "prompt_len": self.prompt_len}
        for name in self.PER_TOKEN:
            t = getattr(self, name)
            sub[name] = None if t is None else t[idx, :T]
        for name in self.PER_ROW:
            sub[name] = getattr(self, name)[idx]
        return Rollout(**sub)


def build_rollout(prompts, completions, scores, correct, pad_id, device):
    """Pack prompt ids and sampled completions into one Rollout (left-padded prompts, right-padded responses)."""
    prompt_ids, prompt_mask = pad_rows(prompts, pad_id, "cpu", left=True)
    response_ids, response_mask = pad_rows([c.tokens for c in completions], pad_id, "cpu", left=False)
    truncated = torch.tensor([c.finish_reason == "length" for c in completions])
    sampler_logp = torch.zeros(response_mask.shape)
    for i, c in enumerate(completions):
        sampler_logp[i, : len(c.logprobs)] = torch.tensor(c.logprobs)
    return Rollout(torch.cat([prompt_ids, response_ids], 1).to(device),
                   torch.cat([prompt_mask, response_mask], 1).to(device), prompt_ids.size(1),
                   response_mask.float().to(device), torch.tensor(scores, device=device),
                   torch.tensor(correct, device=device), truncated.to(device), sampler_logp=sampler_logp.to(device))


def score_responses(tok, completions, golds, rewards, score_truncated=False):
    """(scores, correct) of each completion; rewards: {"correct", "wrong", "no_answer"}: value. A cut-off
    response has no final answer (reward.grade), unless score_truncated."""
    grades = [grade(tok.decode(c.tokens, skip_special=True), gold, c.finish_reason == "eos" or score_truncated)
              for c, gold in zip(completions, golds)]
    return [rewards[g] for g in grades], [g == "correct" for g in grades]


def place_rewards(scores, mask):
    """(B, T) tensor with each row's score on its last valid response token, 0 elsewhere."""
    rewards = torch.zeros_like(mask)
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(mask.size(0)), last] = scores.to(mask.dtype)
    return rewards


def response_hidden(model, batch):
    """Final hidden states at the positions that score the response tokens, (B, T, n_embd): the outputs
    at positions P-1 ... P+T-2 belong to response tokens 0 ... T-1 (the logits at a position score the
    next token; the value at a position is that of the state before the next token)."""
    P, T = batch.prompt_len, batch.mask.size(1)
    return model.hidden_states(batch.input_ids, attention_mask=batch.attention_mask)[:, P - 1 : P + T - 1]


def response_logprobs(actor, batch, temperature):
    """Log-probs and entropies of the response tokens at `temperature`, (B, T), 0 past each response."""
    P, T = batch.prompt_len, batch.mask.size(1)
    logp, entropy = head_logprobs(actor.lm_head, response_hidden(actor, batch), batch.input_ids[:, P : P + T],
                                  temperature)
    return logp * batch.mask, entropy * batch.mask


def response_values(critic, batch):
    """The critic's value before each response token, (B, T), 0 past each response."""
    return critic.value_head(response_hidden(critic, batch)).squeeze(-1).float() * batch.mask


def micro_batches(idx, size, lengths, prompt_len=0, max_tokens=0):
    """Rows idx in micro-batches, longest responses first, each of at most `size` rows and, with max_tokens, at
    most that many tokens (rows x (prompt_len + its longest response)). Rollout.rows trims a micro-batch to
    its own longest response, so grouping similar lengths spends little compute on padding (responses vary
    4x in length within one batch), and a token budget keeps micro-batches of short responses large."""
    order = idx[torch.argsort(lengths[idx], descending=True, stable=True)]
    chunks, start = [], 0
    while start < len(order):
        n = size if not max_tokens else max(1, min(size, max_tokens // int(prompt_len + lengths[order[start]])))
        chunks.append(order[start : start + n])
        start += n
    return chunks


def my_micro_batches(cfg, batch, idx):
    """This process's share of the micro-batches of rows idx (all of them in one process); None where it
    must run a dummy one, so that every process makes as many forward and backward calls."""
    return my_share(micro_batches(idx, cfg.micro_batch, batch.lengths, batch.prompt_len, cfg.micro_batch_tokens))


def my_sub_batches(cfg, batch, idx):
    """(sub-batch, real) for each of this process's micro-batches of rows idx. Where another process has more
    micro-batches this one runs dummy ones (real False: one row of idx, its loss multiplied by 0), so that every
    process makes as many forward and backward calls (FSDP's collectives)."""
    for micro in my_micro_batches(cfg, batch, idx):
        yield batch.rows(micro if micro is not None else idx[:1]), micro is not None


@torch.no_grad()
def forward_all(fn, cfg, batch):
    """fn(sub-batch) -> (rows, T') over micro-batches of the whole rollout, scattered back into (B, T) and
    summed over processes (each row is computed by one)."""
    full = torch.zeros_like(batch.mask)
    for micro in my_micro_batches(cfg, batch, torch.arange(batch.mask.size(0), device=full.device)):
        if micro is None:
            fn(batch.rows(torch.zeros(1, dtype=torch.long, device=full.device)))  # a dummy call for FSDP
            continue
        out = fn(batch.rows(micro))
        full[micro, : out.size(1)] = out.to(full.dtype)
    return all_sum(full)


# ----------------------------------------------------------------------------------------------------
# One PPO step: collect, compute_advantages, update


def autocast(cfg):
    """The forward passes' precision: bf16 autocast over fp32 weights, or plain fp32."""
    return torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16")


def collect(cfg, models, tok, problems, prompts, step):
    """Steps 1-3 of the module docstring: a scored Rollout with old and reference log-probs and values.
    prompts: {problem id: prompt token ids}. Each process samples its share of the rows; every process
    then holds the whole batch. models.actor(fn, *args) is fn(actor, *args), sharded under torchrun (runs.Models)."""
    times = {}
    batch_problems = pick_problems(problems, cfg.prompts_per_step, cfg.seed, step)
    rows = [p for p in batch_problems for _ in range(cfg.samples_per_prompt)]
    mine = [i for i in my_share(range(len(rows))) if i is not None]
    with timed(times, "sample"), autocast(cfg):
        completions = generate(models.rollout, [prompts[rows[i]["id"]] for i in mine], cfg.max_new_tokens,
                               cfg.temperature, eos_id=tok.eos_ids, pad_id=tok.pad_id, seed=f"{cfg.seed}/{step}",
                               row_ids=mine, batch_size=cfg.sample_batch, engine=cfg.sampler)
        completions = gather(dict(zip(mine, completions)))
        completions = [completions[i] for i in range(len(rows))]
    with timed(times, "score"):
        rewards = {"correct": cfg.reward_correct, "wrong": cfg.reward_wrong, "no_answer": cfg.reward_no_answer}
        scores, correct = score_responses(tok, completions, [p["answer"] for p in rows], rewards, cfg.score_truncated)
        batch = build_rollout([prompts[p["id"]] for p in rows], completions, scores, correct, tok.pad_id, cfg.device)
    with timed(times, "reference"), autocast(cfg):
        batch.logp = forward_all(lambda sub: models.actor(response_logprobs, sub, cfg.temperature)[0], cfg, batch)
        batch.logp_ref = forward_all(lambda sub: models.ref(response_logprobs, sub, cfg.temperature)[0], cfg, batch)
    with timed(times, "critic"), autocast(cfg):
        batch.values = torch.zeros_like(batch.mask) if models.critic is None else \
            forward_all(lambda sub: models.critic(response_values, sub), cfg, batch)
    return batch, times


def compute_advantages(cfg, batch):
    """Step 4: per-token rewards (score + k1 KL), GAE, whitening; GRPO: group-normalised scores (and no per-token
    rewards or returns, which only GAE and the critic read)."""
    if cfg.algo == "grpo":
        batch.advantages = group_advantages(batch.scores, cfg.samples_per_prompt)[:, None] * batch.mask
        return
    if cfg.algo != "ppo":  # a new algorithm needs its branch here (and an entry in common.has_critic if it has one)
        raise ValueError(f"unknown algo {cfg.algo!r}")
    batch.rewards = place_rewards(batch.scores, batch.mask)
    if kl_in_reward(cfg):
        batch.rewards = batch.rewards - cfg.kl_coef * kl_penalty(batch.logp, batch.logp_ref, "k1") * batch.mask
    adv, batch.returns = compute_gae(batch.rewards, batch.values, batch.mask, cfg.gamma, cfg.gae_lambda)
    batch.advantages = masked_whiten(adv, batch.mask) if cfg.whiten_advantages else adv


def actor_backward(cfg, actor, batch, idx, stats):
    """Accumulate the policy gradient of minibatch rows idx; False if a loss was not finite (its gradient
    is then not finite either, and the step is skipped)."""
    num_tokens, num_seqs, finite = batch.mask[idx].sum(), len(idx), True
    for sub, real in my_sub_batches(cfg, batch, idx):
        with autocast(cfg):
            logp, entropy = actor(response_logprobs, sub, cfg.temperature)
        loss_tok, clipped = policy_loss(logp, sub.logp, sub.advantages, cfg.clip_eps)
        if not kl_in_reward(cfg):
            loss_tok = loss_tok + cfg.kl_coef * kl_penalty(logp, sub.logp_ref, cfg.kl_estimator)
        loss = aggregate(loss_tok, sub.mask, cfg.loss_agg, num_tokens, num_seqs) * real
        finite = finite and bool(torch.isfinite(loss))
        (loss * world()).backward()  # FSDP averages gradients over processes; ours are sums over the batch
        if not real:
            continue
        with torch.no_grad():
            log_ratio = (logp - sub.logp) * sub.mask
            share = lambda x: ((x * sub.mask).sum() / num_tokens).item()
            stats["policy_loss"] += loss.item()
            stats["clip_frac"] += share(clipped)
            stats["entropy"] += share(entropy)
            stats["approx_kl"] += share(torch.exp(log_ratio) - 1 - log_ratio)
            if "ratio_dev_first" not in stats:  # max |ratio - 1| on the first micro-batch: rounding (docstring, 3.)
                stats["ratio_dev_first"] = (torch.exp(log_ratio) - 1).abs().max().item()
    return finite


def critic_backward(cfg, critic, batch, idx, stats):
    """Accumulate the value-loss gradient of minibatch rows idx; False if a loss was not finite."""
    num_tokens, num_seqs, finite = batch.mask[idx].sum(), len(idx), True
    for sub, real in my_sub_batches(cfg, batch, idx):
        with autocast(cfg):
            values = critic(response_values, sub)
        loss = aggregate(value_loss(values, sub.values, sub.returns, cfg.value_clip_eps), sub.mask, cfg.loss_agg,
                         num_tokens, num_seqs) * real
        finite = finite and bool(torch.isfinite(loss))
        (loss * world()).backward()
        stats["value_loss"] += loss.item()
    return finite


def optimizer_step(model, opt, max_grad_norm, ok):
    """Clip and apply the accumulated gradient, unless it is non-finite (then skip it); (applied, norm)."""
    norm = distributed.full(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)).item()
    ok = all_max(not ok) == 0 and math.isfinite(norm)  # one process's non-finite loss skips it on every process
    if ok:
        opt.step()
    opt.zero_grad(set_to_none=True)
    return ok, norm


def set_learning_rates(cfg, models, step, actor_start):
    """This step's learning rates, set in the optimisers: each model warms up, then decays on a cosine; the
    actor's schedule starts at actor_start, after the critic-only steps (lr 0 before)."""
    warmup = lambda total: max(1, math.ceil(cfg.warmup_ratio * total))
    actor_steps = cfg.steps - actor_start
    lrs = {"actor_lr": lr_at(step - actor_start, actor_steps, cfg.actor_lr, warmup(actor_steps), cfg.min_lr_ratio)
           if step >= actor_start else 0.0,
           "critic_lr": lr_at(step, cfg.steps, cfg.critic_lr, warmup(cfg.steps), cfg.min_lr_ratio) if models.critic_opt
           else None}
    for opt, lr in ((models.actor_opt, lrs["actor_lr"]), (models.critic_opt, lrs["critic_lr"])):
        for group in opt.param_groups if opt else []:
            group["lr"] = lr
    return lrs


ACTOR_STATS = ("policy_loss", "clip_frac", "entropy", "approx_kl")  # summed by actor_backward; None if not trained
CRITIC_STATS = ("value_loss",)  # summed by critic_backward; None without a critic


def update(cfg, models, batch, step, train_actor):
    """Step 5: ppo_epochs passes over the batch, each `minibatches` optimiser steps per model."""
    stats = dict.fromkeys(ACTOR_STATS + CRITIC_STATS, 0.0)  # sums, then means over the optimiser steps
    norms = {"actor_grad_norm": [], "critic_grad_norm": []}
    skipped, n_updates = 0, 0
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # (seed, step) alone: resumes draw the same
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(batch.mask.size(0), generator=gen).tensor_split(cfg.minibatches):
            idx = idx.to(batch.mask.device)
            n_updates += 1
            if train_actor:
                finite = actor_backward(cfg, models.actor, batch, idx, stats)
                applied, norm = optimizer_step(models.actor, models.actor_opt, cfg.max_grad_norm, finite)
                norms["actor_grad_norm"].append(norm)
                skipped += not applied
            if models.critic is not None:
                finite = critic_backward(cfg, models.critic, batch, idx, stats)
                applied, norm = optimizer_step(models.critic, models.critic_opt, cfg.max_grad_norm, finite)
                norms["critic_grad_norm"].append(norm)
                skipped += not applied
    if models.rollout is not models.actor.model:
        models.rollout.load_weights_from(models.actor.model)  # the sampling copy follows the trained weights
    first = stats.pop("ratio_dev_first", None)  # None on a process that ran only dummy micro-batches
    measured = (ACTOR_STATS if train_actor else ()) + (CRITIC_STATS if models.critic is not None else ())
    means = (all_sum(torch.tensor(list(stats.values()), dtype=torch.float64)) / n_updates).tolist()
    out = {name: mean if name in measured else None for name, mean in zip(stats, means)}
    out["ratio_dev_first"] = all_max(-1.0 if first is None else first) if train_actor else None  # on every process
    out.update({k: sum(v) / len(v) if v else None for k, v in norms.items()})
    out["skipped_updates"] = skipped  # optimiser steps skipped for a non-finite loss or gradient
    if skipped:
        total = n_updates * (train_actor + (models.critic is not None))
        out["warning"] = f"non-finite loss or gradient: skipped {skipped} of {total} optimiser steps"
    return out


def ppo_step(cfg, models, tok, problems, prompts, step, actor_start):
    """One PPO step, the module docstring's 1-5: its log record (run() below saves, evaluates, logs and stops)."""
    train_actor = step >= actor_start  # the critic alone before actor_start (--critic-warmup-steps)
    lrs = set_learning_rates(cfg, models, step, actor_start)
    batch, times = collect(cfg, models, tok, problems, prompts, step)
    compute_advantages(cfg, batch)
    with timed(times, "update"):
        stats = update(cfg, models, batch, step, train_actor)
    return {**log_record(cfg, step, batch, stats, times, lrs, int(batch.mask.sum().item())),
            "actor_trained": train_actor}


# ----------------------------------------------------------------------------------------------------
# The run: models, checkpoints, the log, the loop

def log_record(cfg, step, batch, stats, times, lrs, tokens):
    """The numbers that say whether a PPO run is healthy, one record per step."""
    lengths = batch.lengths.float()
    groups = batch.correct.view(-1, cfg.samples_per_prompt).float().mean(1)
    kl_tok = (batch.logp - batch.logp_ref) * batch.mask
    gap = (batch.sampler_logp - batch.logp).abs() * batch.mask  # the sampler's policy against the trainer's
    critic = has_critic(cfg.algo)  # GRPO has none: the critic's figures are None
    return {
        "step": step, "phase": cfg.phase, "algo": cfg.algo, "loss_agg": cfg.loss_agg,
        "reward_mean": batch.scores.float().mean().item(), "accuracy": batch.correct.float().mean().item(),
        "length_mean": lengths.mean().item(), "length_min": lengths.min().item(), "length_max": lengths.max().item(),
        "truncated_share": batch.truncated.float().mean().item(),
        "groups_all_correct": int((groups == 1).sum()), "groups_all_wrong": int((groups == 0).sum()),
        "kl": (kl_tok.sum() / batch.mask.sum()).item(), "kl_per_response": kl_tok.sum(1).mean().item(),
        "sampler_logp_gap": masked_mean(gap, batch.mask).item(), "sampler_logp_gap_max": gap.max().item(),
        "value_mean": masked_mean(batch.values, batch.mask).item() if critic else None,
        "return_mean": masked_mean(batch.returns, batch.mask).item() if critic else None,
        "explained_variance": explained_variance(batch.values, batch.returns, batch.mask) if critic else None,
        **stats, **lrs,
        "tokens_per_s": tokens / sum(times.values()),
        **{f"time_{k}": v for k, v in times.items()}, "time_total": sum(times.values()),
    }


def nan_advice(cfg, ckpt):
    """What a run stopped by NaN/inf keeps and how to go on at a lower learning rate: --resume takes no new
    --actor-lr, so a new run from the checkpoint (which holds the weights of its own step, not of the last
    finite update: saves come every --save-every steps)."""
    last_save = runs.saved_step(cfg.out)
    if last_save is None:
        return "No checkpoint was saved yet: start again with --overwrite and a lower --actor-lr/--critic-lr."
    critic = f" --critic-init {ckpt}/critic" if has_critic(cfg.algo) else ""
    return (f"{ckpt} holds the weights after step {last_save}, its last save. To go on at a lower learning rate, "
            f"start a new run from it: --init {ckpt}/actor{critic} --ref {cfg.ref or cfg.init} and a lower "
            "--actor-lr/--critic-lr, with another --out.")


def diverged(cfg, models, prompt):
    """Which of "the actor's logits" and "the critic's values" on one prompt hold NaN or inf, in words, or None.
    An update at far too high a learning rate can leave finite weights whose outputs are not (its loss and
    gradients were finite, so no optimiser step was skipped). A checkpoint of such an actor could never be
    resumed; of such a critic, every later update would be skipped. Checked before each save and each
    held-out evaluation, on every process (each process then takes the same decision)."""
    ids = torch.tensor([prompt], device=cfg.device)
    named = {"the actor's logits": models.actor, "the critic's values": models.critic}
    with torch.no_grad(), autocast(cfg):
        bad = [all_max(float(not torch.isfinite(m(lambda model, x: model(x, last_only=True), ids)).all())) > 0
               if m is not None else False for m in named.values()]
    return " and ".join(name for name, b in zip(named, bad) if b) or None


def stop_deadline_note(cfg, step, wall, deadline):
    """Said once, under torchrun, when a step took longer than torchrun lets its processes finish after a Ctrl-C or
    SIGTERM: such a stop would kill the run before it saves."""
    suggest = 60 * math.ceil(2 * wall / 60)  # twice the step, its save and evaluation included, in whole minutes
    fix = (f"to let a stop finish its step and save, start torchrun with TORCH_ELASTIC_SHUTDOWN_TIMEOUT={suggest} "
           "(and give a scheduler's SIGTERM as long before its SIGKILL)") if torchrun_reads_timeout() else \
        (f"torch {torch.__version__}'s torchrun does not read TORCH_ELASTIC_SHUTDOWN_TIMEOUT (newer ones do): a lower "
         "--save-every loses fewer steps")
    return (f"note: step {step} took {wall:.0f} s, more than the {deadline:g} s torchrun gives its processes to "
            f"stop after a Ctrl-C or SIGTERM: such a stop kills them before they save, and the run resumes from its "
            f"last checkpoint (saved every {cfg.save_every} steps); {fix}")


WALL_WINDOW = 20  # the last steps whose mean wall time estimates the time left
STOP_WINDOW = 10  # steps averaged on each side of --stop-length-ratio's comparison


def length_ratio(lengths):
    """Mean response length of the last STOP_WINDOW steps over that of the first STOP_WINDOW (lengths: each
    step's mean so far, from step 0); None before there are two windows."""
    w = STOP_WINDOW
    return sum(lengths[-w:]) / sum(lengths[:w]) if len(lengths) >= 2 * w else None


def shortened(lengths, ratio):
    """--stop-length-ratio's test: length_ratio is at most `ratio` (ratio 0: never)."""
    measured = length_ratio(lengths)
    return ratio > 0 and measured is not None and measured <= ratio


def train(cfg, resume=False, overwrite=False):
    """The whole run, in --out (locked by process 0 while it runs); returns the last step's log record."""
    if overwrite:
        runs.check_inputs_outside(cfg)
    with runs.claimed(cfg.out, resume, overwrite) as earlier:
        return run(cfg, resume, earlier)


def run(cfg, resume, earlier=None):
    """The run in the claimed --out; `earlier`: the earlier run's names there that --overwrite replaces."""
    torch.manual_seed(cfg.seed)
    if cfg.dtype == "bf16" and torch.device(cfg.device).type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the one fp32 matmul of a bf16 run: the LM head's
    cfg.world_size = world()
    say = print if is_main() else lambda *args, **kwargs: None
    ckpt, log_path = os.path.join(cfg.out, "checkpoint"), os.path.join(cfg.out, "log.jsonl")
    state = runs.read_state(cfg.out) if resume else None
    problems = read_problems(cfg.data, cfg.levels)
    eval_problems = held_out(cfg.eval_data, cfg.eval_problems, cfg.seed) if cfg.eval_every and cfg.eval_data else None
    models, tok = runs.load_models(cfg, os.path.join(ckpt, "actor") if resume else cfg.init,
                                   os.path.join(ckpt, "critic") if resume else cfg.critic_init or cfg.init)
    inputs = runs.inputs_of(cfg, problems, eval_problems)  # (the reference's folder checked by its loading)
    if resume:
        runs.check_inputs(cfg.out, state, inputs, problems, eval_problems)
    context = min(m.model.config.max_seq_len for m in (models.actor, models.critic, models.ref) if m is not None)
    prompts = dict(zip([p["id"] for p in problems], encode_prompts(problems, tok, cfg.max_new_tokens, context)))
    if eval_problems:  # a held-out prompt too long for the context is refused now, not at the first evaluation
        encode_prompts(eval_problems, tok, cfg.max_new_tokens, context)
    evaluate_now = lambda rec: {**rec, **eval_record(models.rollout, tok, eval_problems, cfg.eval_samples,
                                                     cfg.temperature, cfg.max_new_tokens, cfg.seed, cfg.sample_batch,
                                                     cfg.sampler)}
    eval_due = lambda done, finished: eval_problems and (done % cfg.eval_every == 0 or finished)
    start, lengths = (state["step"], state["lengths"]) if resume else (0, [])  # lengths: each step's mean (stop rule)
    if resume:  # optimiser state, and the log back at the checkpoint's step
        runs.resume(cfg.out, models, state, lambda rec: evaluate_now(rec) if eval_due(start, state["finished"]) else rec)
        on_main(lambda: runs.keep_actor(cfg, start))  # if a crash came between the save and keeping its actor
        say(f"resumed from {ckpt} at step {start}")
        if state["finished"]:
            say(f"the run had finished at step {start}: nothing to do")
            return state["record"]
    on_main(lambda: runs.check_disk(cfg, models, start))
    say(json.dumps(vars(cfg), indent=1))  # after the inputs' checks: an error is not buried under it
    if earlier:  # only now, every input read, every model loaded and every prompt encoded (process 0)
        runs.set_aside(cfg.out, earlier)
    runs.start_log(cfg, resume)
    say(f"actor {models.rollout.num_params() / 1e6:.2f}M params | {len(problems)} training problems | "
        f"{cfg.prompts_per_step} x {cfg.samples_per_prompt} samples per step | {cfg.steps} steps | "
        f"{world()} process(es)")
    if cfg.prompts_per_step > len(problems):
        say(f"note: --prompts-per-step {cfg.prompts_per_step} is more than the {len(problems)} training problems: each "
            "step takes some of them twice or more (each time as its own group of --samples-per-prompt)")
    log = lambda rec: append_jsonl(log_path, rec) if is_main() else None
    if eval_problems and start == 0:  # the starting point of the curves
        rec = evaluate_now({"step": -1})
        log(rec)
        say(f"step    0 | eval acc {rec['eval_accuracy']:.3f} len {rec['eval_length']:.1f}")

    actor_start = cfg.critic_warmup_steps if models.critic is not None else 0  # the actor's schedule starts here
    probe = next(iter(prompts.values()))  # a prompt whose logits are checked before each save (diverged)
    bad_steps, rec = 0, None
    walls = []  # each step's seconds from its start to its log record, for the estimate of the time left
    early = cfg.stop_length_ratio > 0 and cfg.steps >= 2 * STOP_WINDOW  # the run may end before --steps
    kept = (lambda: runs.kept_text(cfg.out)) if is_main() else None  # said by a second Ctrl-C
    deadline, said_deadline = torchrun_stop_timeout(), False  # the seconds torchrun grants a stop, or None
    with StopRequest(kept) as stop:  # Ctrl-C handled here, and only while the steps run
        for step in range(start, cfg.steps):
            began = time.perf_counter()
            done = step + 1  # steps done, as the terminal, the saves and --resume count them
            try:
                rec = ppo_step(cfg, models, tok, problems, prompts, step, actor_start)
            except NonFiniteLogits:
                if step == start:  # no update of this run's yet: the model it started from
                    raise
                raise SystemExit(f"error: step {done}: the actor's logits are NaN or inf: an update diverged; stopped. "
                                 + nan_advice(cfg, ckpt)) from None
            bad_steps = bad_steps + 1 if rec["skipped_updates"] else 0
            if bad_steps:
                say(f"warning: step {done}: {rec['warning']} ({bad_steps}/{cfg.max_bad_steps} in a row)", flush=True)
            if bad_steps >= cfg.max_bad_steps:
                log(rec)
                raise SystemExit(f"error: {bad_steps} step{'s' if bad_steps > 1 else ''} in a row with NaN/inf; stopped. "
                                 + nan_advice(cfg, ckpt))
            lengths.append(rec["length_mean"])
            stopping = all_max(stop.requested) > 0  # every process stops at the same step
            short = shortened(lengths, cfg.stop_length_ratio)  # the same on every process: each holds the batch
            finished = done == cfg.steps or short
            def stop_if_diverged(logged=False):  # before a save or an evaluation: the last good checkpoint stays
                if what := diverged(cfg, models, probe):
                    if not logged:
                        log(rec)
                    raise SystemExit(f"error: after step {done} {what} are NaN or inf: its update diverged; "
                                     "stopped without saving it. " + nan_advice(cfg, ckpt))

            def save(logged=False):
                stop_if_diverged(logged)
                return runs.save_checkpoint(cfg, done, rec, models, tok, finished, lengths, inputs)

            saved = done % cfg.save_every == 0 or finished or stopping
            save_line = save() if saved else None  # skipped updates left the weights finite; save() checks outputs
            if eval_due(done, finished):
                if not saved:  # it would sample from diverged weights
                    stop_if_diverged()
                rec = evaluate_now(rec)
            rec["time_wall"] = time.perf_counter() - began  # time_total and the evaluation and the save
            log(rec)
            walls.append(rec["time_wall"])
            recent = walls[-WALL_WINDOW:]  # responses shorten in phase 2, and their steps with them
            left = None if finished or stopping else (cfg.steps - done) * sum(recent) / len(recent)
            say(runs.progress_line(rec, left, at_most=early), flush=True)
            if save_line:
                say(save_line, flush=True)
            if deadline is not None and rec["time_wall"] > deadline and not said_deadline:
                said_deadline = True
                say(stop_deadline_note(cfg, done, rec["time_wall"], deadline), flush=True)
            if not (stopping or finished) and all_max(stop.requested) > 0:  # asked during the save or evaluation
                stopping = True
                save_line = None if saved else save(logged=True)
                if save_line:
                    say(save_line, flush=True)
            if stopping and not finished:  # a stop in the last step has nothing left to resume: the run is done
                say(f"saved {ckpt} at step {done}; continue with --resume --out {cfg.out}")
                sys.exit(130)
            if short:
                say(f"stopped at step {done} of {cfg.steps}: responses of the last {STOP_WINDOW} steps are "
                    f"{length_ratio(lengths):.2f} of the first {STOP_WINDOW} steps' length "
                    f"(--stop-length-ratio {cfg.stop_length_ratio})")
                break
    say(f"done: the trained model is {os.path.join(ckpt, 'actor')}")
    return rec


# ----------------------------------------------------------------------------------------------------
# Configuration: the paper's recipe as the flags' defaults, presets by phase and scale, the command line

# Presets hold only what departs from the paper's recipe (the flags' defaults), each with its reason; flags
# given on the command line override them. The measurements behind the toy values are in RESULTS.md.
SCALE_PRESETS = {
    "toy": dict(  # the CPU demo's 0.8M-parameter model
        actor_lr=5e-5,  # a tiny model fresh from supervised training barely moves at a 1.5B model's rates
        critic_lr=2e-4,  # likewise for its fresh value head
        critic_warmup_steps=5,  # the fresh value head first learns the scale of the returns
        minibatches=2,  # two optimiser steps per batch: more progress per sampled batch
        max_new_tokens=320,  # no toy trace is longer than about 280 tokens (see train_sft.longest_example)
        eval_every=20,  # held-out curves for the plots
    ),
    "paper": dict(  # the paper's models on one GPU (--scale auto: from PAPER_SCALE_PARAMS, 50M, up)
        dtype="bf16",  # bf16 autocast over fp32 master weights
        grad_checkpointing=True,  # activations of 8k-token responses
        micro_batch=64,  # rows per forward/backward are bounded by micro_batch_tokens instead
        micro_batch_tokens=16384,  # as many responses per forward/backward as 16k tokens hold
        sample_batch=32,  # KV cache of 32 rows x 8.4k tokens
        eval_every=25,
    ),
}
PHASE_PRESETS = {
    (1, "toy"): dict(
        steps=90,  # levels 4-5 gain 10.6 points (6 seeds); 100+ steps leave a model that phase 2 shortens less
        gae_lambda=1.0,  # the tiny critic explains ~1% of the return's variance: with 0.95, 150-token answers'
                         # first tokens get 0.95^149 (5e-4) of the credit and level 5 barely improves
    ),
    (2, "toy"): dict(
        stop_length_ratio=0.55,  # seeds shorten at rates 10x apart: each stops once its set's responses have
                                 # shortened as far as the fast seeds do by step 40; --steps is the cap
        min_lr_ratio=1.0,  # a constant lr after the warm-up (3% of the cap): a cosine tied to the cap would decay
                           # on a clock the run does not keep
        critic_lr=5e-5,  # at 2e-4 the critic learns each problem's value and GAE's length pressure fades
        ppo_epochs=2,  # two passes per batch shorten more per step than one
        kl_coef=0.02,  # 0.05 and 0.1 hold the length back; lower drifts from the phase-1 model
    ),
}
PAPER_SCALE_PARAMS = 50_000_000  # --scale auto: models at least this big get the "paper" presets
CLI_ONLY = {"help", "resume", "overwrite", "dry_run", "gpu_mem", "gpus"}  # flags that are not part of a run's config
# What changes for an algorithm without a critic (common.has_critic), GRPO or one added beside it:
CRITIC_FREE_PRESET = {"kl_estimator": "k3"}  # no per-token reward to put the KL in: it goes in the loss
CRITIC_FLAGS = ("critic_init", "critic_lr", "critic_warmup_steps", "value_clip_eps", "gamma", "gae_lambda",
                "whiten_advantages")  # what only the critic and GAE read


def preset(phase, scale, algo="ppo"):
    """What --phase, --scale and --algo change from the paper's recipe."""
    critic_free = {} if has_critic(algo) else CRITIC_FREE_PRESET
    return {**SCALE_PRESETS[scale], **PHASE_PRESETS.get((phase, scale), {}), **critic_free}


# A flag added to build_parser needs an entry here, the value that does what runs saved before it did; without one,
# those runs cannot --resume (runs.resumed_config).
NEW_FLAGS = {"keep_every": 0}


def build_parser():
    p = Parser(description="PPO for concise reasoning: --phase 1 raises accuracy, --phase 2 shortens responses.",
               epilog="A flag left out takes its preset's value for the --phase, the model's --scale and the --algo, "
                      "else the paper's (the default shown).")
    g = p.add_argument_group("phase and models")
    g.add_argument("--phase", type=int, choices=(1, 2), default=2, help="1: many hard problems, to raise accuracy "
                   "(pick them with --levels); 2: the small set, to shorten responses")
    g.add_argument("--scale", choices=("auto", "toy", "paper"), default="auto", help="presets of the toy (CPU demo) "
                   f"or the paper's models; auto: paper from {PAPER_SCALE_PARAMS // 10**6}M parameters")
    g.add_argument("--algo", choices=("ppo", "grpo"), default="ppo", help="ppo (critic, GAE) or grpo (no critic)")
    g.add_argument("--init", help="actor to start from: a project or Hugging Face folder (required)")
    g.add_argument("--ref", help="frozen reference policy of the KL term (default: --init)")
    g.add_argument("--critic-init", help="critic to start from (default: --init with a fresh scalar head)")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="training problems, JSONL: toy, MATH- or GSM8K-style (required)")
    g.add_argument("--levels", type=int_list, help="train only on these levels of --data, e.g. 4,5 (default: all)")
    g.add_argument("--eval-data", help="held-out problems evaluated every --eval-every steps (default: none)")
    g.add_argument("--eval-every", type=non_negative_int, metavar="N", default=0, help="evaluate held out every N steps")
    g.add_argument("--eval-problems", type=positive_int, metavar="N", default=200, help="held-out problems per evaluation")
    g.add_argument("--eval-samples", type=positive_int, metavar="N", default=1, help="samples per held-out problem")
    g = p.add_argument_group("rollout")
    g.add_argument("--prompts-per-step", type=positive_int, metavar="N", default=8, help="problems per step")
    g.add_argument("--samples-per-prompt", type=positive_int, metavar="N", default=8, help="responses sampled per problem")
    g.add_argument("--temperature", type=sampling_temperature, default=0.6, help="sampling temperature, also of log-probs")
    g.add_argument("--max-new-tokens", type=positive_int, metavar="N", default=PAPER_NEW_TOKENS,
                   help="response cut-off; a cut response scores as no answer")
    g.add_argument("--sample-batch", type=positive_int, metavar="N", default=64, help="rows sampled at once (KV cache)")
    g.add_argument("--sampler", choices=ENGINES, default="auto", help=SAMPLER_HELP)
    g = p.add_argument_group("reward (the paper's: correctness only)")
    reward = ranged(float, -1e6, 1e6)  # far beyond any sensible reward, far within float32
    g.add_argument("--reward-correct", type=reward, default=REWARDS["correct"], help="reward of a correct answer")
    g.add_argument("--reward-wrong", type=reward, default=REWARDS["wrong"], help="reward of a boxed but wrong answer")
    g.add_argument("--reward-no-answer", type=reward, default=REWARDS["no_answer"],
                   help="reward of no boxed answer, or cut off")
    g.add_argument("--score-truncated", type=bool_flag, default=False, help="score cut-off responses by their text")
    g = p.add_argument_group("optimisation")
    g.add_argument("--actor-lr", type=positive_float, default=5e-7, help="actor peak learning rate")
    g.add_argument("--critic-lr", type=positive_float, default=9e-6, help="critic peak learning rate")
    g.add_argument("--warmup-ratio", type=fraction, default=0.03, help="share of a model's steps warming its lr up")
    g.add_argument("--min-lr-ratio", type=fraction, default=0.1, help="cosine schedule floor, a share of the peak")
    g.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="AdamW weight decay")
    g.add_argument("--adam-betas", type=ranged(float, 0, 1, high_open=True), nargs=2, default=(0.9, 0.95), help="AdamW")
    g.add_argument("--max-grad-norm", type=positive_float, default=1.0, help="gradient-norm clip")
    g = p.add_argument_group("PPO")
    g.add_argument("--ppo-epochs", type=positive_int, metavar="N", default=1, help="passes over each step's batch")
    g.add_argument("--minibatches", type=positive_int, metavar="N", default=1, help="optimiser steps per pass")
    g.add_argument("--micro-batch", type=positive_int, metavar="N", default=16, help="rows per forward/backward")
    g.add_argument("--micro-batch-tokens", type=non_negative_int, metavar="N", default=0,
                   help="and at most N tokens (0: no limit)")
    g.add_argument("--clip-eps", type=ranged(float, 0, 1, low_open=True, high_open=True), default=0.2,
                   help="PPO ratio clip: the ratio is kept in [1 - eps, 1 + eps]")
    g.add_argument("--value-clip-eps", type=positive_float, default=0.2, help="value clip around the old values")
    g = p.add_argument_group("advantages (GAE)")
    g.add_argument("--gamma", type=fraction, default=1.0, help="GAE discount")
    g.add_argument("--gae-lambda", type=fraction, default=0.95, help="GAE lambda; 1.0 removes the length pressure")
    g.add_argument("--whiten-advantages", type=bool_flag, default=True, help="normalise advantages over the batch")
    g.add_argument("--loss-agg", choices=("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"),
                   default="token-mean", help="how token losses are averaged, the actor's and the critic's")
    g.add_argument("--critic-warmup-steps", type=non_negative_int, metavar="N", default=0, help="N critic-only steps")
    g = p.add_argument_group("KL to the reference")
    g.add_argument("--kl-coef", type=ranged(float, 0, 1e6), default=0.01, help="KL-to-reference coefficient")
    g.add_argument("--kl-estimator", choices=("k1", "k2", "k3"), default="k1", help="k1: in the reward; k2/k3: loss")
    g = p.add_argument_group("run")
    g.add_argument("--out", help="run folder: config.json, log.jsonl, checkpoint/ (required)")
    g.add_argument("--steps", type=positive_int, metavar="N", default=150, help="PPO steps (each: sample, score, update)")
    g.add_argument("--stop-length-ratio", type=fraction, default=0.0, help="end before --steps once the last "
                   f"{STOP_WINDOW} steps' responses average this share of the first {STOP_WINDOW}'s length (0: never)")
    g.add_argument("--seed", type=seed_int, metavar="N", default=0, help="data order, samples, critic head")
    g.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N, or auto (cuda if there is one)")
    g.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast over fp32 weights")
    g.add_argument("--grad-checkpointing", type=bool_flag, default=False, help="recompute activations in backward")
    g.add_argument("--save-every", type=positive_int, metavar="N", default=25, help="save every N steps, and at the end")
    g.add_argument("--keep-every", type=non_negative_int, metavar="N", default=0, help="also keep the actor of every "
                   "N-th step in --out/actors/step-N, to evaluate later; a multiple of --save-every (0: keep the "
                   "last checkpoint only)")
    g.add_argument("--max-bad-steps", type=positive_int, metavar="N", default=3, help="stop after N steps in a "
                   "row whose loss or gradient was NaN/inf (their optimiser steps are skipped); an actor whose "
                   "logits are NaN/inf (a diverged update) stops the run at once, without saving it")
    g = p.add_argument_group("start, stop, check")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint (the "
                   "command that started it, less any --overwrite, plus --resume does); other values are taken only "
                   "for --ref, --data, --eval-data and --device (where the files and the run are now) and "
                   "--sample-batch, --micro-batch, --micro-batch-tokens, --grad-checkpointing and --sampler (memory "
                   "and speed)")
    g.add_argument("--overwrite", action="store_true", help="replace the run in --out: its files (only those a run "
                   "writes) move to --out/replaced once the new run's inputs are checked, are deleted at the new run's "
                   "first checkpoint, and come back if it stops before one")
    g.add_argument("--dry-run", action="store_true", help="print the config, the estimated memory and the disk its "
                   "checkpoints need, then exit")
    g.add_argument("--gpu-mem", type=positive_float, help="with --dry-run: GiB per GPU, to say whether the run fits")
    g.add_argument("--gpus", type=positive_int, metavar="N", help="with --dry-run: GPUs to shard over (default: "
                   "the torchrun processes, else 1)")
    for action in p._actions:  # each preset's value next to the paper's: "(default: 5e-07; toy: 5e-05; ...)"
        values = [f"{s}: {v[action.dest]}" for s, v in SCALE_PRESETS.items() if action.dest in v]
        values += [f"{s} phase {ph}: {v[action.dest]}" for (ph, s), v in PHASE_PRESETS.items() if action.dest in v]
        if action.dest in CRITIC_FREE_PRESET:
            values.append(f"critic-free --algo: {CRITIC_FREE_PRESET[action.dest]}")
        if values:
            action.help += f" (default: {action.default}; " + "; ".join(values) + ")"
    return p


def config(**values):
    """A run's config: the paper's recipe with `values` on top (what tests and tools build runs from)."""
    cfg = build_parser().parse_args([])
    for name in CLI_ONLY - {"help"}:
        delattr(cfg, name)
    cfg.world_size = 1  # the number of processes, recorded in config.json
    vars(cfg).update(values)
    cfg.adam_betas = tuple(cfg.adam_betas)
    return cfg


def resolve_config(argv):
    """(config, the CLI-only flags): the paper's recipe <- the presets <- the flags given; with --resume, the
    run's saved config (runs.resumed_config)."""
    parser = build_parser()
    given = parser.given(argv)
    args = parser.parse_args(argv)
    cli_flags = {k: getattr(args, k) for k in CLI_ONLY - {"help"}}
    loose = [f"--{k.replace('_', '-')}" for k in ("gpu_mem", "gpus") if k in given and not args.dry_run]
    if loose:
        raise InputError(f"{' and '.join(loose)} only {'goes' if len(loose) == 1 else 'go'} with --dry-run (the memory "
                         "estimate); add it, or drop them")
    if args.resume and args.overwrite:
        raise InputError("--resume continues the run in --out and --overwrite replaces it: give one of them (to "
                         "continue a run with the command that started it, drop that command's --overwrite)")
    if args.resume:
        given = {k: v for k, v in given.items() if k not in CLI_ONLY}
        saved = runs.resumed_config(args.out, given, set(vars(config())), parser.refusal, NEW_FLAGS)
        return config(**saved), cli_flags
    for name in ("init", "data", "out"):
        if name not in given:
            raise InputError(f"--{name} is required (or --resume --out RUN to continue a run)")
    big = args.scale == "auto" and memory.param_count(read_checkpoint(args.init)[0]) >= PAPER_SCALE_PARAMS
    scale = "paper" if big else "toy" if args.scale == "auto" else args.scale
    parser.set_defaults(**preset(args.phase, scale, args.algo))
    cfg = config(**{k: v for k, v in vars(parser.parse_args(argv)).items() if k not in CLI_ONLY})
    cfg.scale = scale  # the presets used, not "auto"
    for name in runs.INPUTS:  # absolute, so that --resume works from any folder
        if getattr(cfg, name):
            setattr(cfg, name, os.path.abspath(getattr(cfg, name)))
    if is_main():
        print(f"presets: phase {cfg.phase}, {scale} scale" + ("" if cfg.algo == "ppo" else f", {cfg.algo}"))
    unused = [f"--{k.replace('_', '-')}" for k in CRITIC_FLAGS if k in given]
    if not has_critic(cfg.algo) and unused and is_main():  # accepted (a shared command line), but said
        print(f"note: --algo {cfg.algo} has no critic and no GAE: {', '.join(unused)} go unused (config.json keeps "
              "them)")
    checks = [
        (not has_critic(cfg.algo) and kl_in_reward(cfg),
         f"--algo {cfg.algo} has no per-token reward; use --kl-estimator k3"),
        (not has_critic(cfg.algo) and cfg.samples_per_prompt < 2, f"--algo {cfg.algo} has no critic: it compares the "
         "samples of a prompt with each other, so it needs --samples-per-prompt of 2 or more"),
        (cfg.minibatches > cfg.prompts_per_step * cfg.samples_per_prompt,
         f"--minibatches ({cfg.minibatches}) exceeds a step's {cfg.prompts_per_step * cfg.samples_per_prompt} responses"),
        (has_critic(cfg.algo) and cfg.critic_warmup_steps >= cfg.steps,
         f"--critic-warmup-steps ({cfg.critic_warmup_steps}) leaves no step for the actor in --steps {cfg.steps}"),
        ("eval_every" in given and cfg.eval_every > 0 and cfg.eval_data is None, "--eval-every needs --eval-data"),
        (cfg.keep_every % cfg.save_every != 0, f"--keep-every ({cfg.keep_every}) keeps the actor of a checkpoint, so it "
         f"must be a multiple of --save-every ({cfg.save_every})"),
        ("stop_length_ratio" in given and 0 < cfg.stop_length_ratio and cfg.steps < 2 * STOP_WINDOW,
         f"--stop-length-ratio compares the first and last "
         f"{STOP_WINDOW} steps' lengths, so it needs --steps {2 * STOP_WINDOW} or more (--stop-length-ratio 0: off)"),
    ]
    for failed, message in checks:
        if failed:
            raise InputError(message)
    return cfg, cli_flags


@cli(memory="lower --sample-batch (sampling, evaluation) or --micro-batch-tokens and --micro-batch (the update), "
             "which --resume takes again (--dry-run --gpu-mem GIB estimates a run's peak)")
def main(argv=None):
    distributed.setup()  # under torchrun: join the process group
    cfg, flags = resolve_config(argv)
    distributed.check_device(cfg.device)
    if not flags["dry_run"]:
        train(cfg, resume=flags["resume"], overwrite=flags["overwrite"])  # prints the config once inputs are read
    elif is_main():  # the inputs a run reads first, checked as the run checks them
        runs.check_models(cfg, cfg.init, cfg.critic_init or cfg.init)
        if cfg.eval_every and cfg.eval_data:  # as run() reads them (the paper preset evaluates every 25 steps)
            held_out(cfg.eval_data, cfg.eval_problems, cfg.seed)
        report = memory.run_report(cfg, flags["gpu_mem"], flags["gpus"] or world())  # reads tokenizer and data
        print(json.dumps(vars(cfg), indent=1))  # after them: an error is not buried under it
        print(report)
    distributed.leave()


if __name__ == "__main__":
    distributed.exit_after(main)
