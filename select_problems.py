"""
Pick the phase-2 training set: problems the model solves only occasionally.

    python select_problems.py --ckpt runs/phase1/checkpoint/actor --data data/toy_train.jsonl --levels 4,5 \\
        --candidates 256 --samples 8 --num-problems 8 --out runs/phase2_set.jsonl

Samples k responses for each candidate problem, estimates its pass rate, keeps the problems whose pass rate
is strictly between 0 and 1 (or inside --min-pass-rate/--max-pass-rate), and writes the N with the lowest
pass rates: the paper used 8 MATH problems (7 at level 5) that its model could solve, and found that how
solvable the set is sets how fast length falls. Works the same on a local Hugging Face model with
MATH-style JSONL. The output records gain a "pass_rate" field: the estimate that chose them, so it runs low
(the lowest of many noisy estimates is lower than those problems' true rates: the demo's --quick set has
0.375 recorded, and 0.438 +- 0.029 on 32 fresh samples per problem). The eval.py command it prints (this
--ckpt, --temperature, --max-new-tokens and --dtype, --top-p 1, the next --seed) measures the set afresh.
"""

import random
import time

from common import (Parser, check_writable, cli, device, positive_int, ranged, int_list,
                    sampling_temperature, write_jsonl)
import distributed
from distributed import is_main, on_main
from eval import pass_rates, progress_done, progress_printer, rollout
from sample import DTYPE_HELP, DTYPES, ENGINES, SAMPLER_HELP, dtype_name, load_for_inference
from tasks import PAPER_NEW_TOKENS, DataError, new_tokens_that_fit, read_problems


def choose(problems, rates, n, min_rate, max_rate, seed):
    """The n problems with the lowest pass rates inside (min_rate, max_rate); ties in a seeded order."""
    eligible = [p for p in problems if min_rate < rates[p["id"]] < max_rate]
    random.Random(seed).shuffle(eligible)
    eligible.sort(key=lambda p: rates[p["id"]])  # stable: the shuffle breaks ties
    return eligible[:n]


class TooFewProblems(DataError):
    """Fewer candidates than --num-problems have a pass rate inside the range (the advice names this script's
    flags)."""


def candidates_path(out):
    """Where a selection that found too few problems keeps every candidate's pass rate."""
    return f"{out}.candidates.jsonl"


