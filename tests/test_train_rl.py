import json
import math
import os
import re
import signal
import shutil
import weakref
from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import runs
import train_rl
from common import InputError
from model import GPT, head_logprobs, token_logprobs
from reward import grade
from sample import Completion
from tasks import prompt_text, read_problems
from tokenizer import Tokenizer
from train_rl import (aggregate, build_rollout, compute_gae, explained_variance, group_advantages,
                      kl_penalty, masked_whiten, place_rewards, policy_loss, score_responses, value_loss)

# ---------------------------------------------------------------------------------------------------
# GAE: hand-computed. Row: rewards [0, 0, 1], values [0.5, 0.6, 0.7], value after the end = 0.


def test_gae_gamma1_lambda095():
    adv, ret = compute_gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]),
                           torch.ones(1, 3), gamma=1.0, lam=0.95)
    # delta = [0.1, 0.1, 0.3]; A2 = 0.3, A1 = 0.1 + 0.95 * 0.3, A0 = 0.1 + 0.95 * A1
    assert adv.tolist()[0] == pytest.approx([0.46575, 0.385, 0.3])
    assert ret.tolist()[0] == pytest.approx([0.96575, 0.985, 1.0])


def test_gae_lambda1_is_monte_carlo():
    adv, ret = compute_gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]),
                           torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.4, 0.3])  # R - V_t
    assert ret.tolist()[0] == pytest.approx([1.0, 1.0, 1.0])


def test_gae_with_a_constant_value_fades_the_advantage_towards_the_start():
    """README's "Why lambda < 1 shortens responses": reward r on the last token, value v everywhere, gamma 1:
    A_t = lambda^(T-1-t) (r - v), mean (r - v)(1 - lambda^T) / (T (1 - lambda)); with lambda 1, r - v on every token."""
    for T, mean in ((10, 0.4013), (50, 0.1846), (200, 0.0500)):  # the sums over a response: 4.0, 9.2, 10.0
        rewards, values, mask = torch.zeros(1, T), torch.full((1, T), 0.5), torch.ones(1, T)
        rewards[0, -1] = 1.0
        adv, _ = train_rl.compute_gae(rewards, values, mask, gamma=1.0, lam=0.95)
        assert torch.allclose(adv[0], 0.5 * 0.95 ** torch.arange(T - 1, -1, -1.0), atol=1e-6)
        assert abs(adv.mean().item() - mean) < 1e-4 and abs(mean - 0.5 * (1 - 0.95**T) / (T * 0.05)) < 1e-4
        assert abs(adv.sum().item() - T * mean) < 1e-3 and adv.sum() < 0.5 / (1 - 0.95)  # capped at (r - v) / (1 - lambda)
        adv, _ = train_rl.compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
        assert torch.allclose(adv, torch.full((1, T), 0.5))


def test_gae_gamma_below_one():
    adv, _ = compute_gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]),
                         torch.ones(1, 3), gamma=0.9, lam=0.95)
    # delta = [0.9*0.6-0.5, 0.9*0.7-0.6, 0.3] = [0.04, 0.03, 0.3]; gamma*lam = 0.855
    assert adv.tolist()[0] == pytest.approx([0.04 + 0.855 * (0.03 + 0.855 * 0.3), 0.03 + 0.855 * 0.3, 0.3])


def test_gae_padded_row_ignores_pad_values_and_rewards():
    rewards = torch.tensor([[0.0, -1.0, 5.0], [0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, -0.3, 9.9], [0.5, 0.6, 0.7]])  # 5.0 and 9.9 sit on a pad
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # Row 0: delta1 = -1 + 0 - (-0.3) = -0.7 (value after the last valid token is 0), delta0 = -0.3 - 0.2
    assert adv[0].tolist() == pytest.approx([-0.5 + 0.95 * -0.7, -0.7, 0.0])
    assert ret[0].tolist() == pytest.approx([-0.965, -1.0, 0.0])
    assert adv[1].tolist() == pytest.approx([0.46575, 0.385, 0.3])  # unaffected by its neighbour


def test_masked_whiten_hand_computed():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    w = masked_whiten(x, mask)
    std = math.sqrt(1.25)  # valid values 1..4: mean 2.5, variance 1.25
    assert w[0].tolist() == pytest.approx([-1.5 / std, -0.5 / std, 0.5 / std], abs=1e-6)
    assert w[1].tolist() == pytest.approx([1.5 / std, 0.0, 0.0], abs=1e-6)


def test_policy_loss_and_clip_fraction():
    ratio = torch.tensor([[0.5, 1.1, 1.5, 0.7, 1.5]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0]])
    loss, clipped = policy_loss(torch.log(ratio), torch.zeros_like(ratio), adv, clip_eps=0.2)
    # max(-A r, -A clip(r, .8, 1.2)) per token
    assert loss.tolist()[0] == pytest.approx([-0.5, -1.1, 1.5, 0.8, -1.2])
    assert clipped.tolist()[0] == [0.0, 0.0, 0.0, 1.0, 1.0]  # clip fraction 2/5


def test_value_loss_hand_computed():
    loss = value_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.4]), clip_eps=0.2)
    # v=1: max((1-2)^2, (0.7-2)^2) = 1.69; v=0: max(0.16, (0.3-0.4)^2) = 0.16; times 0.5
    assert loss.tolist() == pytest.approx([0.845, 0.08])


def test_kl_estimators_hand_computed():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 - 1 + math.log(2))
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(logp, ref, "k4")


def test_aggregation_modes_and_micro_batch_invariance():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    expected = {"token-mean": 10 / 4, "seq-mean-token-mean": (2 + 4) / 2, "seq-mean-token-sum": (6 + 4) / 2}
    for mode, want in expected.items():
        assert aggregate(loss, mask, mode).item() == pytest.approx(want)
        # Two micro-batches of one row each, normalised by the minibatch totals, sum to the same value.
        split = sum(aggregate(loss[i : i + 1], mask[i : i + 1], mode, num_tokens=mask.sum(), num_seqs=2)
                    for i in range(2))
        assert split.item() == pytest.approx(want)


def test_group_advantages():
    adv = group_advantages(torch.tensor([1.0, -1.0, 1.0, 1.0]), group_size=2)
    assert adv[:2].tolist() == pytest.approx([1 / math.sqrt(2), -1 / math.sqrt(2)], rel=1e-4)
    assert adv[2:].tolist() == [0.0, 0.0]  # an all-correct group carries no signal
    # 2 prompts x 3 samples: a group is 3 consecutive rows (with 8 x 8 any grouping of the square looks the same).
    # [1, -1, -1]: mean -1/3, sample std sqrt(((4/3)^2 + 2 (2/3)^2) / 2) = sqrt(4/3); [1, 1, -1]: mean 1/3, same std
    adv, s = group_advantages(torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0]), group_size=3), math.sqrt(4 / 3)
    assert adv.tolist() == pytest.approx([x / 3 / s for x in (4, -2, -2, 2, 2, -4)], rel=1e-4)


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 100.0]])  # the last position is padding: it must not count
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.tensor([[2.0, 2.0, 2.0, -50.0]]), returns, mask) == pytest.approx(0.0)
    # R - V = [0, 0, 1]: Var = 2/9 against Var(R) = 2/3, so 1 - 1/3
    assert explained_variance(torch.tensor([[1.0, 2.0, 2.0, 7.0]]), returns, mask) == pytest.approx(2 / 3)
    # Returns that do not vary (every response scored the same): NaN, not 1 - x / (rounding noise), which
    # logged -9.4e13 in a run. The variance of three float32 0.45s comes out as 8.9e-16, not 0.
    constant = torch.tensor([[0.45, 0.45, 0.45, 0.0]])
    assert math.isnan(explained_variance(torch.tensor([[0.5, 0.0, 0.2, 0.0]]), constant, mask))
    assert explained_variance(returns * 1e-3, returns * 1e-3, mask) == pytest.approx(1.0)  # small, but a real spread


# ---------------------------------------------------------------------------------------------------
# How the pieces are wired: hand-built batches through compute_advantages, the backward passes, the step


