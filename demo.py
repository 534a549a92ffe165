"""
The whole method in one command, on a CPU: shipped toy base -> phase 1 -> phase-2 set -> phase 2 ->
evaluation table and plots.

    python demo.py              # one seed, about 11 minutes on 2 idle CPU cores
    python demo.py --ablations  # plus phase 2 with --gae-lambda 1.0 and with --algo grpo
    python demo.py --seeds 6    # the study behind the README: 6 seeds, ablations included (about 2.5 hours)
    python demo.py --quick      # about 3 minutes: phase 2 alone, from the shipped phase-1 model

Each stage is the command a user would type (printed before it runs) and writes into --out. Running the
demo again reuses finished stages (an interrupted RL phase resumes from its checkpoint) if the base model and
settings are the same (out/demo.json records them with every train_rl.py flag's value under the toy presets;
a mismatch is refused); --fresh redoes everything. Every seed runs the RL stages (phase 1, the phase-2 set,
phase 2, the ablations) on the same base model and test set; the test set is sampled with one seed for every
model, so the spread between seeds is the spread of RL itself. out/results.json holds the figures of every seed (the shape of
assets/results.json, which `--seeds 6` wrote; runs are deterministic for a given machine and thread count, and
the demo says whether each seed it ran gave the figures that file holds for that seed).
"""

import hashlib
import json
import os
import statistics
import sys
import time

import torch

import eval as evaluation
import plots
import runs
import select_problems
import tasks
import train_rl
from common import (InputError, Parser, check_out_folder, check_writable, cli, positive_int, ranged, read_json,
                    remove_names, write_json, write_text)
from model import read_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "checkpoints", "toy-base")
# For --quick: seed 0's phase-1 model, with the set of 32 problems it solves 3 times in 8 (the demo's earlier set
# rule: on this model it shortens as much in 45 steps at a smaller accuracy cost than today's rule; RESULTS.md)
PHASE1 = os.path.join(HERE, "checkpoints", "toy-phase1")
SHIPPED = os.path.join(HERE, "assets", "results.json")
# --quick's phase 2 has a fixed time budget: a fixed number of steps on the paper's cosine schedule, no early stop
QUICK_SCHEDULE = ["--min-lr-ratio", "0.1", "--stop-length-ratio", "0"]
ABLATIONS = {"lambda1": ["--gae-lambda", "1.0"], "grpo": ["--algo", "grpo"]}
ROWS = ["base", "phase1", "phase2", *ABLATIONS]  # the rows of results.json, in table order
NEW_TOKENS = str(train_rl.SCALE_PRESETS["toy"]["max_new_tokens"])  # the cut-off of training, selection and tests

# What differs between the full demo and --quick; everything else is the train_rl.py presets. The full demo's
# phase2_steps is a cap: phase 2 stops once its set's responses are 55% of their starting length (its preset).
# The phase-2 set has 64 problems drawn from 512 candidates: with 32 from 256, phase 2 cost 2.7 points of accuracy
# on six seeds, with 64 about 1.4 at the same cut in length (RESULTS.md).
SETTINGS = {
    "full": dict(phase1_steps=90, phase2_steps=150, eval_every=20, eval_problems=200, test_per_level=200,
                 test_samples=4, candidates=512, set_size=64, min_pass_rate=0.4),
    "quick": dict(phase2_steps=45, test_per_level=60, test_samples=2),
}


def banner(text):
    print(f"\n=== {text}", flush=True)


def run(name, module, argv):
    """Print the equivalent shell command, then run the module's main() on those arguments."""
    print(f"$ python {name} " + " ".join(argv), flush=True)
    t0 = time.perf_counter()
    try:
        module.main(argv)
    except (SystemExit, KeyboardInterrupt) as e:
        if getattr(e, "code", 130) == 130:  # Ctrl-C: the stage's own advice would resume that stage alone
            print("the demo stopped: the same demo command continues it (finished stages are reused, this one "
                  "resumes)", file=sys.stderr)
        raise
    print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)


