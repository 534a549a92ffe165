"""
Train the toy base model: a tiny GPT on reasoning traces of varied verbosity (see tasks.py), on a CPU.

This stands in for the "reasoning model" the paper starts from: it solves easy problems, only sometimes
the hard ones, and its responses vary a lot in length. Problems come fresh from the train split at every
step (the test split is never seen) and each gets a freshly drawn trace, so there is no fixed dataset to
overfit. The loss covers the response tokens and the EOS, not the prompt.

    python train_sft.py --out runs/base   # the shipped checkpoints/toy-base again (seed 0): 8 minutes on 2 CPU cores
"""

import argparse
import math
import os
import random
import re
import shutil
import sys
import time

import torch
import torch.nn.functional as F

from common import (COMPLETE, InputError, Parser, check_out_folder, check_writable, cli, foreign_files, lr_at,
                    non_negative_float, non_negative_int, positive_float, positive_int, publish_dir, seed_int, write_json)
from model import GPT, GPTConfig
from tasks import LEVELS, make_problem, make_split, make_trace, prompt_text, split_of
from tokenizer import Tokenizer

OWNED = dict.fromkeys(["config.json", "model.safetensors", "tokenizer_bytes.json", "train_sft.json"])  # in --out


def training_example(rng, tok, levels):
    """(token ids, loss mask) of one prompt + trace + EOS from the train split; levels: {level: weight}."""
    while True:
        problem = make_problem(rng, rng.choices(list(levels), weights=list(levels.values()))[0])[2]
        if split_of(problem) == "train":
            break
    prompt = tok.encode(prompt_text(problem, tok))
    response = tok.encode(make_trace(rng, problem)[0]) + [tok.eos_id]
    return prompt + response, [0] * len(prompt) + [1] * len(response)


def make_batch(examples, pad_id):
    """Right-padded inputs, targets and loss mask (batch, time). Right padding needs no attention mask:
    causal attention never lets a real token see the pads after it, and pads carry no loss."""
    width = max(len(ids) for ids, _ in examples) - 1
    x = torch.full((len(examples), width), pad_id)
    y = torch.full((len(examples), width), pad_id)
    mask = torch.zeros((len(examples), width))
    for i, (ids, m) in enumerate(examples):
        n = len(ids) - 1
        x[i, :n] = torch.tensor(ids[:-1])
        y[i, :n] = torch.tensor(ids[1:])
        mask[i, :n] = torch.tensor(m[1:], dtype=torch.float)  # the mask is aligned with the targets
    return x, y, mask


def batches(rng, tok, batch_size, levels, max_len, pool=8):
    """Endless batches; each `pool` batches' worth of examples is sorted by length first, so a batch holds
    similar lengths and little compute goes to padding (traces vary 5x in length). A sequence longer than
    max_len is refused, not passed on: past the context, RoPE trains on positions sampling never reaches."""
    while True:
        examples = sorted((training_example(rng, tok, levels) for _ in range(batch_size * pool)), key=lambda e: len(e[0]))
        longest = len(examples[-1][0])
        if longest > max_len:  # a backstop: main() already refused a --max-seq-len below longest_example()
            raise InputError(f"a training sequence of {longest} tokens exceeds --max-seq-len {max_len}; "
                             f"pass --max-seq-len {longest} or more")
        group = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
        rng.shuffle(group)
        for chunk in group:
            yield make_batch(chunk, tok.pad_id)


def longest_example(tok, levels, problems_per_level=2000):
    """Tokens in the longest prompt + trace + EOS that training_example draws at these levels, plus a margin.

    A trace is longest with every padding part on and every step slipped and then re-checked (verbosity 1,
    slip_rate 1): an exhaustive search over every problem and trace of each level found none longer (levels
    1-5: 112, 161, 210, 260, 309 tokens), while the natural mix rarely gets there (200,000 level-5 traces: at
    most 288). So this takes that trace for 2000 problems of each level drawn with a Random of its own (the
    run's random stream stays as it was); on 20 seeds it came within 1 token of the search's maximum, and the
    margin of 8 covers that.
    """
    rng = random.Random(0)
    longest = 0
    for level in (lv for lv, weight in levels.items() if weight > 0):
        for _ in range(problems_per_level):
            problem = make_problem(rng, level)[2]
            text = prompt_text(problem, tok) + make_trace(rng, problem, verbosity=1, slip_rate=1)[0]
            longest = max(longest, len(tok.encode(text)) + 1)  # + EOS
    return longest + 8


# Both block designs at about the same parameter count (SwiGLU has three matrices, GELU two).
ARCHS = {
    "gpt2": lambda d: dict(pos="learned", norm="layernorm", mlp="gelu", n_inner=4 * d),
    "qwen2": lambda d: dict(pos="rope", norm="rmsnorm", mlp="swiglu", n_inner=8 * d // 3 // 32 * 32, bias=False,
                            tie_embeddings=True),
}