def hand_batch(logp, logp_ref, values, scores, mask, advantages=None, returns=None):
    """A Rollout of len(scores) rows with the given (B, T) figures; token ids are not read."""
    f = lambda x: None if x is None else torch.tensor(x, dtype=torch.float32)
    B, T = len(mask), len(mask[0])
    return train_rl.Rollout(torch.zeros(B, T + 1, dtype=torch.long), torch.ones(B, T + 1, dtype=torch.long), 1,
                            f(mask), f(scores), torch.ones(B, dtype=torch.bool), torch.zeros(B, dtype=torch.bool),
                            logp=f(logp), logp_ref=f(logp_ref), values=f(values), advantages=f(advantages),
                            returns=f(returns))


def hand_config(**values):
    return train_rl.config(init="x", data="x", out="x", loss_agg="token-mean", **values)


def test_the_k1_penalty_goes_into_the_rewards_and_returns_are_taken_before_whitening():
    # k1 = logp - logp_ref = [1, 0, 0.5]; rewards = score on the last token - 0.5 k1 = [-0.5, 0, 0.75];
    # gamma = lambda = 1 and values 0: advantages = returns = the rewards still to come = [0.25, 0.75, 0.75]
    batch = hand_batch([[-1, -1, -1]], [[-2, -1, -1.5]], [[0, 0, 0]], [1.0], [[1, 1, 1]])
    cfg = hand_config(kl_coef=0.5, gamma=1.0, gae_lambda=1.0, whiten_advantages=False, kl_estimator="k1")
    train_rl.compute_advantages(cfg, batch)
    assert batch.rewards.tolist() == [[-0.5, 0.0, 0.75]]
    assert batch.advantages.tolist() == batch.returns.tolist() == [[0.25, 0.75, 0.75]]
    # k3 puts KL in the loss, not in the rewards
    train_rl.compute_advantages(hand_config(kl_coef=0.5, gamma=1.0, gae_lambda=1.0, whiten_advantages=False,
                                            kl_estimator="k3"), batch)
    assert batch.rewards.tolist() == [[0.0, 0.0, 1.0]]
    # Whitened advantages, returns from the advantages before whitening (the critic's target is a return)
    two = hand_batch([[0, 0], [0, 0]], [[0, 0], [0, 0]], [[0.5, 0.2], [0.1, 0]], [1.0, -1.0], [[1, 1], [1, 0]])
    train_rl.compute_advantages(hand_config(kl_coef=0.0, gamma=1.0, gae_lambda=0.5, whiten_advantages=True), two)
    adv, ret = compute_gae(place_rewards(two.scores, two.mask), two.values, two.mask, 1.0, 0.5)
    assert torch.allclose(two.returns, ret) and not torch.allclose(two.returns, (two.advantages + two.values) * two.mask)
    assert torch.allclose(two.advantages, masked_whiten(adv, two.mask))
    # An algorithm added to --algo's choices without its branch here was trained as PPO with no critic (GAE on
    # zero values): refused instead
    with pytest.raises(ValueError, match="unknown algo 'no-such-algo'"):
        train_rl.compute_advantages(hand_config(algo="no-such-algo"), two)


@pytest.mark.parametrize("micro_batch", [16, 1])
def test_the_critic_regresses_on_the_returns_over_the_whole_minibatch(micro_batch):
    # Values 0.5 (as before the update: no clipping), returns 1 and 0: 0.5 * mean (0.5 - R)^2 over 5 tokens
    # = 0.125, d/dv = mean (v - R) = (3 * -0.5 + 2 * 0.5) / 5 = -0.1; the advantages (+-5) are not the target.
    batch = hand_batch(None, None, [[0.5] * 3] * 2, [1.0, -1.0], [[1, 1, 1], [1, 1, 0]],
                       advantages=[[5, -5, 5], [5, -5, 0]], returns=[[1, 1, 1], [0, 0, 0]])
    v = torch.nn.Parameter(torch.tensor(0.5))
    stats = {"value_loss": 0.0}
    cfg = hand_config(micro_batch=micro_batch, value_clip_eps=0.2)
    assert train_rl.critic_backward(cfg, lambda fn, sub: v * sub.mask, batch, torch.arange(2), stats)
    assert stats["value_loss"] == pytest.approx(0.125) and v.grad.item() == pytest.approx(-0.1)


def test_the_value_loss_clips_at_value_clip_eps_not_at_the_policys_clip_eps():
    # Old value 0.5, new 1.0, return 2: clipped at 0.2 the value is 0.7 and (0.7 - 2)^2 = 1.69 beats (1 - 2)^2 = 1:
    # loss 0.5 * 1.69 = 0.845, no gradient. Clipped at the policy's 0.5 it would be 0.5 with gradient v - R = -1.
    batch = hand_batch(None, None, [[0.5, 0.5]], [1.0], [[1, 1]], returns=[[2.0, 2.0]])
    v = torch.nn.Parameter(torch.tensor(1.0))
    stats = {"value_loss": 0.0}
    assert train_rl.critic_backward(hand_config(clip_eps=0.5, value_clip_eps=0.2), lambda fn, sub: v * sub.mask,
                                    batch, torch.arange(1), stats)
    assert stats["value_loss"] == pytest.approx(0.845) and v.grad.item() == pytest.approx(0.0)


# A minibatch (rows idx of the step's batch; the toy presets run 2) averages over its own tokens, not the batch's.
# The batch: row 0 has 3 tokens, row 1 has 2; the minibatch is row 1.
MINIBATCH_MASK = [[1, 1, 1], [1, 1, 0]]


def test_the_policy_loss_of_a_minibatch_is_a_mean_over_its_own_tokens():
    # Ratio 1, advantage 2 on row 1's two tokens: loss -2, d/dlogp = -2 / 2 = -1 on each (over the batch's 5
    # tokens it would be -0.8 and -0.4).
    batch = hand_batch([[-1, -1, -1], [-1, -1, 0]], [[-1, -1, -1], [-1, -1, 0]], None, [0.0, 0.0], MINIBATCH_MASK,
                       advantages=[[7, 7, 7], [2, 2, 0]])
    logp = torch.nn.Parameter(torch.tensor([[-1.0, -1.0]]))
    stats = dict.fromkeys(train_rl.ACTOR_STATS, 0.0)
    assert train_rl.actor_backward(hand_config(kl_coef=0.0, kl_estimator="k3"),
                                   lambda fn, sub, t: (logp * sub.mask, 0 * sub.mask), batch, torch.tensor([1]), stats)
    assert stats["policy_loss"] == pytest.approx(-2.0) and logp.grad[0].tolist() == pytest.approx([-1.0, -1.0])


def test_the_value_loss_of_a_minibatch_is_a_mean_over_its_own_tokens():
    # Values 0.5 (unclipped), return 1 on row 1's two tokens: loss 0.5 * 0.25 = 0.125, d/dv = mean (v - R) = -0.5.
    batch = hand_batch(None, None, [[0.5] * 3, [0.5, 0.5, 0]], [0.0, 0.0], MINIBATCH_MASK,
                       returns=[[9, 9, 9], [1, 1, 0]])
    v = torch.nn.Parameter(torch.tensor(0.5))
    stats = {"value_loss": 0.0}
    assert train_rl.critic_backward(hand_config(), lambda fn, sub: v * sub.mask, batch, torch.tensor([1]), stats)
    assert stats["value_loss"] == pytest.approx(0.125) and v.grad.item() == pytest.approx(-0.5)


def test_the_ratio_is_taken_against_the_sampling_policy_not_the_reference():
    # The actor still gives the log-probs it sampled with (ratio 1, nothing clipped), 0.5 above the reference's;
    # advantage 1, no KL: loss -1, d/dlogp = -1/2 per token. Against the reference the ratio would be e^0.5 = 1.65,
    # clipped at 1.2: loss -1.2 and no gradient.
    batch = hand_batch([[-1, -1]], [[-1.5, -1.5]], None, [0.0], [[1, 1]], advantages=[[1, 1]])
    logp = torch.nn.Parameter(torch.tensor([[-1.0, -1.0]]))
    stats = dict.fromkeys(train_rl.ACTOR_STATS, 0.0)
    assert train_rl.actor_backward(hand_config(kl_coef=0.0, kl_estimator="k3"),
                                   lambda fn, sub, t: (logp * sub.mask, 0 * sub.mask), batch, torch.arange(1), stats)
    assert stats["policy_loss"] == pytest.approx(-1.0) and stats["clip_frac"] == 0.0
    assert logp.grad[0].tolist() == pytest.approx([-0.5, -0.5])


