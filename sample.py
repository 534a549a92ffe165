"""
Batched sampling with a KV cache: the rollout engine of PPO and of evaluation.

    completions = generate(model, prompts, max_new_tokens=256, temperature=0.6, eos_id=tok.eos_ids, seed=0)
    completions[i].tokens     # response ids through the first EOS (included when the row stopped)
    completions[i].logprobs   # log p(token) under softmax(logits / temperature), one per token
    completions[i].finish_reason  # "eos" or "length"

How a batch runs: prompts of different lengths are left-padded to one width, so every row writes its next
token into the same cache column; the attention mask hides the pads and per-row position ids ignore them,
so a padded row behaves as it would alone, up to rounding (other shapes round differently). Rows that stop
are compacted out of the cache (the eager engine: once a quarter of the live batch has finished; the graph
engine: into the next smaller power-of-two bucket once half of its bucket has), so the cost follows the rows
still running.

Log-probs: they are computed from softmax(logits / temperature) *before* top-k/top-p filtering. That is
the distribution the PPO trainer recomputes; with top_k or top_p < 1 the tokens are drawn from the
filtered, renormalised distribution instead, so the returned log-probs are not the sampling probabilities
(the trainer therefore samples with no filtering). With temperature = 0 (greedy) they are taken at
temperature 1.

CLI (project checkpoints and local Hugging Face folders alike):
    python sample.py --ckpt checkpoints/toy-base --prompt "(3+4)*5" --num-samples 4 --temperature 0.6
"""

import contextlib
import hashlib
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from common import (MIN_TEMPERATURE, InputError, Parser, cli, device, positive_int, probability, read_jsonl,
                    temperature, temperature_ok)
from model import GPT, KVCache, StaticCache
from tokenizer import Tokenizer


@dataclass
class Completion:
    tokens: list[int]
    logprobs: list[float]
    finish_reason: str  # "eos": stopped at an EOS id (the last token); "length": cut off at max_new_tokens

    def __len__(self):
        return len(self.tokens)


