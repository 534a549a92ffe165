"""
The prepared GPU measurement: one short script, run once on a lent GPU.

    python gpu_check.py --out runs/gpu_check.json          # random Qwen2-0.5B-sized model, bf16, ~3 minutes
    python gpu_check.py --tiny --device cpu --out x.json   # the same code path in seconds (the test uses it)

1. decode tokens/s of sample.generate at batch 1, 16 and 64 (256 new tokens, no EOS) with bf16 weights;
2. two PPO steps of train_rl.py (the paper's recipe: bf16 autocast, gradient checkpointing, fp32 master
   weights, critic and bf16 reference) on 8 prompts x 8 samples, reporting seconds per stage of the second
   step and the peak GPU memory, next to memory.py's estimate for the same run.
The model is random (Qwen2-0.5B shape: 24 layers, width 896, 14 heads, 2 KV heads, vocab 151936), so nearly
all its responses run to --max-new-tokens: the worst case for time and memory.
"""

import argparse
import sys
import json
import os
import platform
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project's modules

from common import write_jsonl
import memory
import train_rl
from model import GPT, GPTConfig
from sample import generate
from tokenizer import Tokenizer

QWEN2_05B = dict(vocab_size=151936, n_layer=24, n_head=14, n_kv_head=2, n_embd=896, n_inner=4864,
                 max_seq_len=32768, norm="rmsnorm", norm_eps=1e-6, pos="rope", rope_theta=1e6, mlp="swiglu",
                 qkv_bias=True, bias=False, tie_embeddings=True)
TINY = {**QWEN2_05B, "vocab_size": 512, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64, "n_inner": 128}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decode_speed(model, device, batch, new_tokens):
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8]] * batch
    generate(model, prompts[:1], 4, temperature=1.0, eos_id=-1, seed=0)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    generate(model, prompts, new_tokens, temperature=1.0, eos_id=-1, seed=0, batch_size=batch)
    sync(device)
    return batch * new_tokens / (time.perf_counter() - t0)


def ppo_steps(folder, device, max_new_tokens):
    """Two PPO steps through train_rl.main (the CLI path); returns the second step's log record."""
    write_jsonl([{"id": str(i), "problem": f"{i}+{i}", "answer": str(2 * i), "level": 1} for i in range(8)],
                os.path.join(folder, "p.jsonl"))
    run = os.path.join(folder, "run")
    flags = ["--phase", "2", "--init", folder, "--data", os.path.join(folder, "p.jsonl"), "--out", run,
             "--steps", "2", "--max-new-tokens", str(max_new_tokens), "--dtype", "bf16", "--device", device,
             "--grad-checkpointing", "true", "--micro-batch", "4", "--sample-batch", "64", "--critic-warmup-steps", "0",
             "--save-every", "100", "--actor-lr", "5e-7", "--critic-lr", "9e-6"]
    train_rl.main(flags)
    with open(os.path.join(run, "log.jsonl")) as f:
        return [json.loads(line) for line in f][-1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the point of this script) or cpu")
    p.add_argument("--tiny", action="store_true", help="a tiny model instead of the 0.5B one (smoke test)")
    p.add_argument("--new-tokens", type=int, default=256, help="decode length for the tokens/s measurement")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="response cut-off in the PPO steps")
    p.add_argument("--out", default="runs/gpu_check.json", help="JSON file for the numbers")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; run with --device cpu --tiny for a smoke test")
    cfg = GPTConfig(**(TINY if args.tiny else QWEN2_05B))
    result = {"device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
              "torch": torch.__version__, "config": "tiny" if args.tiny else "qwen2-0.5b-shape", "decode_tokens_per_s": {}}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        model = GPT(cfg).to(device=args.device, dtype=torch.bfloat16).eval()
        result["params"] = model.num_params()
        for batch in (1, 16, 64):
            result["decode_tokens_per_s"][str(batch)] = decode_speed(model, args.device, batch, args.new_tokens)
            print(f"decode batch {batch:3d}: {result['decode_tokens_per_s'][str(batch)]:9.0f} tokens/s", flush=True)
        model.float().save(folder)  # train_rl keeps fp32 master weights
        Tokenizer.byte_level().save(folder)
        del model
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        rec = ppo_steps(folder, args.device, args.max_new_tokens)
        result["ppo_step_seconds"] = {k.removeprefix("time_"): rec[k] for k in rec if k.startswith("time_")}
        result["ppo_response_length_mean"] = rec["length_mean"]
        prompt_len = len(Tokenizer.byte_level().encode("Q: 7+7\nA: "))
        est = memory.estimate(cfg, prompt_len=prompt_len, max_new_tokens=args.max_new_tokens, sample_batch=64,
                              micro_batch=4, bf16=True, grad_checkpointing=True)
        result["memory_estimate_gib"] = est["total"] / 2**30
        if cuda:
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