def test_the_updates_diagnostics_on_a_hand_made_minibatch():
    # log r = +0.2 and -0.3 against the sampling policy, advantage 1, clip 0.2: the first ratio (1.221) is clipped,
    # the second (0.741) not, as A > 0; approx_kl is the mean of e^x - 1 - x; ratio_dev_first the largest |r - 1|.
    batch = hand_batch([[-1, -1]], [[-1, -1]], None, [0.0], [[1, 1]], advantages=[[1, 1]])
    logp = torch.nn.Parameter(torch.tensor([[-0.8, -1.3]]))
    stats = dict.fromkeys(train_rl.ACTOR_STATS, 0.0)
    assert train_rl.actor_backward(hand_config(kl_coef=0.0, kl_estimator="k3", clip_eps=0.2),
                                   lambda fn, sub, t: (logp * sub.mask, torch.tensor([[0.5, 1.5]])), batch,
                                   torch.arange(1), stats)
    assert stats["clip_frac"] == 0.5 and stats["entropy"] == pytest.approx(1.0)
    assert stats["approx_kl"] == pytest.approx((math.exp(0.2) - 1.2 + math.exp(-0.3) - 0.7) / 2)
    assert stats["ratio_dev_first"] == pytest.approx(1 - math.exp(-0.3))
    assert stats["policy_loss"] == pytest.approx(-(1.2 + math.exp(-0.3)) / 2)


def test_the_k3_penalty_in_the_loss_pulls_toward_the_reference():
    # Advantages 0, so the loss is the k3 term alone: log r = logp - logp_ref = 0.5 on each of 2 tokens,
    # k3 = exp(-0.5) - 1 + 0.5 = 0.10653 (positive), d/dlogp = 1 - exp(-0.5) = 0.39347, over 2 tokens.
    batch = hand_batch([[-1, -1]], [[-1.5, -1.5]], None, [0.0], [[1, 1]], advantages=[[0, 0]])
    logp = torch.nn.Parameter(torch.tensor([[-1.0, -1.0]]))
    stats = dict.fromkeys(train_rl.ACTOR_STATS, 0.0)
    cfg = hand_config(kl_coef=1.0, kl_estimator="k3")
    assert train_rl.actor_backward(cfg, lambda fn, sub, t: (logp * sub.mask, 0 * sub.mask), batch, torch.arange(1),
                                   stats)
    assert stats["policy_loss"] == pytest.approx(math.exp(-0.5) - 0.5)
    assert logp.grad[0].tolist() == pytest.approx([(1 - math.exp(-0.5)) / 2] * 2)


def test_an_optimiser_step_clips_the_gradient_norm():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    module = torch.nn.Module()
    module.p = p
    assert train_rl.optimizer_step(module, torch.optim.SGD([p], lr=1.0), 1.0, True) == (True, 5.0)
    assert p.tolist() == pytest.approx([-0.6, -0.8]) and p.grad is None


def test_an_optimiser_step_skips_a_gradient_that_is_not_finite_though_the_loss_was():
    # A finite loss can still overflow to an inf gradient: clipping then scales it by 1 / inf = 0, inf * 0 is NaN,
    # and a step would write NaN into the weights. The step is skipped and the gradient cleared.
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    p.grad = torch.tensor([float("inf"), 1.0])
    module = torch.nn.Module()
    module.p = p
    applied, norm = train_rl.optimizer_step(module, torch.optim.SGD([p], lr=1.0), 1.0, True)
    assert not applied and norm == math.inf
    assert p.tolist() == [1.0, 2.0] and p.grad is None


def test_the_update_logs_means_over_its_optimiser_steps(monkeypatch):
    # 5 rows, 3 minibatches (2, 2, 1 rows), 2 passes: 6 optimiser steps per model. Each backward adds its
    # minibatch's row count to every figure: the sums are 2 * (2 + 2 + 1) = 10, the means 10 / 6.
    def backward(names):
        def fake(cfg, model, batch, idx, stats):
            for name in names:
                stats[name] += len(idx)
            return True
        return fake

    monkeypatch.setattr(train_rl, "actor_backward", backward(train_rl.ACTOR_STATS))
    monkeypatch.setattr(train_rl, "critic_backward", backward(train_rl.CRITIC_STATS))
    norms = iter(range(1, 13))
    monkeypatch.setattr(train_rl, "optimizer_step", lambda model, opt, max_norm, ok: (True, float(next(norms))))
    model = torch.nn.Linear(1, 1)
    models = SimpleNamespace(actor=SimpleNamespace(model=model), critic=model, rollout=model, actor_opt=None,
                             critic_opt=None)
    batch = hand_batch(None, None, None, [0.0] * 5, [[1]] * 5)
    out = train_rl.update(hand_config(ppo_epochs=2, minibatches=3), models, batch, 0, train_actor=True)
    for name in train_rl.ACTOR_STATS + train_rl.CRITIC_STATS:
        assert out[name] == pytest.approx(10 / 6), name
    # the actor's steps take norms 1, 3, ..., 11 and the critic's 2, 4, ..., 12 (actor first at each minibatch)
    assert out["actor_grad_norm"] == 6.0 and out["critic_grad_norm"] == 7.0 and out["skipped_updates"] == 0


# ---------------------------------------------------------------------------------------------------
# Rollout plumbing


def test_reward_lands_on_last_valid_token():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    rewards = place_rewards(torch.tensor([1.0, -0.5]), mask)
    assert rewards.tolist() == [[0.0, 0.0, 1.0, 0.0], [-0.5, 0.0, 0.0, 0.0]]


def test_cut_off_response_scores_as_no_answer_unless_asked():
    tok = Tokenizer.byte_level()
    values = {"correct": 1.0, "wrong": -0.5, "no_answer": -1.0}
    right = tok.encode("2+3=5. \\boxed{5}")
    completions = [Completion(right + [tok.eos_id], [0.0] * (len(right) + 1), "eos"),
                   Completion(right + tok.encode(" and more"), [0.0] * (len(right) + 9), "length")]
    assert score_responses(tok, completions, ["5", "5"], values) == ([1.0, -1.0], [True, False])
    assert score_responses(tok, completions, ["5", "5"], values, score_truncated=True) == ([1.0, 1.0], [True, True])


def test_build_rollout_layout():
    prompts = [[1, 2, 3], [4]]
    completions = [Completion([7, 8], [-0.5, -0.25], "eos"), Completion([9, 9, 9], [-1.0, -2.0, -3.0], "length")]
    r = build_rollout(prompts, completions, [1.0, -1.0], [True, False], pad_id=0, device="cpu")
    assert r.sampler_logp.tolist() == [[-0.5, -0.25, 0.0], [-1.0, -2.0, -3.0]]  # aligned with the response tokens
    assert r.input_ids.tolist() == [[1, 2, 3, 7, 8, 0], [0, 0, 4, 9, 9, 9]]
    assert r.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert r.mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert r.truncated.tolist() == [False, True]
    sub = r.rows(torch.tensor([0]))  # trimmed to its own longest response
    assert sub.input_ids.tolist() == [[1, 2, 3, 7, 8]] and sub.mask.tolist() == [[1, 1]]


def test_head_logprobs_chunked_equals_whole_with_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    h = torch.randn(2, 9, 8, requires_grad=True)
    targets = torch.randint(0, 50, (2, 9))
    grads = []
    for max_elements in (None, 2 * 50 * 4):  # whole, then chunks of 4 positions
        h.grad = head.weight.grad = None
        out = token_logprobs(head(h), targets, 0.7) if max_elements is None else \
            head_logprobs(head, h, targets, 0.7, max_elements=max_elements)
        (out[0].sum() + 0.3 * out[1].sum()).backward()
        grads.append((out, h.grad.clone(), head.weight.grad.clone()))
    (whole, gh1, gw1), (chunked, gh2, gw2) = grads
    for a, b in zip(whole, chunked):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(gh1, gh2, atol=1e-6) and torch.allclose(gw1, gw2, atol=1e-6)


