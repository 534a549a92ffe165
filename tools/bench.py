"""
CPU throughput of our model and sampler against Hugging Face `transformers` on the same weights.

    python bench.py                      # both measurements, GPT-2-small-sized random model, fp32
    python bench.py --what sample --threads 2 --repeats 5
    python bench.py --quick              # tiny sizes, seconds: the smoke test uses this

Why a comparison and not absolute numbers: CPU speed varies from machine to machine (and another process
may share the cores), so the useful number is the ratio ours / transformers measured in the same process,
interleaved repeat by repeat, reported as medians. Both sides run the same random GPT-2 weights: the
transformers model is built with a fixed seed, saved with `save_pretrained`, and ours is loaded from that
folder with `GPT.from_pretrained`; the largest logit difference is reported as a check of that.

- model: prefill tokens/s (one forward pass) and single-token decode tokens/s with 512 cached tokens.
- sample: full sampling (temperature 1, no filtering, no EOS so every row makes exactly the asked number
  of tokens) at several batch sizes; tokens/s = batch * new tokens / seconds. Plus ours alone on the toy
  model (`GPTConfig()` defaults), the size that phase-1 PPO actually samples on the CPU.
"""

import argparse
import sys
import inspect
import os
import statistics
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project's modules

from common import write_json
from model import GPT, GPTConfig
from sample import generate

PRESETS = {  # --quick swaps in the tiny column; flags given on the command line override either
    "full": dict(gpt2=dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024),
                 prefill=[(1, 512), (8, 128)], context=512, decode_steps=32, batches=[1, 16, 64],
                 prompt_len=16, new_tokens=256, toy_batch=64, repeats=3),
    "quick": dict(gpt2=dict(n_layer=2, n_head=2, n_embd=64, vocab_size=300, n_positions=128),
                  prefill=[(1, 32), (2, 16)], context=32, decode_steps=4, batches=[1, 4],
                  prompt_len=4, new_tokens=8, toy_batch=4, repeats=1),
}
GOALS = {"prefill": 1.0, "decode": 1.0, "sample_b1": 1.0, "sample_b64": 1.5}  # ratio ours/transformers