def filter_logits(logits, top_k=None, top_p=1.0):
    """Set logits outside the top-k / nucleus (top-p) set to -inf. top_k=None and top_p=1 change nothing."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass; the top one always stays.
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=1.0, u=None):
    """(token, logprob) per row from last-position logits (batch, vocab); see the module docstring.

    u: one uniform number in [0, 1) per row, the randomness of the draw (unused when greedy)."""
    logits = logits.float()
    if temperature == 0:
        logp = logits.log_softmax(-1)
        token = logits.argmax(-1)
    else:
        logp = (logits / temperature).log_softmax(-1)
        token = draw(filter_logits(logp, top_k, top_p).exp(), u)
    return token, logp.gather(-1, token[:, None]).squeeze(-1)


def draw(weights, u):
    """One index per row, with probability proportional to `weights` (non-negative, any total), from one
    uniform number u in [0, 1) per row.

    Inverse-CDF sampling: a binary search for u in the cumulative weights. torch.multinomial draws a random
    number for every vocabulary entry on CPU, 3.5x slower at batch 64 with a 50k vocabulary. Zero weights
    (filtered tokens) have zero-width slots and are never drawn; a GPU's parallel cumsum adds in a tree, so
    it can give one a slot a rounding unit wide, and a draw that lands there (a chance below 1e-7) takes the
    heaviest entry instead.
    Precision: u has 24 random bits (float32), so each entry is drawn with its probability rounded to a
    multiple of 2^-24 = 6e-8, one way or the other. Over R1-1.5B's 152k words that is a total variation of
    about 1e-3 per token, but no class of words loses out. Measured by running this arithmetic for all 2^24
    values of u, on random logits of standard deviation 3: total variation 1.3e-3 (the same with a float64
    cumsum), no word off by more than 1.1e-7, and the words below 3e-8 drawn 4.97e-4 of the time together
    against their 4.95e-4. That is draw's share of how far the rollouts are off-policy (the rest: the sampling
    engine's log-probs against the training forward's, which PPO recomputes).
    """
    cdf = weights.cumsum(-1)
    target = u.to(cdf.dtype)[:, None] * cdf[:, -1:]
    index = torch.searchsorted(cdf, target, right=True).clamp_(max=cdf.size(-1) - 1)
    return torch.where(weights.gather(-1, index) > 0, index, weights.argmax(-1, keepdim=True)).squeeze(-1)


def row_uniforms(seed, row_ids, n):
    """(len(row_ids), n) uniform numbers in [0, 1), on the CPU: row r's numbers depend only on (seed, r).

    Token t of row r is drawn with number [r, t], so a row samples the same tokens whatever batch it runs
    in: its chunk, the rows that finished beside it, the process it runs on (train_rl.py under torchrun
    splits a step's rows across processes and must sample exactly what one process would).
    """
    out = torch.empty(len(row_ids), n)
    g = torch.Generator()
    for i, r in enumerate(row_ids):
        key = hashlib.blake2b(f"{seed}/{r}".encode(), digest_size=8).digest()
        g.manual_seed(int.from_bytes(key, "little"))
        torch.rand(n, generator=g, out=out[i])
    return out


def pad_rows(rows, pad_id, device, left=True):
    """(ids, mask) of shape (batch, longest row): rows of token ids padded on the left (right-aligned, as
    prompts are) or on the right; mask is 1 on the real tokens."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        if r:
            cols = slice(width - len(r), width) if left else slice(0, len(r))
            ids[i, cols] = torch.tensor(r, device=device)
            mask[i, cols] = 1
    return ids, mask


ENGINES = ("auto", "eager", "graph", "compiled")
SAMPLER_HELP = "auto: graph on a GPU, else eager; compiled first compiles its step (a minute or more)"  # --sampler


@torch.no_grad()
def generate(model, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=1.0, eos_id=None, pad_id=0,
             seed=0, row_ids=None, batch_size=64, stream=None, engine="auto"):
    """Sample one completion per prompt (a list of token-id lists of any lengths); see the module docstring.

    batch_size bounds memory: prompts run in chunks of that many rows (the KV cache is sized for one chunk).
    eos_id: the id that ends a response, a list of such ids (any of them ends it), or None (run to the cap).
    seed, row_ids: prompt i draws its tokens from the random stream (seed, row_ids[i]) (default row_ids:
    0, 1, ...), so the same call repeats exactly, and a row's sample does not depend on the batch around it.
    stream: optional callback called with each new token id of row 0 (the CLI's one sample; eager engine only).
    engine: "eager" (a growing cache, one Python-launched step per token), "graph" (a static cache and a
    CUDA graph per step shape: the GPU engine; on a CPU the same steps run uncaptured), "compiled" (graph,
    with the step compiled by torch.compile), or "auto": graph on a GPU, eager on a CPU or with a stream.
    """
    row_ids = list(range(len(prompts))) if row_ids is None else list(row_ids)
    longest = max((len(p) for p in prompts), default=0)
    device = next(model.parameters()).device
    if engine == "auto":
        engine = "graph" if device.type == "cuda" and stream is None else "eager"
    for bad, message in [
        (any(len(p) == 0 for p in prompts), "every prompt needs at least one token"),
        (max_new_tokens < 1, f"max_new_tokens must be at least 1, got {max_new_tokens}"),
        (not temperature_ok(temperature), f"temperature must be 0 (greedy) or in [{MIN_TEMPERATURE}, inf), got "
         f"{temperature}"),
        (longest + max_new_tokens > model.config.max_seq_len, f"prompt ({longest}) + max_new_tokens ({max_new_tokens}) "
         f"exceeds the model's context of {model.config.max_seq_len} tokens; lower --max-new-tokens"),
        ((top_k is not None and top_k < 1) or not 0 < top_p <= 1, f"top_k ({top_k}) must be at least 1 and top_p "
         f"({top_p}) in (0, 1]"),
        (engine not in ENGINES, f"unknown engine {engine!r}; one of {', '.join(ENGINES)}"),
        (stream is not None and engine != "eager", f"stream needs the eager engine: the {engine} engine reads no "
         "token back before the end"),
        (len(row_ids) != len(prompts), f"{len(row_ids)} row_ids for {len(prompts)} prompts"),
    ]:
        if bad:
            raise ValueError(message)
    run = _generate_eager if engine == "eager" else _generate_static
    eos = eos_tensor(eos_id, device)
    out = []
    with sampling_mode(model, device):
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            noise = row_uniforms(seed, row_ids[start : start + batch_size], max_new_tokens).to(device)
            ids, mask = pad_rows(chunk, pad_id, device)
            sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)
            tokens, logprobs, lengths, stopped = run(model, ids, mask, max_new_tokens, sampling, eos, noise,
                                                     stream if start == 0 else None, engine)
            out += [Completion(toks[:k], lps[:k], "eos" if s else "length") for toks, lps, k, s
                    in zip(tokens.tolist(), logprobs.tolist(), lengths.tolist(), stopped.tolist())]
    return out