def test_head_logprobs_run_in_chunks_of_max_elements(monkeypatch):
    """Switching chunking off changes no number, only the memory bound (5 GB of logits for one 8k-token
    response at R1's vocabulary): count the head's calls."""
    import model
    calls, real = [], model.fp32_logits
    monkeypatch.setattr(model, "fp32_logits", lambda head, h: calls.append(h.size(1)) or real(head, h))
    head_logprobs(torch.nn.Linear(8, 50, bias=False), torch.randn(2, 9, 8), torch.randint(0, 50, (2, 9)), 0.7,
                  max_elements=2 * 50 * 4)
    assert calls == [4, 4, 1]


def test_head_logprobs_take_fp32_logits_under_bf16_autocast():
    """bf16 rounds a logit of 20.03 to 20.0: at T = 0.6 a log-prob 0.05 off, the size of noise every PPO ratio
    of a bf16 run carried (the clip range is 0.2). The head's matmul runs in fp32 instead."""
    head = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[20.03], [0.0]]))
    h, targets = torch.ones(1, 1, 1), torch.tensor([[1]])
    exact = torch.log_softmax(torch.tensor([20.03, 0.0]) / 0.6, -1)[1].item()  # -33.383..., fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = token_logprobs(head(h), targets, 0.6)[0].item()  # what the head gave under autocast
        logp = head_logprobs(head, h, targets, 0.6)[0].item()
    assert logp == pytest.approx(exact, abs=1e-5) and rounded == pytest.approx(-20.0 / 0.6, abs=1e-4)


