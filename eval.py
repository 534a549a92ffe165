"""
Accuracy and response length: the two axes of the paper's claim.

    python eval.py --ckpt checkpoints/toy-base runs/phase1/checkpoint/actor --data data/toy_test.jsonl \\
        --out results.json                      # python tasks.py writes data/

For each checkpoint: K samples per problem (paper: K = 4, temperature 0.6, top-p 0.95), pass@1 as the
mean accuracy over all samples with its standard error, mean and median response length in tokens over
all, correct and incorrect responses, the share cut off at --max-new-tokens, and all of it per level.
Prints a markdown table with the checkpoints side by side and writes the same figures as JSON.

The standard error treats problems as the unit: the K samples of one problem are not independent, so it
is std(per-problem accuracy) / sqrt(#problems). Cut-off responses count as wrong (no final answer). The
JSON keeps each checkpoint's per-problem pass rates too: the standard error of a difference between two
checkpoints is that of the per-problem differences (paired_stderr), not one from their own two.
Also written: the coefficient of variation of the correct responses' lengths (length_cv_correct).

With --out, each chunk of responses is kept in OUT.partial.jsonl as soon as it is sampled; a run that
stopped continues with the same flags plus --resume, and ends with the same figures as one that did not
stop (response i draws from the random stream (seed, i), whichever run samples it).
"""

import math
import os
import random
import statistics
import sys
import time

from common import (InputError, Parser, append_jsonl, check_writable, cli, device, positive_int, probability, read_jsonl,
                    repeated, sha256_of, temperature, write_json, write_jsonl)
import distributed
from distributed import gather, is_main, my_share, on_main
from reward import grade
from model import read_checkpoint
from sample import DTYPE_HELP, DTYPES, ENGINES, SAMPLER_HELP, dtype_name, generate, load_for_inference
from tasks import PAPER_NEW_TOKENS, encode_prompts, new_tokens_that_fit, read_problems
from tokenizer import BYTES_FILE, HF_FILES, Tokenizer


