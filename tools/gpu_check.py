"""
The prepared GPU measurement of a PPO step: one command, a few minutes on one GPU.

    python tools/gpu_check.py --out runs/gpu_check.json                # R1-Distill-Qwen-1.5B's shape, random
    python tools/gpu_check.py --tiny --device cpu --lengths 16 --out x.json  # the same code path, in a minute (tested)
    python tools/gpu_check.py --lengths 512 --sampler compiled         # the same step with the compiled sampler

For each of --max-new-tokens 512 and 2048: two steps of `train_rl.py --phase 2 --scale paper` (8 prompts x 8
samples, bf16 autocast over fp32 master weights, the bf16 rollout copy sampled by the graph engine, gradient
checkpointing, micro-batches of at most 16k tokens, critic and fp32 reference), through train_rl.main. It
reports the second step's seconds per stage and the peak GPU memory of the run next to memory.py's estimate.
The model is random, so its responses run to the cap, but for the rare random end token (2,043 tokens on
average at 2,048 on an H200): the worst case for time and memory. The run folder's
checkpoint is not written (a 1.5B run's checkpoint with optimiser state is about 40 GB).
"""

import json
import os
import platform
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project's modules

import memory  # noqa: E402
import runs  # noqa: E402
import train_rl  # noqa: E402
from common import Parser, check_writable, cli, device, positive_int_list, repeated, write_json, write_jsonl  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from sample import ENGINES  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

R1_15B = dict(vocab_size=151936, n_layer=28, n_head=12, n_kv_head=2, n_embd=1536, n_inner=8960, max_seq_len=131072,
              norm="rmsnorm", norm_eps=1e-6, pos="rope", rope_theta=10000.0, mlp="swiglu", qkv_bias=True, bias=False,
              tie_embeddings=False)
TINY = {**R1_15B, "vocab_size": 512, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64, "n_inner": 128}


def track_stage_peaks(peaks):
    """Record the peak GPU memory of each stage of a PPO step (train_rl's functions are looked up at call
    time, so wrapping the module's names wraps what update() and run() call)."""
    def wrap(name):
        real = getattr(train_rl, name)

        def tracked(*args, **kwargs):
            torch.cuda.reset_peak_memory_stats()
            out = real(*args, **kwargs)
            peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated() / 2**30)
            return out

        setattr(train_rl, name, tracked)
        return real

    return {name: wrap(name) for name in ("collect", "actor_backward", "critic_backward", "optimizer_step")}


