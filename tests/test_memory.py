import json
import os
import subprocess
import sys

import pytest
import torch

import memory
from model import GPT, GPTConfig
from tokenizer import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs two PPO steps in a fresh process and prints its peak resident memory above the baseline taken
# after imports (VmHWM is per address space, so pytest's own memory does not leak in).
PEAK_SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
import train_rl
from model import GPT, GPTConfig
def mb(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field + ":")).split()[1]) * 1024
with torch.device("meta"):
    GPT(GPTConfig(vocab_size=8, n_layer=1, n_head=1, n_embd=8, n_inner=8))  # torch's lazy init
torch.zeros(1).sum()
base = mb("VmRSS")
train_rl.main(sys.argv[2:])
print("PEAK", mb("VmHWM") - base)
"""


def make_model(path):
    tok = Tokenizer.byte_level()
    cfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=4, n_head=8, n_kv_head=2, n_embd=512, n_inner=1536,
                    max_seq_len=128, norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False)
    torch.manual_seed(0)
    GPT(cfg).save(str(path))
    tok.save(str(path))
    with open(path / "p.jsonl", "w") as f:
        f.write(json.dumps({"problem": "1+1", "answer": "2", "level": 1}) + "\n")
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True])
def test_estimate_within_25_percent_of_measured_peak(tmp_path, checkpointing):
    cfg = make_model(tmp_path)
    flags = ["--phase", "2", "--init", str(tmp_path), "--data", str(tmp_path / "p.jsonl"), "--out",
             str(tmp_path / "run"), "--steps", "2", "--prompts-per-step", "2", "--samples-per-prompt", "4",
             "--max-new-tokens", "48", "--micro-batch", "8", "--minibatches", "1", "--critic-warmup-steps", "0",
             "--grad-checkpointing", str(checkpointing).lower(), "--save-every", "100"]
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, REPO, *flags], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = int(out.stdout.split("PEAK")[-1])
    prompt_len = len(Tokenizer.byte_level().encode("Q: 1+1\nA: "))
    est = memory.estimate(cfg, prompt_len=prompt_len, max_new_tokens=48, sample_batch=8, micro_batch=8,
                          bf16=False, grad_checkpointing=checkpointing)["total"]
    print(f"estimate {est / 2**20:.0f} MiB, measured {measured / 2**20:.0f} MiB")
    assert abs(est - measured) / measured < 0.25, (est / 2**20, measured / 2**20)


def test_estimate_by_hand_for_a_known_config():
    cfg = GPTConfig(vocab_size=100, n_layer=2, n_head=2, n_kv_head=1, n_embd=16, n_inner=32, max_seq_len=64,
                    norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False)
    n = memory.param_count(cfg)
    # embeddings 100*16, per layer q 16*16+16, k,v 16*8+8 each, o 16*16, mlp 3*16*32, 2 norms; final norm; head
    per_layer = (256 + 16) + 2 * (128 + 8) + 256 + 3 * 512 + 2 * 16
    assert n == 1600 + 2 * per_layer + 16 + 1600
    assert memory.critic_param_count(cfg) == n - 1600 + 17  # no LM head, a 16 -> 1 head with bias
    est = memory.estimate(cfg, prompt_len=10, max_new_tokens=22, sample_batch=4, micro_batch=2, bf16=True,
                          grad_checkpointing=False)
    assert est["actor weights+grads+adam"] == 16 * n
    assert est["reference weights"] == 4 * n  # fp32 even in bf16 runs: the actor's numerics exactly
    assert est["rollout copy"] == 2 * n  # the bf16 copy sampling runs on
    sharded = memory.estimate(cfg, prompt_len=10, max_new_tokens=22, sample_batch=3, micro_batch=2, bf16=True,
                              grad_checkpointing=False, micro_batch_tokens=40, gpus=4)
    assert sharded["actor weights+grads+adam"] == 16 * n // 4 and sharded["reference weights"] == 4 * n // 4
    assert sharded["rollout copy"] == 2 * n  # whole on every GPU
    assert sharded["sampling: kv cache + logits"] == est["sampling: kv cache + logits"]  # 3 rows: a bucket of 4
    # fp32 weights gathered, and whole gradients: embeddings, head and final norm, and two blocks
    assert sharded["training: gathered weights + grads (FSDP)"] == 8 * (1600 + 16 + 1600 + 2 * per_layer)
    assert "training: gathered weights + grads (FSDP)" not in est
    # 10 + 22 = 32 tokens: the static cache has 32 + 16 columns (a multiple of 16, and 16 more)
    assert est["sampling: kv cache + logits"] == 2 * 2 * 4 * 1 * 8 * 48 * 2 + 4 * 4 * 100 * 4
    # 2 rows x 32 tokens, every layer's values kept (no checkpointing): 8*16 + 2*8 (one kv head of 8) + 5*32
    # = 304 per token and layer in bf16 plus RMSNorm's two fp32 copies of 16; the head's logits, log-softmax
    # and gradient in fp32; the embeddings' output and the final norm's in fp32
    tokens = 2 * 32
    assert est["training: activations (one micro-batch)"] == (2 * tokens * (304 * 2 + 2 * 16 * 4)
                                                              + tokens * 100 * 4 * 3 + tokens * 16 * 4 * 2) == 179200


def test_dry_run_of_the_paper_preset_counts_the_held_out_prompts_and_rows(tmp_path, capsys):
    """The README's dry-run: the paper preset evaluates every 25 steps, with or without --eval-data (it
    crashed without). The held-out evaluation samples with the same sample batch: its longer prompt and its
    rows (16 problems x 4 samples, against the step's 2 x 2) widen the KV cache."""
    import train_rl
    make_model(tmp_path)
    flags = ["--phase", "2", "--scale", "paper", "--init", str(tmp_path), "--data", str(tmp_path / "p.jsonl"),
             "--prompts-per-step", "2", "--samples-per-prompt", "2", "--max-new-tokens", "32", "--device", "cpu",
             "--out", str(tmp_path / "run"), "--dry-run"]
    train_rl.main(flags)
    alone = capsys.readouterr().out
    assert "longest prompt 10 + 32 new tokens, sample batch 4," in alone  # "Q: 1+1\nA: ", 2 x 2 rows
    with open(tmp_path / "held.jsonl", "w") as f:
        f.writelines(json.dumps({"problem": "9" * 30, "answer": "9", "level": 1}) + "\n" for _ in range(16))
    train_rl.main(flags + ["--eval-data", str(tmp_path / "held.jsonl"), "--eval-problems", "16", "--eval-samples", "4"])
    assert "longest prompt 37 + 32 new tokens, sample batch 32," in capsys.readouterr().out  # 64 rows, 32 at once


def test_each_model_is_sharded_as_soon_as_it_is_loaded(half_right, tmp_path, monkeypatch):
    """Under torchrun, loading all three fp32 models before sharding any held 12N bytes per GPU (93 GiB for a
    7B model, against a 53 GiB estimate on 8 GPUs). Now one whole model at a time, and the rollout copy is
    made from the shards; the estimate counts that peak."""
    import runs
    import train_rl
    from model import GPT

    events, real_load, real_shard, real_copy = [], GPT.from_pretrained, runs.shard, GPT.inference_copy
    monkeypatch.setattr(GPT, "from_pretrained", lambda path, **kw: events.append("load") or real_load(path, **kw))
    monkeypatch.setattr(runs, "shard", lambda model: events.append("shard") or real_shard(model))
    monkeypatch.setattr(GPT, "inference_copy", lambda self, *a, **k: events.append("copy") or real_copy(self, *a, **k))
    cfg = train_rl.config(init=str(half_right), data=str(half_right / "problems.jsonl"), out=str(tmp_path), dtype="bf16")
    runs.load_models(cfg, cfg.init, cfg.init)
    assert events == ["load", "shard"] * 3 + ["copy"]
    cfg = GPTConfig(vocab_size=100, n_layer=2, n_head=2, n_embd=16, n_inner=32)
    n, n_critic = memory.param_count(cfg), memory.critic_param_count(cfg)  # tied head: the critic adds a scalar head
    kw = dict(prompt_len=4, max_new_tokens=4, sample_batch=1, micro_batch=1, bf16=True, grad_checkpointing=True)
    assert memory.estimate(cfg, gpus=4, **kw)["loading: one whole model beside shards"] == 4 * n_critic + 8 * n // 4
    assert "loading: one whole model beside shards" not in memory.estimate(cfg, gpus=1, **kw)
    deep = GPTConfig(vocab_size=100, n_layer=40, n_head=2, n_embd=16, n_inner=32)  # FSDP gathers 2 blocks of 40
    huge_gpus = memory.estimate(deep, gpus=1000, **kw)
    assert huge_gpus["total"] == huge_gpus["loading: one whole model beside shards"]  # the peak, once shards are tiny


def test_checkpointed_layer_inputs_are_counted_in_fp32_under_bf16_autocast():
    """They were counted at 2 bytes a value in bf16 runs, but the residual stream stays fp32 under autocast
    over fp32 weights: 1.3 GiB uncounted for R1-Distill-Qwen-1.5B at 512 and 2048 new tokens."""
    cfg = GPTConfig(vocab_size=100, n_layer=2, n_head=2, n_kv_head=1, n_embd=16, n_inner=32, max_seq_len=64,
                    norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False)
    model, dtypes = GPT(cfg), []
    model.blocks[1].register_forward_pre_hook(lambda module, args: dtypes.append(args[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.zeros(1, 4, dtype=torch.long))
    assert dtypes == [torch.float32]
    est = memory.estimate(cfg, prompt_len=10, max_new_tokens=22, sample_batch=4, micro_batch=2, bf16=True,
                          grad_checkpointing=True)["training: activations (one micro-batch)"]
    tokens, d = 2 * 32, 16
    # per token and layer (module docstring) 8 d + 2 kv_dim + 5 d_mlp = 8*16 + 2*8 + 5*32 = 304 values, in bf16,
    # and RMSNorm's two fp32 copies
    one_layer = tokens * (304 * 2 + 2 * d * 4)
    assert est == 2 * tokens * d * 4 + one_layer + tokens * 100 * 4 * 3 + tokens * d * 4 * 2


# The config of test_estimate_by_hand_for_a_known_config: N = 1600 + 2 * 2368 + 16 + 1600 = 7952 parameters, its
# critic NC = N - 1600 + 17 = 6369; 10 + 22 tokens a row, micro-batches of 2 rows: 64 tokens.
HAND = GPTConfig(vocab_size=100, n_layer=2, n_head=2, n_kv_head=1, n_embd=16, n_inner=32, max_seq_len=64,
                 norm="rmsnorm", pos="rope", mlp="swiglu", bias=False, tie_embeddings=False)
HAND_RUN = dict(prompt_len=10, max_new_tokens=22, sample_batch=4, micro_batch=2)
N, NC = 7952, 6369


def test_the_rest_of_the_estimate_by_hand():
    """The items the first hand test leaves out, each from the module docstring's formula: the critic, the total,
    fp32 activations, a token budget, a GELU MLP, two fp32 GPUs, the head's cap of 2^24 logits a chunk."""
    assert memory.layer_activation_values(GPTConfig(**{**HAND.__dict__, "mlp": "gelu"})) == 8 * 16 + 2 * 8 + 3 * 32
    est = memory.estimate(HAND, bf16=True, grad_checkpointing=False, **HAND_RUN)
    assert est["critic weights+grads+adam"] == 16 * NC == 101904
    # actor 16N + critic 16NC + reference 4N + bf16 rollout copy 2N + max(sampling 18688, training 179200)
    assert est["total"] == 16 * N + 16 * NC + 4 * N + 2 * N + 179200 == 456048
    fp32 = memory.estimate(HAND, bf16=False, grad_checkpointing=False, **HAND_RUN)
    assert fp32["training: activations (one micro-batch)"] == 2 * 64 * 304 * 4 + 64 * 100 * 12 + 64 * 16 * 8 == 240640
    budget = memory.estimate(HAND, bf16=True, grad_checkpointing=False, micro_batch_tokens=40, **HAND_RUN)
    assert budget["training: activations (one micro-batch)"] == 2 * 40 * (304 * 2 + 128) + 40 * 100 * 12 + 40 * 128
    two = memory.estimate(HAND, bf16=False, grad_checkpointing=False, gpus=2, **HAND_RUN)
    assert two["rollout copy"] == 4 * N  # an fp32 copy, whole on each GPU
    assert two["training: gathered weights + grads (FSDP)"] == 8 * N  # 2 layers: both blocks are gathered
    big = GPTConfig(**{**HAND.__dict__, "vocab_size": 50000, "max_seq_len": 4096})  # 2048 x 50000 logits > 2^24
    acts = memory.estimate(big, prompt_len=1000, max_new_tokens=1048, sample_batch=4, micro_batch=1, bf16=True,
                           grad_checkpointing=True)["training: activations (one micro-batch)"]
    assert acts == 2 * 2048 * 16 * 4 + 2048 * (304 * 2 + 128) + 2**24 * 12 + 2048 * 16 * 8 == 203358208
    assert (memory.checkpoint_bytes(HAND), memory.checkpoint_bytes(HAND, critic=False)) == (12 * (N + NC), 12 * N)


def test_the_headroom_is_ten_percent_of_gib():
    # 1.1e9 bytes against 1.05 GiB = 1.127e9 (fits) and 1 GiB = 1.074e9 (does not)
    assert "fits 1.05 GiB with 10% headroom: yes" in memory.report({"total": 10**9}, 1.05)
    assert "fits 1 GiB with 10% headroom: NO" in memory.report({"total": 10**9}, 1.0)


def test_dry_run_passes_the_runs_settings_to_the_estimate(tmp_path, monkeypatch, capsys):
    import train_rl
    tok = Tokenizer.byte_level()
    GPT(GPTConfig(**{**HAND.__dict__, "vocab_size": tok.vocab_size})).save(str(tmp_path))
    tok.save(str(tmp_path))
    (tmp_path / "p.jsonl").write_text(json.dumps({"problem": "1+1", "answer": "2", "level": 1}) + "\n")
    seen, real = {}, memory.estimate
    monkeypatch.setattr(memory, "estimate", lambda cfg, **kw: seen.update(kw) or real(cfg, **kw))
    monkeypatch.setattr(memory, "GIB", 1)  # the disk line in bytes: a tiny model is 0.00 GiB
    monkeypatch.setattr(memory, "free_bytes", lambda path: 1000)  # less than two checkpoints
    train_rl.main(["--phase", "2", "--init", str(tmp_path), "--data", str(tmp_path / "p.jsonl"), "--out",
                   str(tmp_path / "run"), "--algo", "grpo", "--dtype", "fp32", "--grad-checkpointing", "true",
                   "--micro-batch-tokens", "100", "--prompts-per-step", "2", "--samples-per-prompt", "2",
                   "--max-new-tokens", "8", "--steps", "4", "--keep-every", "2", "--save-every", "2",
                   "--device", "cpu", "--dry-run", "--gpus", "3"])
    assert seen["sample_batch"] == 2  # 4 rows over 3 GPUs: 2 on the first
    assert (seen["gpus"], seen["bf16"], seen["grad_checkpointing"], seen["critic"], seen["micro_batch_tokens"]) == \
        (3, False, True, False, 100)
    n = sum(p.numel() for p in GPT.from_pretrained(str(tmp_path)).parameters())
    ckpt, kept = 12 * n, 2 * 4 * n  # grpo: the actor alone; two kept fp32 actors (steps 2 and 4)
    out = capsys.readouterr().out
    assert f"checkpoint on disk: {ckpt:.2f} GiB" in out
    assert f"so a run needs {2 * ckpt + kept:.2f} GiB free at --out for two checkpoints and 2 kept actors (--keep-every) (1000.00 " \
           "GiB free now: NOT enough, so the run would refuse to start; free some space or pick another --out)" in out


def test_dry_run_counts_the_checkpoint_an_overwrite_replaces_as_the_run_does(tmp_path, monkeypatch, capsys):
    """runs.check_disk lets an --overwrite run start with room for one checkpoint beside the earlier run's (deleted at
    the first save); the dry run must not say that run would refuse to start."""
    import runs
    import train_rl
    run = ["--phase", "2", "--init", "checkpoints/toy-phase1", "--data", "checkpoints/toy-phase1/phase2_set.jsonl",
           "--out", str(tmp_path / "run"), "--overwrite", "--steps", "1", "--critic-warmup-steps", "0",
           "--prompts-per-step", "2", "--samples-per-prompt", "2", "--max-new-tokens", "16", "--device", "cpu"]
    train_rl.main(run)  # the earlier run, its checkpoint in --out
    there = runs.folder_bytes(str(tmp_path / "run" / "checkpoint"))
    monkeypatch.setattr(memory, "free_bytes", lambda path: int(1.5 * there))  # one more checkpoint fits, not two
    capsys.readouterr()
    train_rl.main(run + ["--dry-run"])
    assert "NOT enough" not in capsys.readouterr().out
    train_rl.main(run)  # and the run indeed starts and ends
    assert "done: the trained model is" in capsys.readouterr().out