PROBE_NEW_TOKENS = 320  # the probe's cut-off per response


def probe_problems(per_level=20):
    """The first test problems of each level, the ones probe() answers."""
    return [r for lv in LEVELS for r in make_split("test", per_level, seed=0) if r["level"] == lv][: per_level * 5]


def probe(model, tok, per_level=20):
    """Greedy accuracy per level on the first test problems: a cheap progress signal while training."""
    from eval import rollout  # late import: eval pulls in the sampler, only needed here

    problems = probe_problems(per_level)
    records = rollout(model, tok, problems, 1, 0.0, 1.0, PROBE_NEW_TOKENS, seed=0)
    model.train()
    return {lv: sum(r["correct"] for r in records if r["level"] == lv) / per_level for lv in LEVELS}


def level_weights(text):
    """ "2,2,2,1,0.4" -> {1: 2.0, ..., 5: 0.4}: one non-negative weight per level, with a sum that is finite
    (random.choices refuses an infinite total: "1e308,1e308,..." crashed at the first batch) and at least
    1e-300: random.choices draws random() x the total, and a total as tiny as 5e-324 rounds that up to the
    total itself half the time, which draws the last level, of weight 0 in "5e-324,0,0,0,0"."""
    try:
        weights = [float(x) for x in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != len(LEVELS) or not all(0 <= w < math.inf for w in weights) or \
            not 1e-300 <= sum(weights) < math.inf:
        raise argparse.ArgumentTypeError(f"needs {len(LEVELS)} non-negative numbers, with a sum from 1e-300 to a finite "
                                         f"number, got {text!r}")
    return dict(zip(LEVELS, weights))


def param_groups(model, weight_decay):
    """AdamW's parameter groups: weight decay on the matrices (embeddings, linear weights), none on the vectors
    (norm gains, biases)."""
    return [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]


def finish_swap(out):
    """Finish a save that a crash cut short between publish_dir's two renames (--out missing, the old checkpoint
    parked in OUT.old, the new one complete in OUT.tmp<pid>): the newest complete folder becomes --out."""
    parked = f"{out}.old"
    if os.path.exists(out) or not os.path.isdir(parked) or not os.listdir(parked) or foreign_files(parked, OWNED):
        return
    folder, name = os.path.split(os.path.abspath(out))
    done = [os.path.join(folder, n) for n in os.listdir(folder) if re.fullmatch(re.escape(name) + r"\.tmp\d+", n)
            and os.path.isfile(os.path.join(folder, n, COMPLETE))]
    newest = max(done, key=os.path.getmtime, default=parked)
    os.replace(newest, out)
    if os.path.isdir(parked):
        shutil.rmtree(parked)
    print(f"{out}: finished a save that had been cut short ({os.path.basename(newest)} is now --out)", file=sys.stderr)


@cli
def main(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/base", help="checkpoint folder to write (a new or empty folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoint already in --out")
    p.add_argument("--steps", type=positive_int, metavar="N", default=3400, help="optimiser steps")
    p.add_argument("--batch-size", type=positive_int, metavar="N", default=12, help="sequences per step")
    p.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate (AdamW)")
    p.add_argument("--warmup", type=non_negative_int, metavar="N", default=100, help="linear warm-up steps")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.1, help="AdamW weight decay on matrices")
    p.add_argument("--n-layer", type=positive_int, metavar="N", default=4, help="transformer blocks")
    p.add_argument("--n-head", type=positive_int, metavar="N", default=4, help="attention heads")
    p.add_argument("--n-embd", type=positive_int, metavar="N", default=128, help="model width (a multiple of --n-head)")
    p.add_argument("--max-seq-len", type=positive_int, metavar="N", default=512, help="context length (prompt + response)")
    p.add_argument("--arch", choices=ARCHS, default="qwen2",
                   help="qwen2: RoPE, RMSNorm, SwiGLU; gpt2: learned positions, LayerNorm, GELU")
    p.add_argument("--probe-every", type=non_negative_int, metavar="N", default=500,
                   help="every N steps print greedy accuracy per level on a few test problems (0: never)")
    # Level 5 is rare in the traces so the base solves it only about a third of the time: headroom for
    # phase 1 (with 2,2,2,1,1 the same schedule reached 58% at level 5).
    p.add_argument("--level-weights", type=level_weights, default="2,2,2,1,0.4",
                   help="relative frequency of levels 1..5 in the training traces (0 leaves a level out)")
    p.add_argument("--seed", type=seed_int, metavar="N", default=0, help="seed for weights and data")
    p.add_argument("--log-every", type=positive_int, metavar="N", default=50, help="print a progress line every N steps")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.n_embd % args.n_head:
        p.error(f"--n-embd ({args.n_embd}) must be a multiple of --n-head ({args.n_head})")
    levels = args.level_weights
    tok = Tokenizer.byte_level()
    # Refused before any training: a sequence past the context crashes learned positions mid-run, and RoPE
    # trains on it silently, leaving a model that cannot sample; the probe would crash at its first run.
    train_len = longest_example(tok, levels)
    probing = 0 < args.probe_every <= args.steps  # else the probe never runs
    probe_len = max(len(tok.encode(prompt_text(r["problem"], tok))) for r in probe_problems()) + PROBE_NEW_TOKENS \
        if probing else 0
    need = max(train_len, probe_len)
    if args.max_seq_len < need:
        why = f"training sequences (prompt + trace + EOS) reach {train_len} tokens at these --level-weights"
        if probing:
            why += f", the probe's longest prompt + {PROBE_NEW_TOKENS} new tokens {probe_len} (--probe-every 0: no probe)"
        raise InputError(f"--max-seq-len {args.max_seq_len} is too short: {why}; pass --max-seq-len {need} or more")
    # With --overwrite the old checkpoint stays until publish_dir swaps the new one in, at the end.
    finish_swap(args.out)
    check_out_folder(args.out, OWNED, overwrite=args.overwrite, what="checkpoint", fix="replace it with --overwrite")
    check_writable(f"{args.out}.tmp{os.getpid()}")  # the folder written beside --out, then swapped in
    old = f"{args.out}.old"  # where publish_dir parks the old checkpoint during the swap, and then deletes it
    if os.path.lexists(old) and (os.path.islink(old) or not os.path.isdir(old) or foreign_files(old, OWNED)):
        raise InputError(f"{old} is in the way: saving --out puts the old checkpoint there and then deletes it; "
                         "move it, or pick another --out")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    cfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                    max_seq_len=args.max_seq_len, **ARCHS[args.arch](args.n_embd))
    model = GPT(cfg)
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))
    print(f"training {model.num_params() / 1e6:.2f}M params for {args.steps} steps of {args.batch_size} "
          f"sequences, level weights {','.join(f'{w:g}' for w in levels.values())}, seed {args.seed}")
    log = []
    t0 = time.perf_counter()
    tokens_seen = 0
    data = batches(rng, tok, args.batch_size, levels, args.max_seq_len)
    tmp = f"{args.out}.tmp{os.getpid()}"
    step = 0  # for the Ctrl-C message, should it come before the first step
    try:
        for step in range(args.steps):
            lr = lr_at(step, args.steps, args.lr, args.warmup, min_ratio=0.1)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y, mask = next(data)
            logits = model(x)
            loss_tok = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(mask)
            loss = (loss_tok * mask).sum() / mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens_seen += x.numel()  # padded tokens included: this is the compute throughput
            if step % args.log_every == 0 or step == args.steps - 1:
                elapsed = time.perf_counter() - t0
                eta = elapsed / (step + 1) * (args.steps - step - 1)
                print(f"step {step:5d} | loss {loss.item():.4f} | lr {lr:.2e} | {tokens_seen / elapsed:7.0f} tok/s | "
                      f"{elapsed / 60:4.1f} min, eta {eta / 60:4.1f} min", flush=True)
                log.append({"step": step, "loss": loss.item(), "lr": lr, "elapsed_s": elapsed})
            if args.probe_every and (step + 1) % args.probe_every == 0:
                acc = probe(model, tok)
                print("  greedy accuracy by level: " + " ".join(f"L{lv} {100 * a:.0f}%" for lv, a in acc.items()),
                      flush=True)
                if log[-1]["step"] != step:  # filed under the step it measured, not the last one logged
                    log.append({"step": step, "loss": loss.item(), "lr": lr, "elapsed_s": time.perf_counter() - t0})
                log[-1]["probe"] = acc
        try:
            model.save(tmp)
            tok.save(tmp)
            settings = {**vars(args), "level_weights": ",".join(f"{w:g}" for w in levels.values())}
            write_json({"args": settings, "log": log, "seconds": time.perf_counter() - t0},
                       os.path.join(tmp, "train_sft.json"))
        except OSError as e:  # a full disk, say: the half-written folder goes, --out stays as it was
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(f"could not save the trained model in {tmp} ({e.strerror or e}); --out {args.out} is "
                             "unchanged; free some space and train again") from None
    except KeyboardInterrupt:  # Ctrl-C: no traceback, and no half-written folder left beside --out
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"\nstopped by Ctrl-C at step {step} of {args.steps}: nothing was saved (the checkpoint is written "
              f"only at the end); --out {args.out} is unchanged", file=sys.stderr, flush=True)
        raise SystemExit(130)
    publish_dir(tmp, args.out)
    print(f"saved {args.out} after {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
