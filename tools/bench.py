"""
Throughput of our model and sampler against Hugging Face `transformers` on the same weights.

    python tools/bench.py                      # CPU: GPT-2-small-sized random model, fp32
    python tools/bench.py --what sample --threads 2 --repeats 5
    python tools/bench.py --quick              # tiny sizes, seconds: the smoke test uses this
    python tools/bench.py --device cuda        # GPU: DeepSeek-R1-Distill-Qwen-1.5B's shape, bf16, decoding
    python tools/bench.py --device cuda --engines graph,compiled --batches 1,64 --profile compiled
    python tools/bench.py --device cuda --engines graph --batches 1,8 --prompt-len 7936 --no-baseline \
        --no-greedy-check --profile graph    # decoding at the end of an 8k-token response, as a PPO step's last rows

On a GPU (`--device cuda`): random weights of R1-Distill-Qwen-1.5B's shape (28 layers, width 1536, 12 heads,
2 KV heads, MLP 8960, vocabulary 151936, untied head) in bf16, shared by a transformers Qwen2 model and ours.
For batch 1, 16 and 64, 16-token prompts (`--prompt-len`) and 256 new tokens (no EOS, every row runs to the
end): tokens/s of transformers `generate`, of our eager sampler and of our graph sampler (the bf16 inference
copy with fused projections, CUDA graphs; `--engines graph,compiled` adds the torch.compile'd step), each run
once to warm up (its seconds are reported: they include compilation) and then timed. Next to each: the ratio
to transformers and the share of the memory-bandwidth limit, batch x (copy bandwidth measured here) / (bytes
of weights read per step; a long --prompt-len also reads the cache, which this leaves out). `--profile
ENGINE` then runs that engine at batch 1 for 64 and for 128 tokens, timed and under torch.profiler, and writes
to OUT_profile.txt where the time goes: per token of steady decoding (the difference of the two runs) the
wall-clock and, on a GPU, kernels and microseconds by kind (matrix products, attention, torch.compile's fused
kernels, the rest) and the time in which no kernel ran; per call, the one-off work (prefill, graph capture);
then the costliest operators and kernels.

Why a comparison and not absolute numbers: CPU speed varies from machine to machine (and another process
may share the cores), so the useful number is the ratio ours / transformers measured in the same process,
interleaved repeat by repeat, reported as medians. Both sides run the same random GPT-2 weights: the
transformers model is built with a fixed seed, saved with `save_pretrained`, and ours is loaded from that
folder with `GPT.from_pretrained`; the largest logit difference is reported as a check of that.

- model: prefill tokens/s (one forward pass) and single-token decode tokens/s with 512 cached tokens.
- sample: full sampling (temperature 1, no filtering, no EOS so every row makes exactly the asked number
  of tokens) at several batch sizes; tokens/s = batch * new tokens / seconds. Plus ours alone on a toy-sized
  model: `GPTConfig()` defaults, GPT-2 style with 0.89M parameters, next to the 0.79M Qwen2-style toy that
  phase-1 PPO samples on the CPU (kept, so that its figures compare with earlier ones).
"""

import sys
import inspect
import os
import statistics
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project's modules

from common import Parser, check_writable, choice_list, cli, positive_int, positive_int_list, write_json, write_text
from model import GPT, GPTConfig
from sample import ENGINES, generate

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
        print(f"  {fmt_row(name, result)}", flush=True)  # the table's row, as it comes
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


R1_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
              num_key_value_heads=2, max_position_embeddings=131072, rope_theta=10000.0, rms_norm_eps=1e-6,
              tie_word_embeddings=False)
TINY_QWEN2 = {**R1_15B, "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024}


def qwen2_pair(sizes, device, dtype):
    """(ours, transformers) Qwen2 models on `device` sharing one set of random `dtype` weights."""
    from model import build_from_tensors, config_from_qwen2, rename_qwen2

    transformers = import_transformers()
    torch.manual_seed(0)
    config = transformers.Qwen2Config(**sizes, bos_token_id=None, eos_token_id=None)
    with torch.device(device):
        theirs = transformers.Qwen2ForCausalLM(config).to(dtype).eval()
    tensors = ((ours, fn(t)) for name, t in theirs.state_dict().items() for ours, fn in rename_qwen2(name))
    return build_from_tensors(GPT, config_from_qwen2(config.to_dict()), tensors, dtype, device).eval(), theirs


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats=1):
    """(seconds of a first run of fn(), median seconds of `repeats` runs after it): the first run of a shape
    pays for warm-up, CUDA graph capture and compilation, so the later ones are those to compare."""
    seconds = []
    for _ in range(1 + repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - t0)
    return seconds[0], statistics.median(seconds[1:])