def eos_tensor(eos_id, device):
    """The ids that end a response, as a 1-D tensor (empty for None): `is_eos` compares tokens with it."""
    ids = [] if eos_id is None else [eos_id] if isinstance(eos_id, int) else list(eos_id)
    return torch.tensor(ids, dtype=torch.long, device=device)


def is_eos(tokens, eos):
    """True where a token is one of the ids in `eos` (a fixed-shape comparison, so a CUDA graph can hold it)."""
    return (tokens[..., None] == eos).any(-1)


@contextlib.contextmanager
def sampling_mode(model, device):
    """The model in eval mode (its training mode comes back after), with its GPU the current one: CUDA
    graphs, their streams and memory pools belong to the current GPU, which must be the model's (cuda:N)."""
    was_training = model.training
    model.eval()
    try:
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            yield
    finally:
        model.train(was_training)


class NonFiniteLogits(InputError):
    """A model whose logits are NaN or inf (train_rl.py tells a diverged update from a damaged checkpoint)."""


def check_finite(logits):
    """The prompts' logits, refused if any is NaN or inf: such a model would sample garbage (token 0 again and
    again) and exit as if all were well. Checked once per chunk, after the prefill (one wait for the GPU)."""
    if not torch.isfinite(logits).all():
        raise NonFiniteLogits("the model's logits for the prompt are NaN or inf: its weights are damaged or too "
                              "large for their dtype; load another checkpoint")
    return logits


def _generate_eager(model, ids, mask, max_new_tokens, sampling, eos, noise, stream, engine):
    """The eager engine: prefill, then one model call per token on a cache that grows by a column a step;
    rows that stop are compacted out once a quarter of the live rows have. Returns (tokens, logprobs,
    lengths, stopped) per row, tokens and logprobs padded to max_new_tokens."""
    device, n = ids.device, ids.size(0)
    total = ids.size(1) + max_new_tokens
    cache = model.new_cache(n, total)
    logits = check_finite(model(ids, attention_mask=mask, cache=cache, last_only=True)[:, -1])
    out_tokens = torch.zeros((n, max_new_tokens), dtype=torch.long, device=device)
    out_logp = torch.zeros((n, max_new_tokens), device=device)
    length = torch.full((n,), max_new_tokens, device=device)  # a row cut off keeps every token
    stopped = torch.zeros(n, dtype=torch.bool, device=device)
    rows = torch.arange(n, device=device)  # original row of each cache row
    live = torch.ones(n, dtype=torch.bool, device=device)  # cache rows that have not hit EOS yet
    for t in range(max_new_tokens):
        token, logp = sample_next_token(logits, u=noise[rows, t], **sampling)
        out_tokens[rows, t] = token  # rows already stopped write past their end; trimmed below
        out_logp[rows, t] = logp
        if stream is not None and rows[0] == 0 and live[0]:
            stream(token[0].item())
        hit_eos = live & is_eos(token, eos)
        length[rows[hit_eos]] = t + 1
        stopped[rows[hit_eos]] = True
        live &= ~hit_eos
        if not live.any():
            break
        if (~live).sum() * 4 >= live.numel():  # compact once a quarter of the cache rows are done
            keep = live.nonzero().squeeze(-1)
            cache.keep_rows(keep)
            rows, token, mask, live = rows[keep], token[keep], mask[keep], live[keep]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits = model(token[:, None], attention_mask=mask, cache=cache)[:, -1]
    return out_tokens, out_logp, length.long(), stopped


WIDTH_BUCKET = 256  # a captured step reads the cache up to the next multiple of this many columns
ALIGN = 16  # the static buffers' columns: widths are multiples of this, and the buffers are this much wider
SYNC_EVERY = 4  # steps between looks at which rows have finished (each look waits for the GPU)


def batch_bucket(n):
    """The captured batch size that holds n rows: the next power of two."""
    return 1 << (n - 1).bit_length()