@cli
def main(argv=None):
    p = Parser(description="Select the phase-2 problems (solved only sometimes).")
    p.add_argument("--ckpt", required=True, help="model to measure pass rates with (project or Hugging Face)")
    p.add_argument("--data", required=True, help="candidate problems JSONL (toy, MATH- or GSM8K-style)")
    p.add_argument("--levels", type=int_list, default=None, help="levels to draw from, e.g. 4,5 (default: all)")
    p.add_argument("--candidates", type=positive_int, metavar="N", default=256, help="problems to try (a seeded subset)")
    p.add_argument("--samples", type=positive_int, metavar="N", default=8, help="responses per candidate (k)")
    p.add_argument("--num-problems", type=positive_int, metavar="N", default=8, help="problems to select (paper: 8)")
    p.add_argument("--min-pass-rate", type=ranged(float), default=0.0, help="keep pass rates strictly above this "
                   "(below 0: never-solved problems too)")
    p.add_argument("--max-pass-rate", type=ranged(float), default=1.0, help="keep pass rates strictly below this "
                   "(above 1: always-solved problems too)")
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N, or auto (cuda if there is one)")
    p.add_argument("--dtype", choices=DTYPES, default=None, help=DTYPE_HELP)
    p.add_argument("--sampler", choices=ENGINES, default="auto", help=SAMPLER_HELP)
    p.add_argument("--temperature", type=sampling_temperature, default=0.6, help="sampling temperature (as in training)")
    p.add_argument("--max-new-tokens", type=positive_int, metavar="N", help="cut-off, a cut response is wrong (default: "
                   f"the paper's {PAPER_NEW_TOKENS}, or what the model's context leaves after the longest prompt)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", default=64, help="rows per sampling chunk")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="seed for the candidate subset and sampling")
    p.add_argument("--out", required=True, help="JSONL file for the selected problems")
    args = p.parse_args(argv)
    if args.min_pass_rate >= args.max_pass_rate:
        p.error(f"--min-pass-rate ({args.min_pass_rate}) must be below --max-pass-rate ({args.max_pass_rate})")
    possible = [k / args.samples for k in range(args.samples + 1)]
    if not any(args.min_pass_rate < r < args.max_pass_rate for r in possible):
        p.error(f"no pass rate of {args.samples} samples (0/{args.samples}, 1/{args.samples}, ...) is strictly between "
                f"--min-pass-rate {args.min_pass_rate} and --max-pass-rate {args.max_pass_rate}; widen the range or "
                "raise --samples")
    distributed.setup()  # under torchrun, each process samples its share of the responses
    distributed.check_device(args.device)
    on_main(lambda: check_writable(args.out, [("--data", args.data)]))
    problems = read_problems(args.data, args.levels)
    random.Random(args.seed).shuffle(problems)
    candidates = problems[: args.candidates]
    source = args.data + (f" at --levels {','.join(map(str, args.levels))}" if args.levels else "")
    if len(candidates) < args.num_problems:  # refused before hours of sampling, not after
        more = f"raise --candidates ({source} holds {len(problems)})" if len(problems) > args.candidates else \
            "give more problems"
        raise DataError(f"--num-problems {args.num_problems}, but there are only {len(candidates)} candidates "
                        f"({source}, --candidates {args.candidates}); lower --num-problems or {more}")
    if len(candidates) < args.candidates and is_main():
        print(f"note: --candidates {args.candidates}, but {source} holds {len(candidates)} problems: trying them all")
    model, tok = load_for_inference(args.ckpt, args.device, DTYPES[dtype_name(args.dtype, args.device)])
    if args.max_new_tokens is None:
        args.max_new_tokens = new_tokens_that_fit(candidates, tok, model.config.max_seq_len)
        if is_main():
            print(f"--max-new-tokens {args.max_new_tokens} (the default: {PAPER_NEW_TOKENS}, or what the context leaves "
                  "after the longest prompt)")

    t0 = time.perf_counter()
    records = rollout(model, tok, candidates, args.samples, args.temperature, 1.0, args.max_new_tokens, args.seed,
                      args.batch_size, progress_printer("sampled"), args.sampler)
    distributed.leave()  # the sampling was the last collective work
    if not is_main():
        return
    progress_done("sampled", len(records), t0)
    rates = pass_rates(records)
    histogram = {}
    for r in rates.values():
        histogram[round(r * args.samples)] = histogram.get(round(r * args.samples), 0) + 1
    print("pass-rate histogram (correct out of %d: problems): %s" % (args.samples, dict(sorted(histogram.items()))))
    chosen = choose(candidates, rates, args.num_problems, args.min_pass_rate, args.max_pass_rate, args.seed)
    with_rates = lambda problems: [{**q, "pass_rate": rates[q["id"]]} for q in problems]  # the records written
    if len(chosen) < args.num_problems:  # the sampling is kept: it may have taken hours
        measured = candidates_path(args.out)
        write_jsonl(with_rates(candidates), measured)
        more = "raise --candidates" if len(problems) > len(candidates) else \
            f"give more problems (all {len(problems)} of {source} were tried)"
        raise TooFewProblems(f"only {len(chosen)} of {len(candidates)} candidates have a pass rate in "
                             f"({args.min_pass_rate}, {args.max_pass_rate}); {more} or widen the range "
                             f"(every candidate's pass rate is in {measured})")
    write_jsonl(with_rates(chosen), args.out)
    for q in chosen:
        level = f"level {q['level']} " if q["level"] is not None else ""  # GSM8K-style problems have none
        print(f"  {q['id']:>16} {level}pass {rates[q['id']]:.3f}  {q['problem'][:60]}")
    again = (f"--ckpt {args.ckpt} --data {args.out} --temperature {args.temperature} --top-p 1 --max-new-tokens "
             f"{args.max_new_tokens} --dtype {dtype_name(args.dtype, args.device)} --seed {args.seed + 1}")
    print(f"wrote {len(chosen)} problems to {args.out} (their pass_rate chose them, so it runs low; eval.py {again} "
          "measures it afresh)")


if __name__ == "__main__":
    distributed.exit_after(main)