@torch.no_grad()
def logprob_gap(model, prompts, new, engine):
    """How far the log-probs a sampler returns are from those of one full forward pass over the same tokens
    (what PPO recomputes): mean and max |difference| over 8 rows sampled at temperature 1, in model's dtype."""
    diffs = []
    for prompt, c in zip(prompts, generate(model, prompts, new, temperature=1.0, eos_id=None, seed=5, engine=engine)):
        idx = torch.tensor([prompt + c.tokens], device=next(model.parameters()).device)
        logits = model(idx)[0, len(prompt) - 1 : -1].float()
        want = logits.log_softmax(-1).gather(-1, idx[0, len(prompt):, None]).squeeze(-1)
        diffs.append((torch.tensor(c.logprobs, device=want.device) - want).abs())
    diffs = torch.cat(diffs)
    return {"mean": diffs.mean().item(), "max": diffs.max().item()}


KERNEL_KINDS = (  # what a GPU kernel does, from its name, first match. Inductor names a fused kernel after the
    ("matrix products", ("triton_tem",)),  # ops in it (triton_poi_fused__scaled_dot_product_efficient_attention_
    ("fused by torch.compile", ("triton_",)),  # ...: the padding before one), so its kernels are matched first;
    ("attention", ("fmha", "flash", "attention", "sdpa")),  # attention before cuBLAS: its names may say cutlass
    ("matrix products", ("gemv", "gemm", "xmma", "cutlass", "nvjet", "splitk")),
)


def kernel_kind(name):
    name = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in name for k in keys)), "other kernels")


def kernels_by_kind(rows):
    """{kind: (kernels, device microseconds)} of a profile's GPU kernels (rows with .key, .count, .device_type,
    .self_device_time_total); the rows of user annotations (inductor marks each compiled call with one) span
    kernels rather than being one, and are left out."""
    kinds = {}
    for r in rows:
        if r.device_type == torch.autograd.DeviceType.CUDA and not getattr(r, "is_user_annotation", False):
            n, us = kinds.get(kind := kernel_kind(r.key), (0, 0.0))
            kinds[kind] = (n + r.count, us + r.self_device_time_total)
    return kinds


def kernel_summary(short, long, tokens, wall_us):
    """Lines of kernels and device microseconds per token, by kind: the difference between the kernels_by_kind
    of a run of n tokens (short) and of one of n + tokens (long), so a call's one-off work (prefill, capture)
    cancels; wall_us: wall-clock microseconds per token, likewise, so the last line is the time per token in
    which no kernel ran (launch gaps, syncs, Python)."""
    kinds = {kind: tuple((a - b) / tokens for a, b in zip(long[kind], short.get(kind, (0, 0.0)))) for kind in long}
    busy = sum(us for _, us in kinds.values())
    lines = [f"per token: {sum(n for n, _ in kinds.values()):.0f} kernels, {busy:,.0f} us of kernel time, "
             f"{wall_us:,.0f} us of wall-clock"]
    for kind, (n, us) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {kind:24s} {n:6.1f} kernels {us:8,.1f} us ({100 * us / max(busy, 1e-9):.0f}%)")
    lines.append(f"  {'no kernel running':24s} {'':6s}         {wall_us - busy:8,.1f} us")
    return lines


PROFILE_TOKENS = 64  # --profile's shorter run, at most; its longer run is twice as long