class LiveTensors(TorchDispatchMode):
    """Counts, at every op, the (batch, positions, vocab) tensors still alive (weak references)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab, self.refs, self.most = vocab, [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.refs = [r for r in self.refs if r() is not None]
        self.refs += [weakref.ref(t) for t in (out if isinstance(out, (tuple, list)) else [out])
                      if isinstance(t, torch.Tensor) and t.dim() == 3 and t.size(-1) == self.vocab]
        self.most = max(self.most, len(self.refs))
        return out


def test_head_logprobs_backward_holds_one_chunk_of_logits_at_a_time():
    # The memory bound of chunking must hold in backward too. The entropy is computed but gets no gradient
    # (as in train_rl); with the non-reentrant checkpoint its recomputed tensors stayed alive for every chunk.
    torch.manual_seed(0)
    head, h = torch.nn.Linear(8, 50, bias=False), torch.randn(2, 12, 8, requires_grad=True)
    logp, entropy = head_logprobs(head, h, torch.randint(0, 50, (2, 12)), 1.0, max_elements=2 * 50 * 1)
    with LiveTensors(vocab=50) as live:  # 12 chunks of one position
        logp.sum().backward()
    assert live.most <= 8  # one chunk's: 7 with this code, the non-reentrant checkpoint kept 41 of 12 chunks


# ---------------------------------------------------------------------------------------------------
# End to end on a tiny model made here


def tiny_config(ckpt, out, **kw):
    base = dict(phase=2, init=str(ckpt), data=str(ckpt / "problems.jsonl"), out=str(out), steps=20,
                prompts_per_step=2, samples_per_prompt=8, temperature=1.0, max_new_tokens=16, actor_lr=3e-3,
                critic_lr=3e-3, minibatches=2, micro_batch=5, save_every=100, warmup_ratio=0.0)
    base.update(kw)
    return train_rl.config(**base)


def test_first_minibatch_ratio_is_exactly_one(half_right, tmp_path, monkeypatch):
    cfg = tiny_config(half_right, tmp_path, temperature=0.6)  # not 1: a side that ignored it would go unseen
    real_generate, sampled = train_rl.generate, []

    def generate_and_keep(*args, **kwargs):
        out = real_generate(*args, **kwargs)
        sampled.extend(out)
        return out

    monkeypatch.setattr(train_rl, "generate", generate_and_keep)
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=0)
    train_rl.compute_advantages(cfg, batch)
    stats = train_rl.update(cfg, models, batch, 0, train_actor=True)
    assert stats["skipped_updates"] == 0
    assert stats["ratio_dev_first"] < 1e-5
    assert torch.equal(batch.logp, batch.logp_ref)  # actor == reference at step 0, at the same temperature
    # Each row scored by the run's reward values: right (1), boxed but wrong (-0.5), no answer (-1)
    grades = [grade(tok.decode(c.tokens, skip_special=True), "1", c.finish_reason == "eos") for c in sampled]
    assert "correct" in grades and "wrong" in grades
    assert batch.scores.tolist() == [{"correct": 1.0, "wrong": -0.5, "no_answer": -1.0}[g] for g in grades]
    # The sampler's log-probs (at the run's temperature) are those the full forward recomputes
    assert len(sampled) == batch.mask.size(0) == 16
    for row, c in enumerate(sampled):
        assert batch.mask[row].sum() == len(c)
        assert torch.allclose(batch.logp[row, : len(c)], torch.tensor(c.logprobs), atol=1e-5), row
    rec = train_rl.log_record(cfg, 0, batch, stats, {"sample": 1.0}, {}, 1)  # the log's figure of that agreement
    gaps = (batch.sampler_logp - batch.logp).abs() * batch.mask
    assert rec["sampler_logp_gap"] == pytest.approx((gaps.sum() / batch.mask.sum()).item())
    assert rec["sampler_logp_gap_max"] == gaps.max().item() < 1e-5


def test_rollouts_stop_at_every_eos_id_of_the_tokenizer(half_right, tmp_path):
    """A tokenizer's eos_ids (generation_config.json may list several) all end a rollout, which then scores as
    a finished response. Here "{" is made an EOS id: "\\boxed{" ends there, with no answer (-1)."""
    cfg = tiny_config(half_right, tmp_path)
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    tok.eos_ids = (tok.eos_id, ord("{"))
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=0)
    responses = batch.input_ids[:, batch.prompt_len :]
    ends = [row[: int(n)][-1].item() for row, n in zip(responses, batch.lengths)]
    assert not batch.truncated.any()
    assert ends.count(ord("{")) >= 12  # of 16: the tiny policy writes "\\boxed{" nearly always
    assert all(score == -1 for score, end in zip(batch.scores.tolist(), ends) if end == ord("{"))


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_twenty_steps_raise_the_mean_reward(half_right, tmp_path, algo):
    last = train_rl.train(tiny_config(half_right, tmp_path, algo=algo, kl_estimator="k1" if algo == "ppo" else "k3"))
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    first = sum(r["reward_mean"] for r in log[:3]) / 3
    final = sum(r["reward_mean"] for r in log[-3:]) / 3
    assert first < 0.5 and final > first + 0.5, (first, final)
    assert last["step"] == 19 and os.path.isdir(tmp_path / "checkpoint" / "actor")
    critic = ("critic_lr", "value_mean", "return_mean", "explained_variance", "value_loss")
    if algo == "grpo":  # no critic: its figures are None, not a learning rate or zeros
        assert all(r[k] is None for r in log for k in critic)
    else:
        assert all(isinstance(r[k], float) for r in log[5:] for k in critic)


def test_resume_ends_where_an_uninterrupted_run_ends(half_right, tmp_path, monkeypatch, capsys):
    full = tiny_config(half_right, tmp_path / "full", steps=4, save_every=2)
    train_rl.train(full)
    # Each save says where, at which step, how big (the files written) and how long it took.
    ckpt = tmp_path / "full" / "checkpoint"
    out = capsys.readouterr().out
    saves = re.findall(r"^saved (.+) at step (\d+) \((.+) MiB, [\d.]+ s\)$", out, re.M)
    size = f"{runs.folder_bytes(ckpt) / 2**20:.2f}"  # both checkpoints: the same tensors, a state.json as long
    assert saves == [(str(ckpt), "2", size), (str(ckpt), "4", size)]
    # each right after the line of the step it saved, which bears its number
    lines = [line.split(" |")[0].split(" (")[0] for line in out.splitlines() if line.startswith(("step ", "saved "))]
    assert lines == ["step    1", "step    2", f"saved {ckpt} at step 2", "step    3", "step    4",
                     f"saved {ckpt} at step 4"]

    crashed = tiny_config(half_right, tmp_path / "crash", steps=4, save_every=2)
    real_collect = train_rl.collect

    def crash_at_step_2(*args):
        if args[-1] == 2:  # the step
            raise RuntimeError("simulated crash")
        return real_collect(*args)

    monkeypatch.setattr(train_rl, "collect", crash_at_step_2)
    with pytest.raises(RuntimeError):
        train_rl.train(crashed)
    monkeypatch.setattr(train_rl, "collect", real_collect)
    train_rl.train(crashed, resume=True)

    a = GPT.from_pretrained(str(tmp_path / "full" / "checkpoint" / "actor")).state_dict()
    b = GPT.from_pretrained(str(tmp_path / "crash" / "checkpoint" / "actor")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in open(tmp_path / "crash" / "log.jsonl")]
    assert steps == [0, 1, 2, 3]  # no duplicated or missing log records
    lengths = lambda run: json.loads((tmp_path / run / "checkpoint" / "state.json").read_text())["lengths"]
    assert lengths("crash") == lengths("full") and len(lengths("full")) == 4  # what the stop rule reads


def test_each_step_logs_its_wall_time_and_says_the_time_left(half_right, tmp_path, monkeypatch, capsys):
    """time_wall runs from a step's start to its log record, the evaluation and the save included; the time left
    is the steps to go times the mean wall time of the last WALL_WINDOW steps. A clock moved only by the stages
    here: the steps sample for 2, 4, 6 and 8 s, an evaluation takes 20 s (after steps 1 and 3) and the one save
    10 s (after step 3). With a window of 2: 3 x 2, 2 x 13, 1 x 15, then nothing on the last step. Not "at
    most": --stop-length-ratio compares two windows of STOP_WINDOW steps, so a 4-step run cannot end early."""
    now = [0.0]
    def taking(seconds, fn):
        def timed(*args, **kwargs):
            now[0] += seconds(*args) if callable(seconds) else seconds
            return fn(*args, **kwargs)
        return timed
    monkeypatch.setattr(train_rl, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(train_rl, "collect", taking(lambda *args: 2 * (args[-1] + 1), train_rl.collect))
    monkeypatch.setattr(train_rl, "eval_record", taking(20, train_rl.eval_record))
    monkeypatch.setattr(runs, "save_checkpoint", taking(10, runs.save_checkpoint))
    monkeypatch.setattr(train_rl, "WALL_WINDOW", 2)
    train_rl.train(tiny_config(half_right, tmp_path, steps=4, stop_length_ratio=0.5, eval_every=2,
                               eval_data=str(half_right / "problems.jsonl"), eval_samples=1))
    assert [json.loads(line).get("time_wall") for line in open(tmp_path / "log.jsonl")] == [None, 2, 24, 6, 38]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ") and "reward" in line]
    assert [line.split(" | ")[-1] for line in lines] == ["6s left", "26s left", "15s left", "eval acc " +
                                                         lines[-1].split("eval acc ")[-1]]
    assert [line.count("eval acc") for line in lines] == [0, 1, 0, 1]


def test_log_record_figures_of_a_hand_made_batch():
    """Six responses, two per prompt: lengths 3, 5, 2, 8, 4, 2 (mean 4), one cut off (a share of 1/6), groups
    correct [1, 1], [0, 1], [0, 0] (one all right, one all wrong); log-probs 0.1 above the reference's (kl 0.1 a
    token, 0.4 a response) and 0.2 away from the sampler's."""
    lengths = torch.tensor([3, 5, 2, 8, 4, 2])
    mask = (torch.arange(8) < lengths[:, None]).float()
    batch = SimpleNamespace(lengths=lengths, mask=mask, scores=torch.tensor([1, 1, -0.5, 1, -1, -0.5]),
                            correct=torch.tensor([True, True, False, True, False, False]),
                            truncated=torch.tensor([False, False, False, False, True, False]),
                            logp=torch.full((6, 8), -1.0), logp_ref=torch.full((6, 8), -1.1),
                            sampler_logp=torch.full((6, 8), -1.2))
    cfg = SimpleNamespace(samples_per_prompt=2, phase=2, algo="grpo", loss_agg="token-mean")
    rec = train_rl.log_record(cfg, 3, batch, {}, {"sample": 2.0}, {}, 48)
    assert (rec["length_mean"], rec["length_min"], rec["length_max"]) == (4, 2, 8)
    assert rec["truncated_share"] == pytest.approx(1 / 6) and rec["accuracy"] == pytest.approx(0.5)
    assert (rec["groups_all_correct"], rec["groups_all_wrong"]) == (1, 1)
    assert rec["reward_mean"] == pytest.approx(1 / 6)
    assert rec["kl"] == pytest.approx(0.1) and rec["kl_per_response"] == pytest.approx(0.4)
    assert rec["sampler_logp_gap"] == pytest.approx(0.2) and rec["tokens_per_s"] == 24


def test_the_stop_rule_reads_the_mean_length_and_the_last_step_is_evaluated(half_right, tmp_path, monkeypatch):
    """Each step's record is the first step's with a mean length of 100 for ten steps, then 40, and a longest
    response that stays at 300: --stop-length-ratio 0.5 stops at step 20 of 30 (40 / 100 = 0.4), and that last
    step, not a multiple of --eval-every 7, is evaluated."""
    first = []

    def step_record(cfg, models, tok, problems, prompts, step, actor_start):
        first or first.append(real_step(cfg, models, tok, problems, prompts, step, actor_start))
        return {**first[0], "step": step, "length_mean": 100.0 if step < 10 else 40.0, "length_max": 300.0}

    real_step = train_rl.ppo_step
    monkeypatch.setattr(train_rl, "ppo_step", step_record)
    monkeypatch.setattr(train_rl, "eval_record", lambda *args: {"eval_accuracy": 0.5, "eval_length": 1.0})
    rec = train_rl.train(tiny_config(half_right, tmp_path, steps=30, stop_length_ratio=0.5, eval_every=7,
                                     eval_data=str(half_right / "problems.jsonl"), eval_samples=1))
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert rec["step"] == 19 and [r["step"] for r in log if "eval_accuracy" in r] == [-1, 6, 13, 19]


def test_a_step_that_ends_the_run_early_says_no_time_left(half_right, tmp_path, monkeypatch, capsys):
    """Ctrl-C during step 1 of 4: that step is saved and the run stops, so its line estimates nothing."""
    real_collect = train_rl.collect
    monkeypatch.setattr(train_rl, "collect", lambda *args: (os.kill(os.getpid(), signal.SIGINT) if args[-1] == 1
                                                            else None) or real_collect(*args))
    with pytest.raises(SystemExit) as e:
        train_rl.train(tiny_config(half_right, tmp_path, steps=4))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert e.value.code == 130 and len(lines) == 2
    assert lines[0].endswith(" left") and not lines[1].endswith(" left")
    # The lines count steps as the saves do: the stop's save, after the second step, follows "step 2"
    assert [line.split(" |")[0] for line in lines] == ["step    1", "step    2"]
    assert f"saved {tmp_path}/checkpoint at step 2; continue with --resume" in out


def test_the_progress_line_says_the_time_left_in_its_two_largest_units():
    assert [runs.duration(s) for s in (0.4, 42, 59.6, 185, 3599.6, 7620, 3 * 86400 + 4 * 3600)] == \
        ["0s", "42s", "1m00s", "3m05s", "1h00m", "2h07m", "3d04h"]
    rec = {"step": 7, "reward_mean": 0.25, "accuracy": 0.5, "length_mean": 30.0, "length_min": 3, "length_max": 60,
           "kl": 0.001, "entropy": None, "clip_frac": 0.1, "value_loss": 0.2, "time_wall": 2.25}
    # log.jsonl's step 7 is the 8th step, the one whose save says "at step 8"
    assert runs.progress_line(rec) == ("step    8 | reward +0.250 | acc 0.50 | len  30.0 [3-60] | kl +0.0010 | "
                                       "ent - | clip 0.100 | vloss 0.200 | 2.2s")
    assert runs.progress_line(rec, 185).endswith("| 2.2s | 3m05s left")
    assert runs.progress_line(rec, 185, at_most=True).endswith("| 2.2s | at most 3m05s left")


def test_nan_loss_skips_steps_then_stops_keeping_last_checkpoint(half_right, tmp_path, monkeypatch, capsys):
    cfg = tiny_config(half_right, tmp_path, steps=6, save_every=1, max_bad_steps=2)
    real = train_rl.compute_advantages

    def poisoned(cfg_, batch):
        real(cfg_, batch)
        if batch_step[0] >= 2:
            batch.advantages = batch.advantages * float("nan")
        batch_step[0] += 1

    batch_step = [0]
    monkeypatch.setattr(train_rl, "compute_advantages", poisoned)
    with pytest.raises(SystemExit, match="2 steps in a row with NaN/inf; stopped. .* holds the weights after step 3, "
                                         "its last save"):
        train_rl.train(cfg)
    state = json.load(open(tmp_path / "checkpoint" / "state.json"))
    assert state["step"] == 3  # steps 0 and 1 trained, step 2 skipped its update and was saved; step 3 stopped
    # Only the actor's loss is NaN: its 2 optimiser steps are skipped, the critic's 2 applied.
    assert state["record"]["warning"] == "non-finite loss or gradient: skipped 2 of 4 optimiser steps"
    actor = GPT.from_pretrained(str(tmp_path / "checkpoint" / "actor"))
    assert all(torch.isfinite(p).all() for p in actor.parameters())
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert [r["step"] for r in log] == [0, 1, 2, 3] and ["warning" in r for r in log] == [False, False, True, True]
    # The terminal counts as the advice does: the third step warns, is saved, and is "step 3"
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert said == [f"warning: step {n}: non-finite loss or gradient: skipped 2 of 4 optimiser steps ({n - 2}/2 in a "
                    "row)" for n in (3, 4)]


@pytest.mark.parametrize("lr", [1e30, 1e8])
def test_a_diverged_update_is_never_saved(half_right, tmp_path, monkeypatch, lr):
    """A fuzzing helper's find: at an actor lr of 1e30 (or 1e8) a step's finite optimiser steps left finite weights
    whose logits were NaN; the run saved them, and its next step, and every --resume after, failed with "the
    model's logits for the prompt are NaN or inf ... load another checkpoint": no good checkpoint was left."""
    from test_reliability import tiny_run_flags

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        train_rl.main(tiny_run_flags(half_right, out, 4, "--actor-lr", str(lr)))
    assert str(e.value) == ("error: after step 1 the actor's logits are NaN or inf: its update diverged; stopped "
                            "without saving it. No checkpoint was saved yet: start again with --overwrite and a lower "
                            "--actor-lr/--critic-lr.")
    assert not (out / "checkpoint").exists()
    # Two good steps (saved), then the lr: the checkpoint of step 2 stays, and the advice names it
    real = train_rl.set_learning_rates

    def diverging_from_step_3(cfg, models, step, actor_start):
        lrs = real(cfg, models, step, actor_start)
        for group in models.actor_opt.param_groups if step >= 2 else []:
            group["lr"] = lr
        return lrs

    monkeypatch.setattr(train_rl, "set_learning_rates", diverging_from_step_3)
    with pytest.raises(SystemExit) as e:
        train_rl.main(tiny_run_flags(half_right, out, 4, "--overwrite"))
    ckpt = out / "checkpoint"
    assert str(e.value).startswith("error: after step 3 the actor's logits are NaN or inf: its update diverged; "
                                   f"stopped without saving it. {ckpt} holds the weights after step 2, its last save.")
    assert json.loads((ckpt / "state.json").read_text())["step"] == 2
    assert torch.isfinite(GPT.from_pretrained(str(ckpt / "actor"))(torch.tensor([[1, 2, 3]]))).all()
    # A step that samples from diverged weights (saved only every 4 steps here) names the divergence too
    with pytest.raises(SystemExit) as e:
        train_rl.main(tiny_run_flags(half_right, tmp_path / "every4", 4, "--save-every", "4"))
    assert str(e.value).startswith("error: step 4: the actor's logits are NaN or inf: an update diverged; stopped. "
                                   "No checkpoint was saved yet")


def test_a_diverged_critic_or_an_evaluation_between_saves_stops_the_run_too(half_right, tmp_path, monkeypatch):
    """A review's finds. A critic whose values went NaN was saved, and a new run from it, as the advice said,
    skipped every update without a word; a held-out evaluation between saves sampled diverged weights and gave
    "load another checkpoint"; a Ctrl-C after such a step logged it twice."""
    from test_reliability import tiny_run_flags

    def stopped(flags, out):
        with pytest.raises(SystemExit) as e:
            train_rl.main(tiny_run_flags(half_right, out, 4, *flags))
        assert not (out / "checkpoint").exists()
        return str(e.value)

    assert stopped(["--critic-lr", "1e30"], tmp_path / "critic").startswith(
        "error: after step 1 the critic's values are NaN or inf: its update diverged; stopped without saving it. "
        "No checkpoint was saved yet")
    held_out = ["--eval-every", "1", "--eval-data", str(half_right / "problems.jsonl"), "--eval-problems", "2",
                "--eval-samples", "1"]
    out = tmp_path / "eval"
    assert stopped(["--actor-lr", "1e30", "--save-every", "4", *held_out], out).startswith(
        "error: after step 1 the actor's logits are NaN or inf: its update diverged; stopped without saving it.")
    assert [json.loads(line)["step"] for line in open(out / "log.jsonl")] == [-1, 0]  # the step's record is kept
    real = runs.progress_line

    def line_then_ctrl_c(*args, **kwargs):  # Ctrl-C once the step is logged: the stop's save finds it diverged
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "progress_line", line_then_ctrl_c)
    out = tmp_path / "stop"
    assert "its update diverged; stopped without saving it" in stopped(["--actor-lr", "1e30", "--save-every", "4"], out)
    assert [json.loads(line)["step"] for line in open(out / "log.jsonl")] == [0]  # logged once