def import_transformers():
    """transformers is a bench/test-only oracle, so it is imported here and only when needed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network
    try:
        import transformers
    except ImportError:
        raise SystemExit("error: bench.py needs transformers; run `pip install -r requirements-dev.txt`")
    return transformers


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def gpt2_pair(sizes, seed=0):
    """(ours, transformers) GPT-2 models sharing random weights, both in eval mode, fp32.

    bos/eos are unset so that `generate` on the transformers side never stops early.
    """
    transformers = import_transformers()
    torch.manual_seed(seed)
    config = transformers.GPT2Config(**sizes, bos_token_id=None, eos_token_id=None)
    theirs = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        theirs.save_pretrained(tmp)
        ours = GPT.from_pretrained(tmp).eval()
    return ours, theirs


@torch.no_grad()
def max_logit_diff(ours, theirs, length=16):
    """Largest |logit difference| on one random sequence: proves both sides hold the same weights."""
    idx = torch.randint(0, ours.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(1))
    return (ours(idx) - theirs(idx).logits).abs().max().item()


def time_pair(run_ours, run_theirs, repeats, warmup=True):
    """Median seconds of each callable, alternating ours/theirs so background load hits both alike.

    A callable may return a float, its own elapsed seconds (to leave set-up such as a prefill out of the
    timing); otherwise the whole call is timed. warmup: one untimed call each first (first calls pay for
    allocations and kernel set-up); run_theirs=None times ours alone.
    """
    def once(fn):
        t0 = time.perf_counter()
        inner = fn()
        return inner if isinstance(inner, float) else time.perf_counter() - t0

    runs = [r for r in (run_ours, run_theirs) if r is not None]
    if warmup:
        for fn in runs:
            once(fn)
    times = [[once(fn) for fn in runs] for _ in range(repeats)]
    return [statistics.median(col) for col in zip(*times)] + [None] * (2 - len(runs))


def row(name, tokens, secs, goal=None):
    """One result: tokens/s of each side (from median seconds) and the ratio ours/transformers."""
    ours = tokens / secs[0]
    theirs = tokens / secs[1] if secs[1] is not None else None
    ratio = ours / theirs if theirs is not None else None
    return name, dict(ours=ours, transformers=theirs, ratio=ratio, goal=goal)


@torch.no_grad()
def bench_prefill(ours, theirs, batch, length, repeats):
    idx = torch.randint(0, ours.config.vocab_size, (batch, length))
    secs = time_pair(lambda: ours(idx), lambda: theirs(idx), repeats)
    return row(f"prefill {batch}x{length}", batch * length, secs, GOALS["prefill"])


def hf_cached_step(theirs, idx, past):
    """One transformers forward that extends the KV cache `past` and returns it. transformers 5 renamed
    `past_key_values` to `cache` (the old name warns); older versions only know `past_key_values`."""
    if "cache" in inspect.signature(theirs.forward).parameters:
        return theirs(idx, cache=past, use_cache=True).cache
    return theirs(idx, past_key_values=past, use_cache=True).past_key_values


@torch.no_grad()
def bench_decode(ours, theirs, context, steps, repeats):
    """Batch-1 single-token steps after `context` cached tokens; the prefill itself is not timed."""
    idx = torch.randint(0, ours.config.vocab_size, (1, context))
    tok = torch.randint(0, ours.config.vocab_size, (1, 1))

    def run_ours():
        cache = ours.new_cache(1, context + steps)  # our cache advances one column per call
        ours(idx, cache=cache, last_only=True)
        t0 = time.perf_counter()
        for _ in range(steps):
            ours(tok, cache=cache)
        return time.perf_counter() - t0

    def run_theirs():
        past = hf_cached_step(theirs, idx, None)
        t0 = time.perf_counter()
        for _ in range(steps):
            past = hf_cached_step(theirs, tok, past)
        return time.perf_counter() - t0

    secs = time_pair(run_ours, run_theirs, repeats)
    return row(f"decode 1 @ {context} ctx", steps, secs, GOALS["decode"])


def bench_sample(ours, theirs, batch, prompt_len, new_tokens, repeats, name=None):
    """Full sampling of exactly `new_tokens` per row (no EOS can be drawn); theirs=None times ours alone."""
    vocab = ours.config.vocab_size
    ids = torch.randint(0, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(2))
    prompts = ids.tolist()

    def run_ours(n=new_tokens):
        generate(ours, prompts, n, temperature=1.0, eos_id=-1, seed=0, batch_size=batch)

    @torch.no_grad()
    def run_theirs(n=new_tokens):
        out = theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                              top_k=0, top_p=1.0, max_new_tokens=n, min_new_tokens=n, pad_token_id=0,
                              eos_token_id=None)
        assert out.shape == (batch, prompt_len + n), out.shape

    run_ours(2)  # a short warm-up instead of a full untimed run: these runs take minutes on a CPU
    if theirs is not None:
        run_theirs(2)
    secs = time_pair(run_ours, run_theirs if theirs is not None else None, repeats, warmup=False)
    goal = GOALS.get(f"sample_b{batch}") if theirs is not None else None
    return row(name or f"sample b{batch}", batch * new_tokens, secs, goal)


def run_benchmarks(what, cfg):
    """All requested results as {name: {ours, transformers, ratio, goal}}, plus the logit check."""
    results, extra = {}, {}
    ours, theirs = gpt2_pair(cfg["gpt2"])
    extra["max_abs_logit_diff"] = max_logit_diff(ours, theirs)
    print(f"same weights: max |logit diff| ours vs transformers = {extra['max_abs_logit_diff']:.2e}")
    todo = []
    if what in ("model", "all"):
        todo += [lambda b=b, t=t: bench_prefill(ours, theirs, b, t, cfg["repeats"]) for b, t in cfg["prefill"]]
        todo.append(lambda: bench_decode(ours, theirs, cfg["context"], cfg["decode_steps"], cfg["repeats"]))
    if what in ("sample", "all"):
        todo += [lambda b=b: bench_sample(ours, theirs, b, cfg["prompt_len"], cfg["new_tokens"], cfg["repeats"])
                 for b in cfg["batches"]]
        todo.append(lambda: bench_sample(GPT(GPTConfig()).eval(), None, cfg["toy_batch"], cfg["prompt_len"],
                                         cfg["new_tokens"], cfg["repeats"], name=f"sample toy b{cfg['toy_batch']}"))
    for job in todo:
        name, result = job()
        results[name] = result
        print(f"  {name}: {fmt_row(name, result)}", flush=True)
    return results, extra


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def fmt_row(name, r):
    met = "-" if r["goal"] is None else ("yes" if r["ratio"] >= r["goal"] else "NO")
    return (f"| {name} | {fmt(r['ours'], ',.0f')} | {fmt(r['transformers'], ',.0f')} | {fmt(r['ratio'], '.2f')} "
            f"| {fmt(r['goal'], '.1f')} | {met} |")


def markdown_table(results):
    lines = ["| measurement | ours tok/s | transformers tok/s | ratio | goal | met |", "|---|---|---|---|---|---|"]
    return "\n".join(lines + [fmt_row(name, r) for name, r in results.items()])


def main():
    p = argparse.ArgumentParser(description="CPU throughput of model.py/sample.py vs transformers (same weights).")
    p.add_argument("--what", choices=["model", "sample", "all"], default="all",
                   help="model: prefill/decode forward passes; sample: full generate(); all: both (default)")
    p.add_argument("--out", default="runs/bench.json", help="JSON file for the results, written atomically (default: runs/bench.json)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median reported; "
                   "default 3, or 1 with --quick)")
    p.add_argument("--new-tokens", type=int, default=None, help="tokens sampled per row (default 256, 8 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny model and sizes: a smoke test that takes seconds")
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = dict(PRESETS["quick" if args.quick else "full"])
    cfg.update({k: v for k, v in (("repeats", args.repeats), ("new_tokens", args.new_tokens)) if v is not None})
    transformers = import_transformers()
    env = dict(torch=torch.__version__, transformers=transformers.__version__, threads=torch.get_num_threads(),
               cpu=cpu_model(), dtype="float32", quick=args.quick, loadavg_start=os.getloadavg()[0])
    print(f"torch {env['torch']} | transformers {env['transformers']} | {env['threads']} threads | {env['cpu']} "
          f"| load average {env['loadavg_start']:.2f}")
    if env["loadavg_start"] + env["threads"] > (os.cpu_count() or 1) + 0.5:
        print("warning: other processes are using the cores; threads that wait on a busy core slow both sides "
              "erratically, so --threads 1 gives steadier ratios")
    print(f"config: {cfg}")
    torch.manual_seed(0)
    results, extra = run_benchmarks(args.what, cfg)
    env["loadavg_end"] = os.getloadavg()[0]
    print("\n" + markdown_table(results))
    write_json(dict(env=env, config=cfg, **extra, results=results), args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