def rollout(model, tok, problems, samples, temperature, top_p, max_new_tokens, seed, batch_size=64,
            progress=None, engine="auto", done=None, save=None):
    """Sample `samples` responses per problem; one record per response with its text, length and score.
    Under torchrun each process samples every N-th response and all of them get every record; response i
    draws from the random stream (seed, i), so the records do not depend on N.

    done: {response index: record} of an interrupted call with the same arguments, kept as they are (they
    are what this call would sample). save: called on process 0 with each chunk's new records as soon as
    they are sampled, {index: record}: what a later call can pass as `done`."""
    encoded = encode_prompts(problems, tok, max_new_tokens, model.config.max_seq_len)
    prompts = [ids for ids in encoded for _ in range(samples)]
    records = dict(done or {})
    mine = my_share(i for i in range(len(prompts)) if i not in records)  # as many chunks on every process
    for start in range(0, len(mine), batch_size * 4):  # chunks, so long runs can report progress and save
        rows = [i for i in mine[start : start + batch_size * 4] if i is not None]
        completions = generate(model, [prompts[i] for i in rows], max_new_tokens, temperature, top_p=top_p,
                               eos_id=tok.eos_ids, pad_id=tok.pad_id, seed=seed, row_ids=rows, batch_size=batch_size,
                               engine=engine) if rows else []
        new = {}
        for i, c in zip(rows, completions):
            problem = problems[i // samples]
            text = tok.decode(c.tokens, skip_special=True)
            new[i] = {"problem_id": problem["id"], "level": problem.get("level"), "text": text,
                      "length": len(c), "finish_reason": c.finish_reason,
                      "correct": grade(text, problem["answer"], c.finish_reason == "eos") == "correct"}
        new = gather(new)  # every process's share of the chunk
        records.update(new)
        if save and is_main():
            save(new)
        if progress and is_main():
            progress(len(records), len(prompts))
    return [records[i] for i in range(len(prompts))]


def progress_printer(label):
    """A `rollout` progress callback: one line rewritten in place on a terminal; in a log file (no carriage
    returns) a line at each quarter."""
    tty = sys.stderr.isatty()
    printed = set()

    def show(done, total):
        if tty:
            print(f"\r  {label}: {done}/{total} responses", end="", file=sys.stderr, flush=True)
        elif (quarter := 4 * done // total) not in printed:
            printed.add(quarter)
            print(f"  {label}: {done}/{total} responses", file=sys.stderr, flush=True)

    return show


def progress_done(label, n, t0):
    """The closing progress line; on a terminal it overwrites the running one."""
    start = "\r" if sys.stderr.isatty() else ""
    print(f"{start}  {label}: {n} responses in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def pass_rates(records):
    """{problem id: share of its responses that were correct}."""
    by_problem = {}
    for r in records:
        by_problem.setdefault(r["problem_id"], []).append(r["correct"])
    return {pid: sum(v) / len(v) for pid, v in by_problem.items()}


def summarize(records):
    """pass@1, its standard error and the length statistics of a set of response records."""
    if not records:
        return {}
    per_problem = list(pass_rates(records).values())
    n = len(per_problem)
    lengths = lambda rs: [r["length"] for r in rs]
    correct = [r for r in records if r["correct"]]
    wrong = [r for r in records if not r["correct"]]
    mean = lambda xs: statistics.fmean(xs) if xs else None
    median = lambda xs: statistics.median(xs) if xs else None
    return {
        "accuracy": statistics.fmean(per_problem),
        "accuracy_stderr": statistics.stdev(per_problem) / math.sqrt(n) if n > 1 else None,  # one problem: unknown
        "problems": n,
        "responses": len(records),
        "length_mean": mean(lengths(records)),
        "length_median": median(lengths(records)),
        "length_mean_correct": mean(lengths(correct)),
        "length_median_correct": median(lengths(correct)),
        "length_mean_incorrect": mean(lengths(wrong)),
        "length_median_incorrect": median(lengths(wrong)),
        "length_cv_correct": (statistics.stdev(lengths(correct)) / mean(lengths(correct))
                              if len(correct) > 1 else None),
        "cut_off_share": sum(r["finish_reason"] == "length" for r in records) / len(records),
    }


def summarize_by_level(records):
    """{"all": summary, "levels": {level: summary}, "pass_rates": {problem id: rate}} (levels only when the
    problems have them; the pass rates are what paired_stderr compares two models by), and "no_level": the
    summary of the problems without a level where others have one (MATH's "Level ?" problems)."""
    levels = sorted({r["level"] for r in records if r["level"] is not None})
    unlevelled = [r for r in records if r["level"] is None]
    return {"all": summarize(records),
            "levels": {str(lv): summarize([r for r in records if r["level"] == lv]) for lv in levels},
            **({"no_level": summarize(unlevelled)} if levels and unlevelled else {}),
            "pass_rates": pass_rates(records)}


def paired_stderr(rates_a, rates_b):
    """The standard error of accuracy b - a for two models evaluated on the same problems: that of the mean
    per-problem difference. Their own standard errors cannot be combined as if independent (root of the sum of
    squares): both models meet the same problems, hard ones are hard for both, and response i of a problem
    draws from the same random stream for both, so that overstated it (the quick demo's phase 1 against its
    phase 2 on 300 toy problems: 2.9 points against 1.8). None for fewer than 2 problems."""
    if set(rates_a) != set(rates_b):
        raise ValueError("paired_stderr: the two evaluations are not of the same problems")
    diffs = [rates_b[pid] - rates_a[pid] for pid in rates_a]
    return statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None


def evaluate(model, tok, problems, samples=4, temperature=0.6, top_p=0.95, max_new_tokens=512, seed=0,
             batch_size=64, progress=None, engine="auto", done=None, save=None):
    """Summary (overall and per level) of `model` on `problems`; also returns the response records.
    done, save: see rollout."""
    records = rollout(model, tok, problems, samples, temperature, top_p, max_new_tokens, seed, batch_size,
                      progress, engine, done, save)
    return summarize_by_level(records), records


def held_out(path, n, seed):
    """A fixed, level-mixed subset of n problems of a file (the toy's files are sorted by level)."""
    problems = read_problems(path)
    random.Random(seed).shuffle(problems)
    return problems[:n]


def eval_record(model, tok, problems, samples, temperature, max_new_tokens, seed, batch_size, engine="auto"):
    """The figures train_rl.py logs for a held-out evaluation: eval_accuracy, eval_length, and per level."""
    summary, _ = evaluate(model, tok, problems, samples, temperature, 0.95, max_new_tokens, seed, batch_size,
                          engine=engine)
    rec = {"eval_accuracy": summary["all"]["accuracy"], "eval_length": summary["all"]["length_mean"]}
    for lv, s in summary["levels"].items():
        rec[f"eval_accuracy_L{lv}"], rec[f"eval_length_L{lv}"] = s["accuracy"], s["length_mean"]
    return rec


# ----------------------------------------------------------------------------------------------------
# Resuming: eval.py --out F keeps every response's record in F.partial.jsonl as it goes (a line of settings,
# then per checkpoint a line naming its files and a line per response), and deletes it once F is written.


def progress_path(out):
    return f"{out}.partial.jsonl"


def fingerprint(path):
    """[[file, bytes, modified ns]] of a checkpoint folder's config, weights and tokenizer files (the chat template
    and the EOS ids of generation_config.json shape the responses too): what says it has not changed."""
    names = ("config.json", BYTES_FILE, *HF_FILES)
    files = sorted(f for f in os.listdir(path) if f in names or f.endswith(".safetensors"))
    return [[f, (st := os.stat(os.path.join(path, f))).st_size, st.st_mtime_ns] for f in files]


def read_progress(path, settings, sources):
    """{checkpoint name: {response index: record}} of an unfinished evaluation's progress file, which is then
    rewritten without a last line that a crash cut off. Refused if it was made with other settings, or from
    a checkpoint whose files have changed since. sources: {name: [folder, fingerprint]}."""
    lines = [rec for _, rec in read_jsonl(path, "progress file", torn_tail_ok=True)]
    start_over = "or delete it to start over"
    earlier = lines[0].get("settings") if lines and isinstance(lines[0], dict) else None
    if not isinstance(earlier, dict):
        raise InputError(f"{path}: not an eval.py progress file (its first line holds no settings); {start_over}")
    if changed := [k for k in settings if earlier.get(k) != settings[k]]:
        then_now = ", ".join(f"{k} {earlier.get(k)!r} then, {settings[k]!r} now" for k in changed)
        raise InputError(f"{path} was written with other settings ({then_now}); give the same flags as then, {start_over}")
    done = {}
    try:
        for rec in lines[1:]:
            name = rec["checkpoint"]
            if "index" in rec:
                r = rec["record"]  # what summarize reads: a bad one failed in a traceback, after all the sampling
                if not (isinstance(r, dict) and isinstance(r.get("correct"), bool) and type(r.get("length")) is int
                        and isinstance(r.get("finish_reason"), str) and "problem_id" in r and "level" in r):
                    raise TypeError
                done[name][rec["index"]] = r
            elif name in sources and rec["source"] != sources[name]:
                raise InputError(f"{path}: checkpoint {name!r} is not what it was then (another folder, or its files "
                                 f"changed); {start_over}")
            else:
                done[name] = {}
    except (KeyError, TypeError):
        raise InputError(f"{path}: not an eval.py progress file (a line without its fields); {start_over}") from None
    write_jsonl(lines, path)  # appends must start on a line of their own
    return done


def open_progress(path, resume, settings, sources):
    """The records already sampled ({} for a new evaluation, whose progress file this starts)."""
    if resume:
        if not os.path.exists(path):
            raise InputError(f"--resume: there is no unfinished evaluation to continue ({path} does not exist); "
                             "run without --resume")
        return read_progress(path, settings, sources)
    if os.path.exists(path):
        raise InputError(f"{path} holds the responses of an unfinished evaluation into the same --out: add --resume "
                         "to continue it, or delete it to start over")
    write_jsonl([{"settings": settings}], path)
    return {}


def saver(path, name, with_text):
    """rollout's `save` for checkpoint `name`: each chunk's records appended to the progress file at `path`
    (their texts only `with_text`); None without a progress file."""
    def save(new):
        keep = lambda r: r if with_text else {k: v for k, v in r.items() if k != "text"}
        append_jsonl(path, *({"checkpoint": name, "index": i, "record": keep(r)} for i, r in new.items()))

    return save if path else None


# ----------------------------------------------------------------------------------------------------
# Reporting


def fmt(x, pct=False):
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.0f}"


def markdown_table(results):
    """Checkpoints side by side: accuracy % (± stderr) and mean length, overall and per level."""
    names = list(results)
    levels = sorted({lv for r in results.values() for lv in r["levels"]}, key=int)
    rows = [("all", lambda r: r["all"])] + [(f"level {lv}", lambda r, lv=lv: r["levels"].get(lv)) for lv in levels]
    rows += [("no level", lambda r: r.get("no_level"))] if any("no_level" in r for r in results.values()) else []
    head = "| | " + " | ".join(f"{n}: acc % | {n}: mean len" for n in names) + " |"
    sep = "|---|" + "---|---|" * len(names)
    lines = [head, sep]
    for label, get in rows:
        cells = []
        for n in names:
            s = get(results[n]) or {}
            acc = f"{fmt(s.get('accuracy'), pct=True)} ± {fmt(s.get('accuracy_stderr'), pct=True)}" if s else "-"
            cells += [acc, fmt(s.get("length_mean"))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@cli
def main(argv=None):
    p = Parser(description="Evaluate checkpoints: pass@1 and response length, per level.")
    p.add_argument("--ckpt", nargs="+", action="extend", required=True,
                   help="checkpoint folders (project or Hugging Face)")
    p.add_argument("--names", nargs="+", action="extend", help="column names for the checkpoints (default: the folder "
                   "paths)")
    p.add_argument("--data", required=True, help="problems JSONL (toy, MATH- or GSM8K-style)")
    p.add_argument("--limit", type=positive_int, metavar="N", default=None, help="evaluate N problems of --data, drawn "
                   "with --seed (files are often sorted by level: the first N would be the easy ones)")
    p.add_argument("--samples", type=positive_int, metavar="N", default=4, help="samples per problem (K)")
    p.add_argument("--temperature", type=temperature, default=0.6, help="sampling temperature; 0 is greedy")
    p.add_argument("--top-p", type=probability, default=0.95, help="nucleus sampling mass, in (0, 1]")
    p.add_argument("--max-new-tokens", type=positive_int, metavar="N", help="cut-off, a cut response is wrong (default: "
                   f"the paper's {PAPER_NEW_TOKENS}, or what the models' context leaves after the longest prompt)")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="sampling seed (the same for every checkpoint)")
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N, or auto (cuda if there is one)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", default=64, help="rows per sampling chunk")
    p.add_argument("--dtype", choices=DTYPES, default=None, help=DTYPE_HELP)
    p.add_argument("--sampler", choices=ENGINES, default="auto", help=SAMPLER_HELP)
    p.add_argument("--out", default=None, help="write the figures to this JSON file (the responses wait in "
                   "OUT.partial.jsonl until then, for --resume)")
    p.add_argument("--save-responses", action="store_true", help="include every response text in --out")
    p.add_argument("--resume", action="store_true", help="continue an evaluation into --out that stopped before its "
                   "end, from the responses it kept in --out's .partial.jsonl (give the same flags as then)")
    args = p.parse_args(argv)
    for flag, given in (("--save-responses writes the responses into", args.save_responses),
                        ("--resume continues the evaluation into", args.resume)):
        if given and not args.out:
            p.error(f"{flag} --out: give --out FILE.json")
    if args.temperature == 0 and args.samples > 1:
        p.error(f"--temperature 0 is greedy: its {args.samples} samples of a problem would be one answer repeated; "
                "give --samples 1, or a temperature above 0")
    names = args.names or args.ckpt
    if len(names) != len(args.ckpt):
        p.error("--names needs one name per --ckpt")
    if (twice := repeated(names)) is not None:
        p.error(f"{'--names' if args.names else '--ckpt'} {twice} is given twice: each column needs its own name")
    distributed.setup()  # under torchrun, each process samples its share of the responses
    distributed.check_device(args.device)
    if args.out is not None:
        on_main(lambda: check_writable(args.out, [("--data", args.data)]))  # before the sampling, not after it
    problems = held_out(args.data, args.limit, args.seed) if args.limit else read_problems(args.data)
    if args.limit and len(problems) < args.limit and is_main():
        print(f"note: --limit {args.limit}, but {args.data} holds {len(problems)} problems: evaluating them all",
              file=sys.stderr)
    folders = [(read_checkpoint(path)[0], Tokenizer.load(path)) for path in args.ckpt]  # all checked, before any work
    if args.max_new_tokens is None:  # one cut-off for every model, so that their columns compare
        args.max_new_tokens = min(new_tokens_that_fit(problems, tok, config.max_seq_len) for config, tok in folders)
        if is_main():
            print(f"--max-new-tokens {args.max_new_tokens} (the default: {PAPER_NEW_TOKENS}, or what the context leaves "
                  "after the longest prompt)", file=sys.stderr)
    args.dtype = dtype_name(args.dtype, args.device)  # one for every column, so that they compare
    settings = {k: getattr(args, k) for k in ("data", "limit", "samples", "temperature", "top_p", "max_new_tokens",
                                              "seed", "dtype")}
    progress = progress_path(args.out) if args.out else None
    done = {}
    if progress:  # read on process 0 only, before anyone appends; every process gets it
        sources = {name: [os.path.abspath(path), fingerprint(path)] for name, path in zip(names, args.ckpt)}
        kept_with = {**{k: v for k, v in settings.items() if k != "data"}, "save_responses": args.save_responses,
                     "problems_sha256": sha256_of(problems)}  # the problems themselves, not their file's path
        done = gather(on_main(lambda: open_progress(progress, args.resume, kept_with, sources)) or {})
    results, responses = {}, {}
    try:
        for name, path in zip(names, args.ckpt):
            model, tok = load_for_inference(path, args.device, DTYPES[args.dtype])
            kept = done.get(name, {})
            if progress and is_main():
                if name not in done:
                    append_jsonl(progress, {"checkpoint": name, "source": sources[name]})
                elif kept:
                    print(f"  {name}: {len(kept)} responses kept from {progress}", file=sys.stderr)
            t0 = time.perf_counter()
            summary, records = evaluate(model, tok, problems, args.samples, args.temperature, args.top_p,
                                        args.max_new_tokens, args.seed, args.batch_size, progress_printer(name),
                                        args.sampler, kept, saver(progress, name, args.save_responses))
            if is_main():
                progress_done(name, len(records), t0)
            results[name], responses[name] = summary, records
    except (KeyboardInterrupt, Exception) as e:
        if progress and is_main() and not isinstance(e, InputError):
            print(f"\nthe responses sampled so far are kept in {progress}: the same command with --resume continues",
                  file=sys.stderr)
        raise
    distributed.leave()  # the sampling was the last collective work
    if not is_main():
        return
    print(markdown_table(results))
    if args.out:
        out = {"settings": settings, "results": results}
        if args.save_responses:
            out["responses"] = responses
        write_json(out, args.out)
        os.remove(progress)  # the figures are safe in --out
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    distributed.exit_after(main)