def test_a_model_with_nan_logits_at_the_start_is_named_as_such(half_right, tmp_path, capsys):
    """Before any update of the run, NaN logits come from the model it started from, not from a divergence."""
    from test_reliability import one_line_error, tiny_run_flags

    model = GPT.from_pretrained(str(half_right))
    with torch.no_grad():
        model.lm_head.weight.mul_(1e38)  # finite, but its logits overflow
    shutil.copytree(half_right, tmp_path / "huge")
    model.save(str(tmp_path / "huge"))
    flags = tiny_run_flags(half_right, tmp_path / "run", 2, "--init", str(tmp_path / "huge"), "--ref", str(half_right))
    assert "the model's logits for the prompt are NaN or inf: its weights are damaged or too large for their dtype; " \
        "load another checkpoint" in one_line_error(train_rl.main, flags, capsys)


def test_nan_stop_before_any_save_says_to_start_again(half_right, tmp_path, monkeypatch):
    cfg = tiny_config(half_right, tmp_path, steps=4, save_every=4, max_bad_steps=1)
    real = train_rl.compute_advantages

    def poisoned(cfg_, batch):
        real(cfg_, batch)
        batch.advantages = batch.advantages * float("nan")

    monkeypatch.setattr(train_rl, "compute_advantages", poisoned)
    with pytest.raises(SystemExit, match=r"1 step in a row with NaN/inf; stopped. No checkpoint was saved yet: start "
                                         r"again with --overwrite and a lower --actor-lr/--critic-lr\."):
        train_rl.train(cfg)
    assert not (tmp_path / "checkpoint").exists()