def profile_decode(model, prompts, new, engine, path):
    """Where a batch-1 decode's time goes. Runs of `new` and of 2 x `new` tokens, each timed warm and then run
    once under torch.profiler, differ by `new` tokens of steady decoding: per token, their difference gives
    the wall-clock and, on a GPU, the kernels and their time by kind (kernel_summary); what the short run
    takes beyond its tokens is a call's one-off work (prefill, and capturing its CUDA graphs, which every
    call does afresh). Then the long run's 40 costliest operators and kernels by device time (CPU time on a
    CPU), printed and written to path."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    walls, kinds = {}, {}
    for n in (new, 2 * new):
        run = lambda: (generate(model, prompts[:1], n, temperature=1.0, eos_id=None, batch_size=1, engine=engine),
                       sync())
        walls[n] = min(timed(run)[1] for _ in range(2))  # the quieter of two warm runs
        with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
            run()
        rows = prof.key_averages()
        kinds[n] = kernels_by_kind(rows)
    wall_us = (walls[2 * new] - walls[new]) * 1e6 / new  # rows: the long run's profile, for the table below
    rate = f"{1e6 / wall_us:,.0f} tokens/s" if wall_us > 0 else "timing too noisy to tell"
    lines = [f"{engine} engine, batch 1: {wall_us:,.0f} us a token ({rate}) once decoding, plus "
             f"{(walls[new] - new * wall_us / 1e6) * 1e3:,.1f} ms a call (prefill, graph capture); from runs of "
             f"{new} and {2 * new} new tokens"]
    if kinds[2 * new]:
        lines += kernel_summary(kinds[new], kinds[2 * new], new, wall_us)
    elif cuda:
        lines.append("warning: the profiler recorded no GPU kernels (CUPTI unavailable?): no summary by kind")
    table = rows.table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=40)
    write_text(path, "\n".join(lines) + f"\n{table}\n")
    print("\n".join(lines), table, f"\nwrote {path}", sep="\n", flush=True)


def copy_bandwidth(device):
    """Bytes read and written per second by a large device-to-device copy."""
    x = torch.empty(2**28 if device == "cuda" else 2**24, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    secs = timed(lambda: [y.copy_(x) for _ in range(10)])[1] / 10
    return 2 * x.numel() / secs


@torch.no_grad()
def run_decoding(args):
    """The GPU measurement (see the module docstring); --tiny runs its code path on a tiny model."""
    device, dtype = args.device, torch.bfloat16 if args.device == "cuda" else torch.float32
    ours, theirs = qwen2_pair(TINY_QWEN2 if args.tiny else R1_15B, device, dtype)
    fast = ours.inference_copy(dtype)  # fused q|k|v and gate|up: what train_rl.py samples from in bf16 runs
    cfg = ours.config
    idx = torch.randint(0, cfg.vocab_size, (4, 32), generator=torch.Generator().manual_seed(1)).to(device)
    extra = {"max_abs_logit_diff_vs_transformers": (ours(idx).float() - theirs(idx).logits.float()).abs().max().item(),
             "max_abs_logit_diff_fused_copy": (fast(idx).float() - ours(idx).float()).abs().max().item()}
    bandwidth = copy_bandwidth(device)
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters()) - ours.tok_emb.weight.nbytes
    extra.update(params=ours.num_params(), weight_bytes_per_step=weight_bytes, copy_bandwidth_bytes_per_s=bandwidth)
    print(f"{ours.num_params() / 1e9:.2f}B parameters, {weight_bytes / 1e9:.2f} GB of weights read per decode step, "
          f"copy bandwidth {bandwidth / 1e12:.2f} TB/s; max |logit diff| vs transformers "
          f"{extra['max_abs_logit_diff_vs_transformers']:.2e}, fused copy vs ours {extra['max_abs_logit_diff_fused_copy']:.2e}")
    new, plen, repeats = args.new_tokens, args.prompt_len, args.repeats or 1
    per_token = 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * dtype.itemsize  # k and v
    cache_bytes = per_token * (plen + new)
    extra.update(new_tokens=new, prompt_len=plen, repeats=repeats, cache_bytes_per_row_at_end=cache_bytes)
    print(f"a row's KV cache holds {cache_bytes / 1e9:.3f} GB by its last token, read at every step: the shares of "
          "the bandwidth limit below count the weights alone", flush=True)
    rows = max(64, *args.batches)  # every batch gets as many prompts as it counts in its tokens/s
    prompts = torch.randint(0, cfg.vocab_size, (rows, plen), generator=torch.Generator().manual_seed(2)).tolist()
    engines, checked = args.engines, 8 if args.tiny else 64  # the checks: 8 rows of `checked` tokens
    model_for = lambda engine: ours if engine == "eager" else fast  # the eager engine runs the unfused model
    greedy = lambda engine: [c.tokens for c in generate(fast, prompts[:8], checked, temperature=0, engine=engine)]
    reference = greedy("eager") if args.greedy_check else None
    for engine in engines if args.greedy_check else []:  # the compiled engine compiles here, for every batch > 1
        gap = logprob_gap(model_for(engine), prompts[:8], checked, engine)
        extra[f"logprob_gap_{engine}"] = gap
        said = f"{engine} engine: sampled log-probs against one full forward pass: mean |diff| {gap['mean']:.2e}, " \
               f"max {gap['max']:.2e}"
        if engine != "eager":
            same = sum(a == b for ga, gb in zip(reference, greedy(engine)) for a, b in zip(ga, gb))
            extra[f"greedy_tokens_{engine}_equal_eager"] = f"{same}/{8 * checked}"
            said += f"; greedy tokens equal to the eager engine's {same}/{8 * checked}"
        print(said, flush=True)
    results = {}
    for batch in args.batches:
        ids = torch.tensor(prompts[:batch], device=device)
        run_theirs = lambda: theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                                             top_k=0, top_p=1.0, max_new_tokens=new, min_new_tokens=new,
                                             pad_token_id=0, eos_token_id=None)
        row = {"transformers": batch * new / timed(run_theirs, repeats)[1] if args.baseline else None}
        limit = batch * bandwidth / weight_bytes
        for engine in engines:
            try:
                first, secs = timed(lambda: generate(model_for(engine), prompts[:batch], new, temperature=1.0,
                                                     eos_id=None, batch_size=batch, engine=engine), repeats)
            except Exception as e:  # report it and go on: the other engines' figures are still worth having
                row[engine], row[f"{engine}_error"] = None, f"{type(e).__name__}: {str(e)[:1000]}"
                print(f"batch {batch}, {engine}: failed: {row[f'{engine}_error']}", flush=True)
                continue
            row[engine], row[f"{engine}_first_run_seconds"] = batch * new / secs, first
            row[f"{engine}_ratio"] = row[engine] / row["transformers"] if args.baseline else None
            row[f"{engine}_share_of_bandwidth_limit"] = row[engine] / limit
        results[f"batch {batch}"] = row
        print(f"batch {batch:2d}: transformers {fmt(row['transformers'], '8,.0f')} tok/s | " + " | ".join(
            f"{e} {row[e]:8,.0f} tok/s ({fmt(row[e + '_ratio'], '.1f')}x, "
            f"{100 * row[e + '_share_of_bandwidth_limit']:.0f}% of the bandwidth limit; first run "
            f"{row[e + '_first_run_seconds']:.0f} s)" for e in engines if row[e] is not None), flush=True)
        write_json(dict(**extra, results=results), args.out + ".partial")  # what a cut-off run had measured
    if args.profile:
        try:
            profile_decode(model_for(args.profile), prompts, min(new, PROFILE_TOKENS), args.profile,
                           os.path.splitext(args.out)[0] + "_profile.txt")
        except Exception as e:  # the figures above are still worth writing
            extra["profile_error"] = f"{type(e).__name__}: {str(e)[:1000]}"
            print(f"--profile {args.profile} failed: {extra['profile_error']}", flush=True)
    return results, extra


@cli(memory="lower --batches or --new-tokens")
def main(argv=None):
    p = Parser(description="Throughput of model.py/sample.py vs transformers (same weights).")
    p.add_argument("--what", choices=["model", "sample", "all"], default="all",
                   help="model: prefill/decode forward passes; sample: full generate(); all: both (default)")
    p.add_argument("--out", default="runs/bench.json", help="JSON file for the results, written atomically (default: runs/bench.json)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed repeats per measurement (median reported; "
                   "default 3, or 1 with --quick or the GPU measurement, which runs each shape once more first)")
    p.add_argument("--new-tokens", type=positive_int, default=None,
                   help="tokens sampled per row (default 256, 8 with --quick or --tiny)")
    p.add_argument("--quick", action="store_true", help="tiny model and sizes: a smoke test that takes seconds")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: the GPU decoding measurement")
    p.add_argument("--tiny", action="store_true", help="with the GPU measurement: a tiny model (its code path on a CPU)")
    p.add_argument("--gpu-path", action="store_true", help="run the GPU measurement's code path on --device cpu")
    engines = [e for e in ENGINES if e != "auto"]
    p.add_argument("--engines", type=choice_list(*engines), default="eager,graph",
                   help="with the GPU measurement: our samplers to time, from eager, graph, compiled (the "
                   "torch.compile'd step; its compilation takes minutes)")
    p.add_argument("--batches", type=positive_int_list, default="1,16,64",
                   help="with the GPU measurement: the batch sizes")
    p.add_argument("--prompt-len", type=positive_int, metavar="N", help="with the GPU measurement: tokens per prompt "
                   "(default 16, 4 with --tiny); a long prompt times decoding where attention reads a long cache, as "
                   "the last, longest responses of a paper-scale PPO step do (at most the model's context minus "
                   "--new-tokens: 131,072 for R1-1.5B's shape, 1,024 with --tiny)")
    p.add_argument("--profile", choices=engines, help="with the GPU measurement: then profile this engine at batch 1 "
                   "(runs of 64 and 128 tokens): where a token's time goes, and the costliest kernels, into "
                   "OUT_profile.txt")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="do not time transformers")
    p.add_argument("--no-greedy-check", dest="greedy_check", action="store_false", help="skip comparing each engine's "
                   "greedy tokens with the eager engine's (for the compiled engine, that check is a compilation)")
    args = p.parse_args(argv)
    gpu_flags = {"tiny": "--tiny", "engines": "--engines", "batches": "--batches", "prompt_len": "--prompt-len",
                 "profile": "--profile", "baseline": "--no-baseline", "greedy_check": "--no-greedy-check"}
    given = p.given(argv)
    gpu_only = [flag for dest, flag in gpu_flags.items() if dest in given]
    if gpu_only and not (args.device == "cuda" or args.gpu_path):
        p.error(f"{', '.join(gpu_only)} only {'goes' if len(gpu_only) == 1 else 'go'} with the GPU measurement: add "
                "--device cuda, or --gpu-path to run its code path on the CPU")
    cpu_only = [f"--{dest}" for dest in ("what", "quick", "threads") if dest in given]
    if cpu_only and (args.device == "cuda" or args.gpu_path):
        p.error(f"{', '.join(cpu_only)} only {'goes' if len(cpu_only) == 1 else 'go'} with the CPU benchmark: the GPU "
                "measurement times sampling at --batches (--tiny for a tiny model)")
    if args.device == "cuda" or args.gpu_path:
        args.new_tokens, args.prompt_len = args.new_tokens or (8 if args.tiny else 256), args.prompt_len or (
            4 if args.tiny else 16)
        context = (TINY_QWEN2 if args.tiny else R1_15B)["max_position_embeddings"]
        if args.prompt_len + args.new_tokens > context:
            p.error(f"--prompt-len {args.prompt_len} plus --new-tokens {args.new_tokens} exceeds the model's context "
                    f"of {context} tokens; give a shorter --prompt-len")
        longest = 2 * min(args.new_tokens, PROFILE_TOKENS)  # profile_decode's longer run
        if args.profile and args.prompt_len + longest > context:
            p.error(f"--prompt-len {args.prompt_len} plus {longest} tokens (--profile's longer run) exceeds the "
                    f"model's context of {context} tokens; give a shorter --prompt-len")
    check_writable(args.out)  # before minutes of measuring, not after
    if args.device == "cuda" or args.gpu_path:
        if args.device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("error: --device cuda: no CUDA GPU is visible; use --device cpu")
        env = dict(torch=torch.__version__, transformers=import_transformers().__version__, device=args.device,
                   gpu=torch.cuda.get_device_name() if args.device == "cuda" else cpu_model(), tiny=args.tiny)
        print(env, flush=True)
        results, extra = run_decoding(args)
        write_json(dict(env=env, **extra, results=results), args.out)
        if os.path.exists(args.out + ".partial"):  # the whole run is in args.out now
            os.remove(args.out + ".partial")
        print(f"wrote {args.out}")
        return
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