def rl_phase(run_dir, flags, steps):
    """Run (or reuse, or resume) one train_rl.py run in run_dir; returns its trained actor's folder."""
    state = runs.state_path(run_dir)  # also a checkpoint whose swap a crash cut short: --resume finishes that swap
    in_place = state == os.path.join(run_dir, "checkpoint", "state.json")
    if in_place and os.path.isfile(state) and read_json(state)["finished"]:
        print(f"reusing {run_dir} (finished)")
    elif os.path.isfile(state):
        run("train_rl.py", train_rl, ["--resume", "--out", run_dir])
    else:
        run("train_rl.py", train_rl, [*flags, "--steps", str(steps), "--out", run_dir, "--overwrite"])
    return os.path.join(run_dir, "checkpoint", "actor")


def evaluate(models, test, settings, out):
    """eval.py on every model not yet in out (a JSON of eval.py's figures, with each model's padding per response:
    tasks.padding_counts); returns {name: summary}."""
    done = read_json(out)["results"] if os.path.isfile(out) else {}
    todo = {name: path for name, path in models.items() if "pass_rates" not in done.get(name, {})}  # (older: none)
    if todo:
        tmp, progress = out + TMP, evaluation.progress_path(out + TMP)
        if os.path.exists(progress) and begun_without_responses(progress):  # its --resume would be refused
            os.remove(progress)  # (a toy evaluation: a minute or two to redo)
        resume = ["--resume"] if os.path.exists(progress) else []  # an evaluation cut short
        run("eval.py", evaluation, ["--ckpt", *todo.values(), "--names", *todo, "--data", test, "--samples",
                                    str(settings["test_samples"]), "--max-new-tokens", NEW_TOKENS, "--out", tmp,
                                    "--save-responses", *resume])
        evaluated = read_json(tmp)
        for name, responses in evaluated["responses"].items():
            evaluated["results"][name]["padding"] = tasks.padding_counts([r["text"] for r in responses])
        done.update(evaluated["results"])
        write_json({"results": done}, out)
        os.remove(tmp)
    return {name: done[name] for name in models}


def begun_without_responses(progress):
    """Whether an evaluation cut short was begun by a demo that kept no responses (before it counted the
    padding): eval.py --resume refuses other settings than its own, so the demo starts such a one over."""
    try:
        with open(progress) as f:
            return json.loads(f.readline())["settings"]["save_responses"] is False
    except (OSError, ValueError, KeyError, TypeError):  # not a progress file: eval.py names what is wrong
        return False


def seed_stages(seed, out, base, data, settings, ablations):
    """Phase 1 from `base`, the phase-2 set, phase 2 (and the ablations) for one seed; {row name: trained actor}."""
    folder, (train, test) = os.path.join(out, f"seed{seed}"), data
    held_out = ["--eval-data", test, "--eval-every", str(settings["eval_every"]),
                "--eval-problems", str(settings["eval_problems"]), "--seed", str(seed)]
    banner(f"seed {seed}: phase 1: PPO on hard problems (levels 4-5) to raise accuracy")
    phase1 = rl_phase(os.path.join(folder, "phase1"), ["--phase", "1", "--init", base, "--data", train, "--levels",
                                                       "4,5", *held_out], settings["phase1_steps"])
    banner(f"seed {seed}: the phase-2 set: {settings['set_size']} problems the phase-1 model solves about half the "
           f"time (pass rate above {settings['min_pass_rate']} and below 0.7)")
    chosen = os.path.join(folder, "phase2_set.jsonl")
    if not os.path.isfile(chosen):
        # The problems solved 4 times in 8 first, then 5; not the lowest pass rates the paper took from MATH
        # level 5. Phase 2 shortens as its returns turn positive; sets solved 3 times in 8 were mostly level 5
        # on one seed in three, whose returns stayed near zero and which shortened by 11% (RESULTS.md).
        try:
            run("select_problems.py", select_problems, ["--ckpt", phase1, "--data", train, "--levels", "4,5",
                                                        "--min-pass-rate", str(settings["min_pass_rate"]),
                                                        "--max-pass-rate", "0.7", "--max-new-tokens", NEW_TOKENS,
                                                        "--num-problems", str(settings["set_size"]), "--candidates",
                                                        str(settings["candidates"]), "--seed", str(seed), "--out",
                                                        chosen])
        except select_problems.TooFewProblems as e:  # its advice names flags the demo sets itself
            raise InputError(f"seed {seed}: the phase-2 set: {str(e).split(';')[0]}; the demo sets these numbers in "
                             "SETTINGS at the top of demo.py (candidates, set_size, min_pass_rate): raise candidates "
                             "or lower set_size there, or try another seed") from None
    banner(f"seed {seed}: phase 2: PPO on that small set to shorten responses")
    phase2 = lambda name, extra, steps: rl_phase(os.path.join(folder, name), ["--phase", "2", "--init", phase1,
                                                                           "--data", chosen, *held_out, *extra], steps)
    models = {"phase1": phase1, "phase2": phase2("phase2", [], settings["phase2_steps"])}
    steps = read_json(os.path.join(folder, "phase2", "checkpoint", "state.json"))["step"]  # where it stopped
    # As many steps as phase 2 took, at its constant lr; the warm-up (3% of --steps) is shorter than phase 2's
    # (3% of the cap), and GRPO, with no critic, trains the actor from step 0 (RESULTS.md)
    for name, extra in (ABLATIONS if ablations else {}).items():
        models[name] = phase2(name, [*extra, "--stop-length-ratio", "0"], steps)
    return models