def test_nan_steps_that_are_not_in_a_row_do_not_stop_the_run(half_right, tmp_path, monkeypatch, capsys):
    # Steps 1 and 3 of 5 skip their update; --max-bad-steps 2 counts them in a row only, so the run finishes.
    cfg = tiny_config(half_right, tmp_path, steps=5, max_bad_steps=2)
    real, calls = train_rl.compute_advantages, [0]

    def poisoned(cfg_, batch):
        real(cfg_, batch)
        if calls[0] in (1, 3):
            batch.advantages = batch.advantages * float("nan")
        calls[0] += 1

    monkeypatch.setattr(train_rl, "compute_advantages", poisoned)
    assert train_rl.train(cfg)["step"] == 4
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert ["warning" in r for r in log] == [False, True, False, True, False]
    assert capsys.readouterr().out.count("(1/2 in a row)") == 2


def test_the_runs_seed_sets_the_critics_fresh_value_head(half_right, tmp_path, monkeypatch):
    # The value head is new weights, drawn once the run has seeded torch: seeds give different heads, a seed one head.
    heads, real = [], runs.load_models

    def loaded(*args):
        models, tok = real(*args)
        heads.append(models.critic.model.value_head.weight.detach().clone())
        raise KeyboardInterrupt  # the head is all this test needs

    monkeypatch.setattr(runs, "load_models", loaded)
    for seed in (1, 2, 1):
        with pytest.raises(KeyboardInterrupt):
            train_rl.train(tiny_config(half_right, tmp_path / f"run{len(heads)}", seed=seed))
    assert not torch.equal(heads[0], heads[1]) and torch.equal(heads[0], heads[2])


def test_nan_stop_names_the_step_its_checkpoint_holds_and_how_to_go_on(half_right, tmp_path, monkeypatch):
    """With saves every 4 steps the checkpoint is not the last finite update: steps 4 and 5 trained after the save
    of step 4. The advice names that step, and a new run from the checkpoint (--resume refuses a new --actor-lr)."""
    cfg = tiny_config(half_right, tmp_path / "run", steps=10, save_every=4, max_bad_steps=2)
    real, calls = train_rl.compute_advantages, [0]

    def poisoned(cfg_, batch):
        real(cfg_, batch)
        if calls[0] >= 6:
            batch.advantages = batch.advantages * float("nan")
        calls[0] += 1

    monkeypatch.setattr(train_rl, "compute_advantages", poisoned)
    with pytest.raises(SystemExit) as e:
        train_rl.train(cfg)
    ckpt = tmp_path / "run" / "checkpoint"
    assert json.load(open(ckpt / "state.json"))["step"] == 4
    assert "last finite update" not in str(e.value)
    assert f"{ckpt} holds the weights after step 4, its last save" in str(e.value)
    assert f"--init {ckpt}/actor --critic-init {ckpt}/critic --ref {half_right}" in str(e.value)
    with pytest.raises(InputError, match="drop --actor-lr"):  # why the advice is a new run, not --resume
        train_rl.resolve_config(["--resume", "--out", str(tmp_path / "run"), "--actor-lr", "1e-3"])


def test_help_gives_every_flags_default_and_what_each_preset_puts_instead(capsys):
    text = " ".join(train_rl.build_parser().format_help().split())  # undo argparse's line wrapping
    assert "actor peak learning rate (default: 5e-07; toy: 5e-05)" in text
    assert "critic peak learning rate (default: 9e-06; toy: 0.0002; toy phase 2: 5e-05)" in text
    assert "passes over each step's batch (default: 1; toy phase 2: 2)" in text
    assert "(default: --init)" in text and "(default: --init) (" not in text  # stated once
    assert "(default: None)" not in text
    with pytest.raises(SystemExit):
        train_rl.main(["--help"])  # as the command line prints it: the parse that finds the flags given
    assert " ".join(capsys.readouterr().out.split()) == text



def test_presets_pick_the_scale_and_flags_win(half_right, tmp_path):
    parse = lambda *flags: train_rl.resolve_config(
        ["--init", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(tmp_path), *flags])[0]
    toy = parse("--phase", "1")
    assert (toy.phase, toy.actor_lr, toy.prompts_per_step, toy.max_new_tokens) == (1, 5e-5, 8, 320)
    assert (toy.gae_lambda, parse("--phase", "1", "--gae-lambda", "0.95").gae_lambda) == (1.0, 0.95)
    toy2 = parse("--phase", "2")
    assert (toy2.gae_lambda, toy2.kl_coef, toy2.critic_lr, toy2.ppo_epochs) == (0.95, 0.02, 5e-5, 2)
    assert (toy2.steps, toy2.stop_length_ratio, toy2.min_lr_ratio) == (150, 0.55, 1.0)  # 150 steps at most
    paper = parse("--phase", "2", "--scale", "paper")  # what a 1.5B model gets by itself
    assert (paper.stop_length_ratio, paper.min_lr_ratio) == (0.0, 0.1)  # the paper's fixed steps and cosine
    assert (paper.actor_lr, paper.critic_lr, paper.max_new_tokens, paper.dtype) == (5e-7, 9e-6, 8192, "bf16")
    assert (paper.gae_lambda, paper.gamma, paper.kl_coef, paper.temperature) == (0.95, 1.0, 0.01, 0.6)
    assert (paper.steps, paper.prompts_per_step, paper.samples_per_prompt) == (150, 8, 8)
    for run in (toy, toy2, paper):  # the paper's reward, whatever the scale
        assert (run.reward_correct, run.reward_wrong, run.reward_no_answer) == (1.0, -0.5, -1.0)
    mine = parse("--phase", "2", "--gae-lambda", "1.0", "--actor-lr", "1e-4", "--whiten-advantages", "false")
    assert (mine.gae_lambda, mine.actor_lr, mine.whiten_advantages, mine.steps) == (1.0, 1e-4, False, 150)
    assert parse("--phase", "2", "--algo", "grpo").kl_estimator == "k3"  # GRPO puts KL in the loss
    with pytest.raises(InputError, match="use --kl-estimator k3"):
        parse("--algo", "grpo", "--kl-estimator", "k1")
    with pytest.raises(SystemExit):
        train_rl.build_parser().parse_args(["--loss-agg", "sum"])  # unknown values are refused by argparse


def test_critic_free_rules_follow_has_critic(half_right, tmp_path, monkeypatch, capsys):
    # An algorithm added beside GRPO gets the critic-free rules from common.has_critic alone; here "ppo" itself
    # is made critic-free: KL moves into the loss, one sample per prompt is refused, the critic's flags are noted.
    monkeypatch.setattr(train_rl, "has_critic", lambda algo: False)
    parse = lambda *flags: train_rl.resolve_config(
        ["--init", str(half_right), "--data", str(half_right / "problems.jsonl"), "--out", str(tmp_path), *flags])[0]
    assert parse("--phase", "2").kl_estimator == "k3"
    with pytest.raises(InputError, match="--algo ppo has no critic: .* needs --samples-per-prompt of 2 or more"):
        parse("--samples-per-prompt", "1")
    parse("--gae-lambda", "0.5")
    assert "note: --algo ppo has no critic and no GAE: --gae-lambda go unused" in capsys.readouterr().out


def test_actor_schedule_starts_when_the_actor_starts_training(half_right, tmp_path):
    # 6 steps, the first 2 critic-only: the actor's own 4-step schedule warms up over 2 of them (ratio 0.5).
    cfg = tiny_config(half_right, tmp_path, steps=6, critic_warmup_steps=2, warmup_ratio=0.5, min_lr_ratio=0.1,
                      actor_lr=1e-3, critic_lr=2e-3)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train_rl.train(cfg)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # Ctrl-C is the caller's again
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert [r["actor_trained"] for r in log] == [False, False, True, True, True, True]
    assert [r["entropy"] is None for r in log] == [True, True, False, False, False, False]  # not measured: None
    assert all(r["value_loss"] > 0 for r in log) and log[2]["entropy"] > 0
    # warm-up 1/2, 2/2, then cosine over 2 steps: 1.0, then 0.1 + 0.9 * 0.5 * (1 + cos(pi / 2)) = 0.55
    assert [r["actor_lr"] for r in log] == pytest.approx([0, 0, 5e-4, 1e-3, 1e-3, 5.5e-4])
    # The critic's schedule runs over all 6 steps: warm-up 3 steps, then cosine over 3.
    assert [r["critic_lr"] for r in log] == pytest.approx(
        [2e-3 * f for f in (1 / 3, 2 / 3, 1.0, 1.0, 0.1 + 0.9 * 0.75, 0.1 + 0.9 * 0.25)])