def static_width(seq):
    """Columns of the static cache for sequences of up to seq tokens: a multiple of ALIGN, ALIGN wider than
    the widest view a step reads (see _generate_static)."""
    return -(-seq // ALIGN) * ALIGN + ALIGN


def compiled_decode_step(model):
    """model.decode_step under torch.compile, compiled once per model for every width and every batch above 1
    (a batch of 1 is compiled on its own). Sizes that happen to be equal when it compiles (2 rows and 2 KV
    heads) are not assumed to stay equal, which would compile it again when they part."""
    from torch.fx.experimental import _config as fx_config

    owner, compiled = model.__dict__.get("_compiled_decode", (None, None))
    if owner != id(model):  # none yet, or a deepcopy's, still bound to the model it was copied from
        compiled = torch.compile(model.decode_step, dynamic=True)
        model.__dict__["_compiled_decode"] = (id(model), compiled)

    # A private torch setting: where a torch release drops it, the step still runs, compiled more often.
    settings = {"use_duck_shape": False} if hasattr(fx_config, "use_duck_shape") else {}

    def decode(*args):
        with fx_config.patch(**settings):
            return compiled(*args)

    return decode


def _generate_static(model, ids, mask, max_new_tokens, sampling, eos, noise, stream, engine):
    """The graph engine (gpt-fast's idea): a static cache and a decode step of fixed shapes, captured once
    per (batch bucket, width bucket) as a CUDA graph and replayed, so a token costs one launch instead of
    hundreds. Every buffer the step reads or writes is allocated here, before any capture, and updated in
    place: the new token and its position, the cache column it goes to, the step number, the key mask.

    Rows that finish keep running inside their batch bucket (their extra tokens are cut off at the end)
    until half of the bucket is done; then the live rows move to the front and the next smaller bucket
    runs. Compacting into captured buckets, not refilling finished rows with waiting prompts (continuous
    batching), keeps the left-padding design, in which all rows write one shared cache column: a PPO step
    samples all its prompts at once, so there is nothing waiting to refill a row with anyway.
    Returns (tokens, logprobs, lengths, stopped) per row, as _generate_eager does."""
    device, (n, P), T = ids.device, ids.shape, max_new_tokens
    cuda = device.type == "cuda"
    # Every width a step reads is a multiple of ALIGN (aligned rows for the attention kernels), and the
    # buffers are ALIGN columns wider than the widest: no step's view is a whole buffer, so all steps' views
    # share one layout and torch.compile compiles one step for every width and batch size above 1.
    B, max_len = batch_bucket(n), static_width(P + T)
    reach = max_len - ALIGN
    cache = model.new_cache(B, max_len, zeros=True)  # zeros: unwritten columns are masked, but 0 * NaN = NaN
    logits = check_finite(model(ids, attention_mask=mask, cache=KVCache(cache.k[:, :n], cache.v[:, :n]),
                                last_only=True)[:, -1])

    def padded(x, fill):  # a (B, ...) buffer whose first n rows hold x
        buf = torch.full((B, *x.shape[1:]), fill, dtype=x.dtype, device=device)
        buf[:n] = x
        return buf

    first, first_logp = sample_next_token(logits, u=noise[:, 0], **sampling)
    token, position, u = padded(first, 0), padded(mask.sum(1), 0), padded(noise, 0.0)
    key_mask = padded(torch.cat([mask.bool(), mask.new_zeros(n, max_len - P, dtype=torch.bool)], 1), False)
    hist_tok = padded(F.pad(first[:, None], (0, T - 1)), 0)
    hist_logp = padded(F.pad(first_logp[:, None], (0, T - 1)), 0.0)
    finished = padded(is_eos(first, eos), True)
    col, t = torch.tensor([P], device=device), torch.tensor([1], device=device)
    rope = model.rope_tables(max_len)
    decode = compiled_decode_step(model) if engine == "compiled" else model.decode_step

    def step(b, width):  # one token for the first b rows: everything in place, nothing read back
        key_mask[:b].index_fill_(1, col, True)
        view = StaticCache([k[:b, :, :width] for k in cache.k], [v[:b, :, :width] for v in cache.v], col)
        logits = decode(token[:b], position[:b], key_mask[:b, :width], view, rope)
        tok, logp = sample_next_token(logits, u=u[:b].index_select(1, t)[:, 0], **sampling)
        hist_tok[:b].index_copy_(1, t, tok[:, None])
        hist_logp[:b].index_copy_(1, t, logp[:, None])
        finished[:b] |= is_eos(tok, eos)
        token[:b] = tok
        position[:b] += 1
        col.add_(1)
        t.add_(1)

    graphs, pool, mutated = {}, torch.cuda.graph_pool_handle() if cuda else None, (token, position, col, t, finished)

    def capture(b, width):
        saved = [x.clone() for x in mutated]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            step(b, width)  # warm-up: kernels chosen and workspaces allocated outside the capture
        torch.cuda.current_stream().wait_stream(side)
        for x, v in zip(mutated, saved):  # undo the warm-up's step (its cache and history writes repeat)
            x.copy_(v)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            step(b, width)
        return graph

    rows, b, done = list(range(n)) + [-1] * (B - n), B, {}  # rows: the prompt in each cache row (-1: idle)
    for s in range(1, T):
        if (s - 1) % SYNC_EVERY == 0:
            live = [i for i, f in enumerate(finished[:b].tolist()) if not f and rows[i] >= 0]
            if not live:
                break
            if batch_bucket(len(live)) < b:  # compact: keep the live rows, at the front of a smaller bucket
                for i in set(range(b)) - set(live):
                    if rows[i] >= 0:
                        done[rows[i]] = (hist_tok[i].clone(), hist_logp[i].clone())
                keep, b = torch.tensor(live, device=device), batch_bucket(len(live))
                for layer in range(cache.k.size(0)):
                    cache.k[layer, : len(live)] = cache.k[layer, keep]
                    cache.v[layer, : len(live)] = cache.v[layer, keep]
                for x in (token, position, u, key_mask, hist_tok, hist_logp, finished):
                    x[: len(live)] = x[keep]
                finished[len(live) : b] = True
                rows = [rows[i] for i in live] + [-1] * (b - len(live))
        width = min(reach, -(-(P + s) // WIDTH_BUCKET) * WIDTH_BUCKET)  # columns up to the new token's
        if cuda:
            if (b, width) not in graphs:
                graphs[b, width] = capture(b, width)
            graphs[b, width].replay()
        else:
            step(b, width)
    done.update({rows[i]: (hist_tok[i], hist_logp[i]) for i in range(b) if rows[i] >= 0})
    tokens = torch.stack([done[r][0] for r in range(n)])
    logprobs = torch.stack([done[r][1] for r in range(n)])
    steps = int(t.item())  # tokens made per row; the rows that hit EOS stop there
    ended = is_eos(tokens[:, :steps], eos)
    stopped = ended.any(1)
    lengths = torch.where(stopped, ended.float().argmax(1) + 1, torch.full_like(stopped, T, dtype=torch.long))
    return tokens, logprobs, lengths, stopped


# ----------------------------------------------------------------------------------------------------
# CLI


def load_for_inference(path, device="cpu", dtype=None):
    """(model, tokenizer) from a project checkpoint or a local Hugging Face folder, in eval mode."""
    model = GPT.from_pretrained(path, dtype=dtype, device=device).eval()
    return model, Tokenizer.load(path)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_HELP = ("weights dtype, one for every checkpoint whatever dtype it is stored in (default: bf16 on a GPU, as "
              "train_rl.py's paper presets sample there, fp32 on a CPU)")


def dtype_name(name, device):
    """A --dtype flag's value, by default bf16 on a GPU and fp32 on a CPU: one dtype for every checkpoint,
    whatever each stores (R1-Distill is stored in bf16, a trained actor in fp32)."""
    return name or ("bf16" if torch.device(device).type == "cuda" else "fp32")


def read_prompts(path, key):
    """Prompts from a JSONL file: the field `key` of each record (default: "problem", else "question" as in
    GSM8K, else "prompt")."""
    prompts = []
    for where, rec in read_jsonl(path, "prompts file"):
        record = rec if isinstance(rec, dict) else {}
        text = record.get(key) if key else next((record[k] for k in ("problem", "question", "prompt") if k in record),
                                                None)
        if not isinstance(text, str):
            raise InputError(f"{where}: expected a JSON object with a text {key or 'problem, question or prompt'!r} "
                             "field; --key names another")
        prompts.append(text)
    if not prompts:
        raise InputError(f"{path}: no prompts (one JSON object per line, with a {key or 'problem'!r} field)")
    return prompts


@cli
def main(argv=None):
    from tasks import prompt_text  # the toy's prompt format, or the model's chat template

    p = Parser(description="Sample completions from a checkpoint.")
    p.add_argument("--ckpt", required=True, help="project checkpoint folder or local Hugging Face model folder")
    p.add_argument("--prompt", help="one problem/question; wrapped in the chat template (or the toy format)")
    p.add_argument("--prompts", help="JSONL file of problems instead of --prompt")
    p.add_argument("--key", default=None, help="field of --prompts records to use (default: problem, else question, "
                   "else prompt)")
    p.add_argument("--raw", action="store_true", help="use the prompt text as is, without template/format")
    p.add_argument("--show-prompt", action="store_true", help="first print the first prompt as the model reads it: "
                   "the text the chat template (or the toy format) made, special tokens included, and its token count")
    p.add_argument("--num-samples", type=positive_int, metavar="N", default=1, help="completions per prompt")
    p.add_argument("--temperature", type=temperature, default=0.6, help="sampling temperature; 0 is greedy")
    p.add_argument("--top-p", type=probability, default=1.0, help="nucleus sampling mass, in (0, 1]; 1 is off")
    p.add_argument("--top-k", type=positive_int, metavar="N", help="sample among the N likeliest (default: off)")
    p.add_argument("--max-new-tokens", type=positive_int, metavar="N", default=256, help="cut-off length")
    p.add_argument("--batch-size", type=positive_int, metavar="N", default=64, help="rows per sampling chunk")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="sampling seed")
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N, or auto (cuda if there is one)")
    p.add_argument("--dtype", choices=DTYPES, default=None, help=DTYPE_HELP)
    p.add_argument("--sampler", choices=ENGINES, default="auto", help="decoding engine: auto is graph on a GPU (eager "
                   "when streaming one sample), eager on a CPU; compiled first compiles its step (a minute or more)")
    args = p.parse_args(argv)
    if (args.prompt is None) == (args.prompts is None):
        p.error("give exactly one of --prompt or --prompts")
    if args.key and args.prompts is None:
        p.error("--key picks the field of --prompts records; --prompt takes the text itself")
    if args.temperature == 0 and args.num_samples > 1:
        p.error(f"--temperature 0 is greedy: its {args.num_samples} samples of a prompt would be one answer repeated; "
                "give --num-samples 1, or a temperature above 0")
    model, tok = load_for_inference(args.ckpt, args.device, DTYPES[dtype_name(args.dtype, args.device)])
    problems = [args.prompt] if args.prompt is not None else read_prompts(args.prompts, args.key)
    texts = problems if args.raw else [prompt_text(q, tok) for q in problems]
    prompts = [tok.encode(t) for t in texts for _ in range(args.num_samples)]
    if min(len(ids) for ids in prompts) == 0:
        raise InputError("a prompt is empty: give it some text")
    if args.show_prompt:
        print(f"--- prompt ({len(prompts[0])} tokens)\n{tok.decode(prompts[0])}\n--- response", flush=True)
    longest = max(len(ids) for ids in prompts)
    if longest + args.max_new_tokens > model.config.max_seq_len:
        raise InputError(f"a prompt of {longest} tokens plus --max-new-tokens {args.max_new_tokens} does not fit the "
                         f"model's context of {model.config.max_seq_len} tokens")
    single = len(prompts) == 1
    streaming = single and args.sampler in ("auto", "eager")  # auto is eager when streaming
    printed = []

    def stream(token):  # print text as it comes; bytes of a split character wait for the rest
        printed.append(token)
        text = tok.decode(printed, skip_special=True)
        if not text.endswith("\ufffd"):
            sys.stdout.write(text[stream.done:])
            sys.stdout.flush()
            stream.done = len(text)
    stream.done = 0

    t0 = time.perf_counter()
    completions = generate(model, prompts, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                           eos_id=tok.eos_ids, pad_id=tok.pad_id, seed=args.seed, batch_size=args.batch_size,
                           stream=stream if streaming else None, engine=args.sampler)
    seconds = time.perf_counter() - t0
    for i, c in enumerate(completions if not streaming else []):
        if not single:
            print(f"--- sample {i} (prompt {i // args.num_samples}, {len(c)} tokens, {c.finish_reason})")
        print(tok.decode(c.tokens, skip_special=True))
    n_tokens = sum(len(c) for c in completions)
    print(f"\n[{len(completions)} completion(s), {n_tokens} tokens, {n_tokens / seconds:.0f} tokens/s]",
          file=sys.stderr)


if __name__ == "__main__":
    main()