def ppo_steps(folder, device, max_new_tokens, tiny, sampler="auto"):
    """Two paper-preset PPO steps through train_rl.main; (the second step's log record, the run's config)."""
    write_jsonl([{"id": str(i), "problem": f"{i}+{i}", "answer": str(2 * i), "level": 1} for i in range(8)],
                os.path.join(folder, "p.jsonl"))
    run = os.path.join(folder, f"run{max_new_tokens}")
    flags = ["--phase", "2", "--scale", "paper", "--init", folder, "--data", os.path.join(folder, "p.jsonl"),
             "--out", run, "--steps", "2", "--max-new-tokens", str(max_new_tokens), "--device", device,
             "--eval-every", "0", "--save-every", "100", "--sampler", sampler]
    if tiny:  # the tiny model on a CPU: the same code path, small enough to be quick
        flags += ["--micro-batch-tokens", "64", "--sample-batch", "16"]
    real_save, real_check, peaks = runs.save_checkpoint, runs.check_disk, {}
    runs.save_checkpoint = runs.check_disk = lambda *args, **kwargs: None  # no checkpoint: 37 GiB for a 1.5B model
    reals = track_stage_peaks(peaks) if device.startswith("cuda") else {}
    try:
        train_rl.main(flags)
    finally:
        runs.save_checkpoint, runs.check_disk = real_save, real_check
        for name, fn in reals.items():
            setattr(train_rl, name, fn)
    with open(os.path.join(run, "log.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    with open(os.path.join(run, "config.json")) as f:
        return last, json.load(f), peaks


@cli(memory="lower --lengths")
def main(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", type=device, default="cuda", help="cuda (the point of this script), cuda:N or cpu "
                   "(with --tiny: a smoke test)")
    p.add_argument("--tiny", action="store_true", help="a tiny model instead of the 1.5B-shaped one (smoke test)")
    p.add_argument("--lengths", type=positive_int_list, default="512,2048",
                   help="the --max-new-tokens of each measured run")
    p.add_argument("--out", default="runs/gpu_check.json", help="JSON file for the numbers")
    p.add_argument("--sampler", default="auto", choices=ENGINES,
                   help="train_rl.py's --sampler (auto: the graph engine on a GPU); with compiled, the first of "
                   "the two steps pays the compilation and the second, the one reported, does not")
    args = p.parse_args(argv)
    if repeated(args.lengths) is not None:  # each length's run has its own folder, run<N>
        p.error(f"--lengths {','.join(map(str, args.lengths))} repeats a length; give each once")
    cuda = args.device.startswith("cuda")  # --device has checked that a GPU is there
    if not cuda and not args.tiny:  # 1.8B parameters with AdamW: more memory than a CPU machine has, for hours
        p.error("the 1.5B-shaped step needs a GPU; on a CPU add --tiny (the same code path on a tiny model)")
    check_writable(args.out)  # before minutes of measuring, not after
    cfg = GPTConfig(**(TINY if args.tiny else R1_15B))
    result = {"device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
              "torch": torch.__version__, "config": "tiny" if args.tiny else "R1-Distill-Qwen-1.5B shape",
              "sampler": args.sampler, "runs": {}}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        with torch.device(args.device):  # random init is quick on the GPU
            model = GPT(cfg).to(dtype=torch.bfloat16)  # saved in bf16, as real checkpoints are; loaded as fp32
        result["params"] = model.num_params()
        model.save(folder)
        Tokenizer.byte_level().save(folder)
        del model
        print(f"random {result['params'] / 1e9:.2f}B-parameter model written in {time.perf_counter() - t0:.0f} s",
              flush=True)
        for n in args.lengths:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            rec, run_cfg, peaks = ppo_steps(folder, args.device, n, args.tiny, args.sampler)
            prompt_len = len(Tokenizer.byte_level().encode("Q: 7+7\nA: "))
            est = memory.estimate(cfg, prompt_len=prompt_len, max_new_tokens=n, sample_batch=run_cfg["sample_batch"],
                                  micro_batch=run_cfg["micro_batch"], bf16=True, grad_checkpointing=True,
                                  micro_batch_tokens=run_cfg["micro_batch_tokens"])
            run = {"step_seconds": {k.removeprefix("time_"): v for k, v in rec.items() if k.startswith("time_")},
                   "response_length_mean": rec["length_mean"], "memory_estimate_gib": est["total"] / 2**30,
                   # the bf16 sampler against the trainer's fp32 logits (random weights: logits near 0, smaller gaps)
                   "sampler_logp_gap": rec["sampler_logp_gap"], "sampler_logp_gap_max": rec["sampler_logp_gap_max"],
                   "memory_estimate_items_gib": {k: v / 2**30 for k, v in est.items()}}
            if cuda:
                # each stage resets the peak counter, so the run's peak is the largest of the stages' peaks
                run["peak_memory_gib"] = max([torch.cuda.max_memory_allocated() / 2**30, *peaks.values()])
                run["peak_over_estimate"] = run["peak_memory_gib"] / run["memory_estimate_gib"]
                run["peak_memory_gib_by_stage"] = peaks
            result["runs"][str(n)] = run
            print(f"{n} new tokens: " + json.dumps(run), flush=True)
            write_json(result, args.out)  # after each run, so a cut-off session keeps what it measured
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