def test_warm_up_rounds_up_and_each_step_draws_its_own_minibatches(half_right, tmp_path, monkeypatch):
    """3% of 150 steps is 4.5: a warm-up of 5 steps. The minibatches are drawn from (seed, step): the same
    rows in the same minibatches at every step would be a bias the loss never shows."""
    cfg = train_rl.config(init=str(half_right), data="x", out=str(tmp_path), steps=150, warmup_ratio=0.03,
                          min_lr_ratio=1.0, actor_lr=1.0, critic_lr=2.0)
    opt = lambda: torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    models = SimpleNamespace(actor_opt=opt(), critic_opt=opt())
    actor = [train_rl.set_learning_rates(cfg, models, step, 0)["actor_lr"] for step in range(6)]
    assert actor == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert models.actor_opt.param_groups[0]["lr"] == 1.0 and models.critic_opt.param_groups[0]["lr"] == 2.0
    drawn, real = [], torch.randperm
    monkeypatch.setattr(torch, "randperm", lambda n, generator: drawn.append(real(n, generator=generator).tolist())
                        or torch.tensor(drawn[-1]))
    cfg = train_rl.config(**{**vars(cfg), "ppo_epochs": 1, "minibatches": 2})
    empty = SimpleNamespace(mask=torch.zeros(16, 1))
    for step in (0, 1, 0):
        train_rl.update(cfg, SimpleNamespace(critic=None, rollout=None, actor=SimpleNamespace(model=None)), empty,
                        step, train_actor=False)
    assert drawn[0] != drawn[1] and drawn[0] == drawn[2]


def test_each_pass_makes_exactly_minibatches_optimiser_steps(half_right, tmp_path):
    cfg = tiny_config(half_right, tmp_path, prompts_per_step=2, samples_per_prompt=3, minibatches=4, ppo_epochs=2)
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=0)
    train_rl.compute_advantages(cfg, batch)
    assert train_rl.update(cfg, models, batch, 0, train_actor=True)["skipped_updates"] == 0
    for opt in (models.actor_opt, models.critic_opt):  # 6 rows in 4 minibatches (2, 2, 1, 1), 2 passes
        assert {int(state["step"]) for state in opt.state.values()} == {8}


def test_micro_batches_by_rows_and_by_a_token_budget():
    lengths = torch.tensor([3.0, 5.0, 1.0, 3.0, 2.0])
    idx = torch.arange(5)
    sizes = lambda chunks: [c.tolist() for c in chunks]
    assert sizes(train_rl.micro_batches(idx, 2, lengths)) == [[1, 0], [3, 4], [2]]  # longest first, 2 rows each
    # A budget of 12 tokens with 2-token prompts: 5 + 2 = 7 fits once, 3 + 2 = 5 twice, 2 + 2 = 4 three times.
    assert sizes(train_rl.micro_batches(idx, 16, lengths, prompt_len=2, max_tokens=12)) == [[1], [0, 3], [4, 2]]
    assert sizes(train_rl.micro_batches(idx, 16, lengths, prompt_len=2, max_tokens=3)) == [[1], [0], [3], [4], [2]]


def test_gradients_do_not_depend_on_how_a_minibatch_is_split(half_right, tmp_path):
    cfg = tiny_config(half_right, tmp_path, samples_per_prompt=8, prompts_per_step=2)
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=0)
    train_rl.compute_advantages(cfg, batch)
    idx = torch.arange(batch.mask.size(0))
    grads = []
    for micro_batch, budget in [(16, 0), (1, 0), (5, 0), (16, 40), (16, 25)]:
        split = train_rl.config(**{**vars(cfg), "micro_batch": micro_batch, "micro_batch_tokens": budget})
        assert train_rl.actor_backward(split, models.actor, batch, idx, dict.fromkeys(train_rl.ACTOR_STATS, 0.0))
        grads.append([p.grad.clone() for p in models.actor.parameters()])
        models.actor_opt.zero_grad(set_to_none=True)
    assert len({len(train_rl.micro_batches(idx, m, batch.lengths, batch.prompt_len, b)) for m, b in
                [(16, 0), (1, 0), (5, 0), (16, 40), (16, 25)]}) >= 4  # really different splits
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)


def test_after_an_update_the_sampling_copy_follows_the_actor_and_the_reference_stays_put(half_right, tmp_path):
    """A bf16 run samples from a bf16 copy of the actor: it is refreshed after each update (a stale copy would
    sample the initial policy all run long), and the reference stays the initial policy (the KL is to it)."""
    cfg = tiny_config(half_right, tmp_path, dtype="bf16")
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    assert models.rollout is not models.actor.model
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=0)
    train_rl.compute_advantages(cfg, batch)
    before = models.rollout.tok_emb.weight.clone()
    assert train_rl.update(cfg, models, batch, 0, train_actor=True)["skipped_updates"] == 0
    fresh = dict(models.actor.model.inference_copy(torch.bfloat16).named_parameters())
    assert all(torch.equal(p, fresh[name]) for name, p in models.rollout.named_parameters())
    assert not torch.equal(models.rollout.tok_emb.weight, before)
    after, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=1)
    initial = GPT.from_pretrained(str(half_right)).eval()
    with train_rl.autocast(cfg):
        want = train_rl.forward_all(lambda sub: train_rl.response_logprobs(initial, sub, cfg.temperature)[0], cfg, after)
    assert torch.equal(after.logp_ref, want) and not torch.allclose(after.logp, after.logp_ref)


def test_each_step_draws_its_own_problems_and_samples(half_right, tmp_path, monkeypatch):
    """Step s of seed k trains on pick_problems(problems, n, k, s) and samples from the random stream "k/s"."""
    data = tmp_path / "four.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": str(i), "answer": str(i), "level": 1}) + "\n"
                            for i in range(4)))
    cfg = tiny_config(half_right, tmp_path, data=str(data), seed=7, samples_per_prompt=2)
    seeds, real = [], train_rl.generate
    monkeypatch.setattr(train_rl, "generate", lambda *args, **kw: (seeds.append(kw["seed"]), real(*args, **kw))[1])
    models, tok = runs.load_models(cfg, cfg.init, cfg.init)
    problems = read_problems(cfg.data)
    prompts = {p["id"]: tok.encode(prompt_text(p["problem"], tok)) for p in problems}
    batch, _ = train_rl.collect(cfg, models, tok, problems, prompts, step=3)
    assert seeds == ["7/3"]
    rows = [batch.input_ids[i, : batch.prompt_len][batch.attention_mask[i, : batch.prompt_len].bool()].tolist()
            for i in range(4)]
    assert rows == [prompts[q] for q in ("q2", "q2", "q1", "q1")]  # pick_problems(problems, 2, 7, 3); step 0: q0, q3


def test_a_step_of_more_prompts_than_problems_is_noted(half_right, tmp_path, capsys):
    data = tmp_path / "two.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": "1", "answer": "1", "level": 1}) + "\n"
                            for i in range(2)))
    train_rl.train(tiny_config(half_right, tmp_path / "a", data=str(data), prompts_per_step=3, steps=1))
    assert "note: --prompts-per-step 3 is more than the 2 training problems: each step takes some of them twice" \
        in capsys.readouterr().out
    train_rl.train(tiny_config(half_right, tmp_path / "b", data=str(data), prompts_per_step=2, steps=1))
    assert "note: --prompts-per-step" not in capsys.readouterr().out


def test_grpo_has_no_critic_warm_up_so_its_actor_trains_from_the_first_step(half_right, tmp_path):
    # The toy preset's critic_warmup_steps (5) is for a fresh value head; GRPO has none to warm up.
    train_rl.train(tiny_config(half_right, tmp_path, algo="grpo", kl_estimator="k3", critic_warmup_steps=2, steps=3))
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert [r["actor_trained"] for r in log] == [True] * 3 and log[0]["actor_lr"] > 0