def row(summary):
    """A results.json row from eval.py's summary: accuracy in %, mean length in tokens, per level, and the padding
    per response where the evaluation counted it (demo.evaluate)."""
    pick = lambda s: {"accuracy": 100 * s["accuracy"],
                      "accuracy_stderr": None if s["accuracy_stderr"] is None else 100 * s["accuracy_stderr"],
                      "length": s["length_mean"]}
    padding = {"padding": summary["padding"]} if "padding" in summary else {}
    return {**pick(summary["all"]), "levels": {lv: pick(s) for lv, s in summary["levels"].items()}, **padding}


def padding_cell(rows):
    """Re-checks / restatements / closings per response, as a table cell: the mean over `rows` (one per seed)."""
    return " / ".join(f"{statistics.mean(r['padding'][kind] for r in rows):.2f}" for kind in tasks.PADDING)


def results_table(results):
    """The README's table: each row's accuracy and length over seeds (mean ± sd), overall and per level."""
    runs = results["runs"]
    names = [name for name in ROWS if all(name in r["rows"] for r in runs)]
    levels = sorted(runs[0]["rows"]["base"]["levels"], key=int)
    cell = lambda xs, fmt: (lambda m, s: f"{m:{fmt}} ± {s:{fmt}}" if s > 0 else f"{m:{fmt}}")(*plots.mean_sd(xs))
    get = lambda name, key, lv=None: [(r["rows"][name] if lv is None else r["rows"][name]["levels"][lv])[key]
                                      for r in runs]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             "| accuracy % | " + " | ".join(cell(get(n, "accuracy"), ".1f") for n in names) + " |",
             "| length (tokens) | " + " | ".join(cell(get(n, "length"), ".0f") for n in names) + " |"]
    lines += [f"| level {lv}: acc % / length | " + " | ".join(
        f"{cell(get(n, 'accuracy', lv), '.1f')} / {cell(get(n, 'length', lv), '.0f')}" for n in names) + " |"
        for lv in levels]
    if all("padding" in r["rows"][n] for r in runs for n in names):  # (results.json files from before: none)
        lines.append(f"| {' / '.join(tasks.PADDING)} per response | " +
                     " | ".join(padding_cell([r["rows"][n] for r in runs]) for n in names) + " |")
    return "\n".join(lines)


def change_lines(results):
    """Each phase's accuracy change (points) and length change (%) from the row before it, mean ± sd over
    seeds, and its mean accuracy change per level."""
    runs, lines = results["runs"], []

    def spread(xs, unit):
        m, sd = plots.mean_sd(xs)
        return f"{m:+.1f}{unit}" + (f" ± {sd:.1f}" if len(xs) > 1 else "")

    pairs = [("base", "phase1")] + [("phase1", n) for n in ("phase2", *ABLATIONS) if n in runs[0]["rows"]]
    for a, b in pairs:
        acc = [r["rows"][b]["accuracy"] - r["rows"][a]["accuracy"] for r in runs]
        length = [100 * (r["rows"][b]["length"] / r["rows"][a]["length"] - 1) for r in runs]
        gain = lambda lv: [r["rows"][b]["levels"][lv]["accuracy"] - r["rows"][a]["levels"][lv]["accuracy"]
                           for r in runs]
        by_level = {lv: plots.mean_sd(gain(lv))[0] for lv in runs[0]["rows"][a]["levels"]}
        lines.append(f"{a} -> {b}: accuracy {spread(acc, ' points')}, mean length {spread(length, '%')}; by level: "
                     + " ".join(f"L{lv} {d:+.1f}" for lv, d in by_level.items()))
    return "\n".join(lines)


def report(results):
    """The README's table and the change lines under it: what --report prints and results.md holds."""
    return results_table(results) + "\n\n" + change_lines(results)


def read_results(path):
    """(results, its report) of a results.json (what --report prints), or one InputError if the file has
    another shape."""
    results = read_json(path, "results file")
    try:
        if not results["runs"]:
            raise ValueError("'runs' is empty")
        return results, report(results) if "base" in results["runs"][0]["rows"] else quick_report(results)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
        what = f"no {e} field" if isinstance(e, KeyError) else e
        raise InputError(f"{path}: not a demo results file ({what}); expected the results.json demo.py writes") from None


@cli(memory="the demo's models are tiny, so other processes hold the GPU's memory: free it (on the CPU instead, "
     "CUDA_VISIBLE_DEVICES=, the demo starts again: add --fresh, or give another --out, as its stages ran on the GPU)")
def main(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="about 3 minutes: phase 2 alone, from the shipped phase-1 model")
    p.add_argument("--seeds", type=ranged(int, 1, MAX_SEEDS), metavar="N", default=1, help="run the RL stages for seeds "
                   f"0 .. N-1, N at most {MAX_SEEDS} (N > 1: ablations included, as in assets/results.json)")
    p.add_argument("--ablations", action="store_true", help="also phase 2 with --gae-lambda 1.0 and with --algo grpo")
    p.add_argument("--out", default=None, help="output folder (default: runs/demo, or runs/demo-quick)")
    p.add_argument("--base", default=BASE, help="base model checkpoint (default: the shipped toy base)")
    p.add_argument("--fresh", action="store_true", help="redo every stage: remove the demo's earlier outputs in --out")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's choice, one "
                   "per core); 1 when another job shares the cores, as the threads would wait on each other")
    p.add_argument("--report", metavar="RESULTS_JSON", help="only print the tables of a results.json and exit")
    args = p.parse_args(argv)
    if args.report:
        if set(p.given(argv)) != {"report"}:
            p.error("--report only prints the tables of a results.json: it takes no other flag")
        print(read_results(args.report)[1])
        return
    if args.quick and (args.seeds > 1 or args.ablations or args.base != BASE):
        p.error("--quick runs one seed without ablations, from the shipped phase-1 model (no --base)")
    settings = SETTINGS["quick" if args.quick else "full"]
    out = args.out or ("runs/demo-quick" if args.quick else "runs/demo")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif (note := shared_cores_note()):
        print(note, flush=True)
    start_model = PHASE1 if args.quick else args.base
    if args.quick and not os.path.isfile(os.path.join(PHASE1, "phase2_set.jsonl")):  # train_sft.py cannot make it
        raise InputError(f"--quick starts from the shipped phase-1 model and its phase-2 set, {PHASE1} with "
                         "phase2_set.jsonl, and they are missing; restore them from the repository (git checkout -- "
                         "checkpoints/toy-phase1), or run the full demo without --quick, which makes its own")
    if not os.path.exists(start_model):
        raise InputError(f"no model at {start_model}; train one with: python train_sft.py --out {start_model}")
    read_checkpoint(start_model)  # a folder of the wrong kind (a train_rl.py run, say) is named as such
    earlier = check_out_folder(out, DEMO_FILES, resume=not args.fresh, overwrite=args.fresh, what="demo run",
                               again="run the same demo command again (or give another --out)")
    check_writable(os.path.join(out, "demo.json"))  # a folder it can write in (made here), before anything goes
    remove_names(out, earlier)
    claim_out_dir(out, run_stamp(start_model, settings))
    t0 = time.perf_counter()

    banner("toy problems (train/test splits, deterministic)")
    data = os.path.join(out, "data")
    train, test = os.path.join(data, "toy_train.jsonl"), os.path.join(data, "toy_test.jsonl")
    if not (os.path.isfile(train) and os.path.isfile(test)):
        run("tasks.py", tasks, ["--out", data, "--test-per-level", str(settings["test_per_level"])])
    if args.quick:
        quick(out, test, settings, t0)
        return

    seeds, ablations = list(range(args.seeds)), args.ablations or args.seeds > 1
    models = {seed: seed_stages(seed, out, args.base, (train, test), settings, ablations) for seed in seeds}
    banner(f"evaluation on the held-out test set ({settings['test_samples']} samples per problem)")
    base = evaluate({"base": args.base}, test, settings, os.path.join(out, "base_eval.json"))["base"]
    results = {"seeds": seeds, "runs": []}
    for seed in seeds:
        figures = evaluate(models[seed], test, settings, os.path.join(out, f"seed{seed}", "eval.json"))
        results["runs"].append({"seed": seed, "rows": {"base": row(base), **{n: row(s) for n, s in figures.items()}}})
    write_json(results, os.path.join(out, "results.json"))

    banner("plots")
    logs = {name: [plots.read_log(os.path.join(out, f"seed{s}", name, "log.jsonl")) for s in seeds]
            for name in models[seeds[0]]}
    phase1_steps = max(r["step"] + 1 for r in logs["phase1"][0])
    plots.plot_training(logs, os.path.join(out, "training_curves.png"),
                        starts={name: 0 if name == "phase1" else phase1_steps for name in logs})
    plots.plot_tradeoff(results, os.path.join(out, "tradeoff.png"))
    write_text(os.path.join(out, "results.md"), report(results) + "\n")
    banner(f"results: held-out test set, {settings['test_samples']} samples per problem, T 0.6, top-p 0.95; "
           f"{len(seeds)} seed(s)" + (", mean ± sd over seeds" if len(seeds) > 1 else ""))
    print(report(results))
    for name, per_seed in logs.items():
        print(f"{name} seconds per step: " + time_breakdown([rec for rec in per_seed[0] if "time_total" in rec]))
    shipped = {r["seed"]: r["rows"] for r in read_json(SHIPPED)["runs"]} if os.path.isfile(SHIPPED) else {}
    for seed_run in results["runs"]:  # the check of reproducibility, for every seed the shipped file has
        seed, rows = seed_run["seed"], seed_run["rows"]
        if seed in shipped:
            same = all(shipped[seed].get(name) == figures for name, figures in rows.items())
            print(f"seed {seed}: the same figures as in {os.path.relpath(SHIPPED)}: " + ("yes" if same else
                  "NO (a run repeats bit for bit only on the machine and thread count that made the file: another CPU "
                  "rounds differently, and over hundreds of steps that gives other figures, as another seed would; the "
                  "six seeds' spread in README.md is the yardstick)"))
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min; everything is in {out}/")


def quick(out, test, settings, t0):
    """--quick: the headline of the method, phase 2, from the shipped seed-0 phase-1 model and its set."""
    banner("phase 2: PPO on the shipped phase-1 model's small set, to shorten responses")
    print("skipped, shipped instead: the base model's training, phase 1 and the choice of the phase-2 set (seed 0 "
          f"of `python demo.py`, with 32 problems it solves 3 times in 8, in {os.path.relpath(PHASE1)}); "
          "`python demo.py` runs every stage")
    print("reading the step lines: reward, acc and len are the step's training batch (--prompts-per-step problems "
          "of the hard phase-2 set x --samples-per-prompt samples), noisy from step to step and longer than the "
          "held-out mean below; the first --critic-warmup-steps steps train the critic alone (ent -, clip -, kl 0); "
          "the shortening shows in len's trend, and in the held-out table at the end")
    phase2 = rl_phase(os.path.join(out, "phase2"), ["--phase", "2", "--init", PHASE1, "--data",
                                                    os.path.join(PHASE1, "phase2_set.jsonl"), "--eval-every", "0",
                                                    *QUICK_SCHEDULE], settings["phase2_steps"])
    banner(f"evaluation on {5 * settings['test_per_level']} held-out problems x {settings['test_samples']} samples")
    figures = evaluate({"phase1": PHASE1, "phase2": phase2}, test, settings, os.path.join(out, "eval.json"))
    results = {"seeds": [0], "runs": [{"seed": 0, "rows": {n: row(s) for n, s in figures.items()}}],
               "change_stderr": 100 * evaluation.paired_stderr(figures["phase1"]["pass_rates"],
                                                               figures["phase2"]["pass_rates"])}
    write_json(results, os.path.join(out, "results.json"))
    plots.plot_training({"phase2": [plots.read_log(os.path.join(out, "phase2", "log.jsonl"))]},
                        os.path.join(out, "training_curves.png"))
    plots.plot_tradeoff(results, os.path.join(out, "tradeoff.png"))
    table = quick_report(results)
    write_text(os.path.join(out, "results.md"), table + "\n")
    banner("results (accuracy ± its standard error over problems; the change's ± is the standard error of the "
           "per-problem difference)")
    print(table)
    print("\nwhat to compare with: README.md's 'Results on the toy' gives this run's figures on two machines (a run "
          "repeats bit for bit only on one CPU and thread count) and those of the full demo's phase 2 over six seeds; "
          "training_curves.png shows the training batches, not held-out problems")
    print(f"\nwrote {out}/training_curves.png and {out}/tradeoff.png; demo finished in "
          f"{(time.perf_counter() - t0) / 60:.1f} min")


def quick_report(results):
    """--quick's table: the shipped phase-1 model against the phase 2 just trained (results.json of --quick). The
    change's ± is the paired standard error (eval.paired_stderr); results.json files of --quick from before it
    was kept have none ("-")."""
    a, b = (results["runs"][0]["rows"][n] for n in ("phase1", "phase2"))
    se = "-" if results.get("change_stderr") is None else f"{results['change_stderr']:.1f}"
    # The order of the other tables (demo.report, eval.py): accuracy, then length
    lines = ["| | phase 1 (shipped) | phase 2 (just trained) | change |", "|---|---|---|---|",
             f"| accuracy % | {a['accuracy']:.1f} ± {a['accuracy_stderr']:.1f} | {b['accuracy']:.1f} ± "
             f"{b['accuracy_stderr']:.1f} | {b['accuracy'] - a['accuracy']:+.1f} (± {se}) |",
             f"| mean length (tokens) | {a['length']:.0f} | {b['length']:.0f} | "
             f"{100 * (b['length'] / a['length'] - 1):+.0f}% |"]
    lines += [f"| level {lv}: acc % / length | {a['levels'][lv]['accuracy']:.1f} / {a['levels'][lv]['length']:.0f} | "
              f"{b['levels'][lv]['accuracy']:.1f} / {b['levels'][lv]['length']:.0f} | "
              f"{b['levels'][lv]['accuracy'] - a['levels'][lv]['accuracy']:+.1f} / "
              f"{100 * (b['levels'][lv]['length'] / a['levels'][lv]['length'] - 1):+.0f}% |"
              for lv in sorted(a["levels"], key=int)]
    if "padding" in a and "padding" in b:  # (results.json files from before: none)
        change = " / ".join(f"{100 * (b['padding'][k] / a['padding'][k] - 1):+.0f}%" if a["padding"][k] else "-"
                            for k in tasks.PADDING)
        lines.append(f"| {' / '.join(tasks.PADDING)} per response | {padding_cell([a])} | {padding_cell([b])} | "
                     f"{change} |")
    return "\n".join(lines)


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


MAX_SEEDS = 100  # seed0 .. seed99: the folders a demo run owns
TMP = ".tmp.json"  # eval.py writes OUT.tmp.json, and keeps its responses beside it until it is done
written_by_eval = lambda out: [out, out + TMP, evaluation.progress_path(out + TMP)]
SEED_FILES = {**dict.fromkeys(["phase2_set.jsonl", select_problems.candidates_path("phase2_set.jsonl"),
                               *written_by_eval("eval.json")]),  # what a seed writes
              **dict.fromkeys(["phase1", "phase2", *ABLATIONS], runs.RUN_FILES)}
DEMO_FILES = {**dict.fromkeys(["demo.json", *written_by_eval("base_eval.json"), "results.json", "results.md",
                               "training_curves.png", "tradeoff.png"]),  # what the demo writes into --out
              "data": dict.fromkeys(["toy_train.jsonl", "toy_test.jsonl"]),
              **dict.fromkeys([f"seed{s}" for s in range(MAX_SEEDS)], SEED_FILES),
              **SEED_FILES,  # --quick's phase 2 and eval.json; and, before --seeds, one seed's files
              **dict.fromkeys([f"phase2_{name}" for name in ABLATIONS], runs.RUN_FILES)}  # (the ablations' old names)


def shared_cores_note():
    """A note when other work already holds the cores: torch starts a thread per core, and its threads wait on
    each other whenever one of them cannot run (two 2-step toy runs at once on 2 cores: 250 s each with 2
    threads, 4.7 s with 1; RESULTS.md). None when the cores look free (load average below half of them)."""
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if threads < 2 or load < cores / 2:
        return None
    return (f"note: the load average is {load:.1f} on {cores} cores: if other work is still running, torch's "
            f"{threads} threads will wait on each other, many times slower; stop it, or start again with --threads 1 "
            "(another thread count rounds differently, so the figures differ from the README's within the seeds' "
            "spread)")


def run_stamp(start_model, settings):
    """What the demo's results depend on besides the code: the starting model's bytes, the settings, and every
    train_rl.py flag's value under the toy presets (a changed flag default as well as a changed preset)."""
    files = sorted(f for f in os.listdir(start_model) if f == "config.json" or ".safetensors" in f)  # shards too
    flags = lambda phase: json.loads(json.dumps(vars(train_rl.config(phase=phase, **train_rl.preset(phase, "toy")))))
    return {"base_sha256": {f: file_sha256(os.path.join(start_model, f)) for f in files}, **settings,
            "presets": {f"phase{p}": flags(p) for p in (1, 2)}}


def differences(a, b, prefix=""):
    """The dotted names of the entries in which two stamps (JSON objects) differ, sorted."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [prefix]
    names = lambda key: differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
    return sorted(name for key in set(a) | set(b) for name in names(key))


def claim_out_dir(out, stamp):
    """Reuse --out only if it was made from the same base model and settings: stages of two different runs
    would otherwise be mixed silently (say, a new base model under an old phase 1)."""
    path = os.path.join(out, "demo.json")
    if os.path.isfile(path):
        old = read_json(path)
        if isinstance(old.get("presets"), dict):  # a flag added since, at the value that does what the old code did
            old["presets"] = {k: {**train_rl.NEW_FLAGS, **v} if isinstance(v, dict) else v
                              for k, v in old["presets"].items()}
        if (differ := differences(old, stamp)):
            named = ", ".join(differ[:3]) + (", ..." if len(differ) > 3 else "")
            raise InputError(f"{out} holds a demo run from another base model, settings or presets ({named} differ); "
                             "rerun with --fresh, or pick another --out")
        return
    write_json(stamp, path)


def time_breakdown(log):
    """Mean seconds per PPO step by stage (the log's time_* fields), as one line. A step's record that came
    back from its checkpoint on --resume has no time_wall (that is measured as the record is logged)."""
    stages = list(dict.fromkeys(k for rec in log for k in rec if k.startswith("time_")))
    mean = {k[5:]: statistics.mean(rec[k] for rec in log if k in rec) for k in stages}
    return ", ".join(f"{k} {v:.2f}" for k, v in mean.items())


if __name__ == "__main__":
    main()
