"""
The demo's two pictures, as PNG (matplotlib is imported only here, and only when a plot is drawn):

- training curves: held-out accuracy and mean response length against step for each train_rl.py run, one
  thin line per seed and their mean in bold, in which a seed that stopped early counts with its last value
  (train-batch figures when a run has no held-out evaluation);
- the trade-off: accuracy against mean length of every evaluated model, mean over seeds with ± sd bars.

    python plots.py --logs runs/demo/seed0/phase1/log.jsonl runs/demo/seed0/phase2/log.jsonl --results runs/demo/results.json
"""

import bisect
import os
import statistics

from common import InputError, Parser, atomic_write, cannot_create, check_outside_run, cli, read_jsonl, repeated


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: plotting needs matplotlib: pip install matplotlib") from None
    return plt


def read_log(path):
    """The step records of a train_rl.py log.jsonl; one InputError for a file that holds none or something else.
    A last line cut off before its newline (a run killed while logging) is left out, as --resume does."""
    records = read_jsonl(path, "train_rl.py log", torn_tail_ok=True)
    if not records:
        raise InputError(f"{path}: no step logged yet")
    for where, rec in records:  # a step's record, or the held-out evaluation before step 0 (step -1)
        keys = set(rec) if isinstance(rec, dict) else set()
        figures = {"accuracy", "length_mean"} <= keys or {"eval_accuracy", "eval_length"} <= keys
        if not figures or not isinstance(rec.get("step"), int):
            raise InputError(f"{where}: not a train_rl.py log record (step, accuracy, length_mean, ...)")
    return [rec for _, rec in records]


def mean_sd(xs):
    """(mean, sample standard deviation) of a list; the deviation of one value is 0."""
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def curve(records, held_key, train_key):
    """(steps, values) of a log: the held-out figure if the run evaluated one, else the train batch's. A figure
    not measured at a step (None: the actor's on the critic's warm-up steps) is left out."""
    held = [r for r in records if r.get(held_key) is not None]
    rows, key = (held, held_key) if held else ([r for r in records if r.get(train_key) is not None], train_key)
    return [r["step"] + 1 for r in rows], [r[key] for r in rows]


def mean_curve(series):
    """(steps, means) over seeds' curves [(steps, values), ...]: at every step some seed has, the mean of each
    seed's latest value. Phase 2 stops at a different step on each seed; a seed that has stopped counts with
    its last value, that of the model it hands over, so the mean runs to the last seed's end."""
    first = max(steps[0] for steps, _ in series)
    union = sorted({s for steps, _ in series for s in steps if s >= first})
    latest = lambda steps, values, at: values[bisect.bisect_right(steps, at) - 1]
    return union, [statistics.fmean(latest(steps, values, at) for steps, values in series) for at in union]


def plot_training(logs, out, starts=None):
    """Two panels (accuracy, length); logs: {run name: [one log per seed]}. starts: {name: the step on the
    shared x axis where that run begins} (default: runs follow each other)."""
    plt = pyplot()
    fig, (acc_ax, len_ax) = plt.subplots(1, 2, figsize=(11, 4))
    next_start = 0
    for name, per_seed in logs.items():
        offset = starts[name] if starts and name in starts else next_start
        color = None
        for ax, held_key, train_key, scale in ((acc_ax, "eval_accuracy", "accuracy", 100),
                                                (len_ax, "eval_length", "length_mean", 1)):
            series = [curve(records, held_key, train_key) for records in per_seed]
            for steps, values in series:  # each seed, thin
                line = ax.plot([offset + s for s in steps], [scale * v for v in values], alpha=0.3, lw=1, color=color)
                color = line[0].get_color()
            steps, mean = mean_curve(series)
            ax.plot([offset + s for s in steps], [scale * v for v in mean], "o-", ms=3, color=color,
                    label=f"{name}" + (f" (mean of {len(series)} seeds)" if len(series) > 1 else ""))
        next_start = offset + max(r["step"] + 1 for r in per_seed[0])
    held = {any(r.get("eval_accuracy") is not None for r in log) for per_seed in logs.values() for log in per_seed}
    source = ("held-out problems" if held == {True} else "training batches" if held == {False} else
              "held out where evaluated, else training batches")  # as curve() picks them
    acc_ax.set(xlabel="RL step", ylabel="accuracy (%)", title=f"accuracy ({source})")
    len_ax.set(xlabel="RL step", ylabel="mean response length (tokens)", title=f"response length ({source})")
    for ax in (acc_ax, len_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, out)


def plot_tradeoff(results, out):
    """Accuracy vs length of each row of a results.json (demo.py): mean over seeds, ± sd bars, and each
    level's mean in small markers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    runs = results["runs"]
    for name in runs[0]["rows"]:
        (x, dx), (y, dy) = (mean_sd([r["rows"][name][key] for r in runs]) for key in ("length", "accuracy"))
        point = ax.errorbar(x, y, xerr=dx, yerr=dy, fmt="o", markersize=9, capsize=3, label=name)
        for lv in runs[0]["rows"][name]["levels"]:
            lx = statistics.fmean(r["rows"][name]["levels"][lv]["length"] for r in runs)
            ly = statistics.fmean(r["rows"][name]["levels"][lv]["accuracy"] for r in runs)
            ax.plot(lx, ly, "x", color=point[0].get_color(), alpha=0.6)
            ax.annotate(f"L{lv}", (lx, ly), fontsize=7, alpha=0.6)
    seeds = f"mean ± sd over {len(runs)} seeds; " if len(runs) > 1 else ""
    ax.set(xlabel="mean response length (tokens)", ylabel="pass@1 (%)",
           title=f"accuracy vs length ({seeds}x: per level)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


def save(fig, out):
    atomic_write(out, lambda f: fig.savefig(f, dpi=110, format="png"), mode="wb")
    pyplot().close(fig)


def log_names(paths):
    """Each log's name in the legend: its run folder's name, with as many folders above it as it takes to tell
    the logs apart (seed0/phase2 and seed1/phase2)."""
    folders = [os.path.dirname(os.path.abspath(x)).split(os.sep) for x in paths]
    for k in range(1, max(map(len, folders), default=0) + 1):
        names = ["/".join(f[-k:]) for f in folders]
        if len(set(names)) == len(names):
            return names
    return [os.path.abspath(x) for x in paths]  # the same log twice: refused by the caller


@cli
def main(argv=None):
    p = Parser(description="Plot training curves and the accuracy/length trade-off.")
    p.add_argument("--logs", nargs="*", default=[], help="train_rl.py log.jsonl files, drawn one after another on "
                   "the step axis in the order given (phase 1, then phase 2; the demo draws its seeds over each other)")
    p.add_argument("--names", nargs="*", default=None, help="a name per log (default: the run folder names, with "
                   "the folders above them where two are alike: seed0/phase2, seed1/phase2)")
    p.add_argument("--results", default=None, help="a demo.py results.json, for the trade-off plot")
    p.add_argument("--out-dir", default=".", help="folder for training_curves.png and tradeoff.png")
    args = p.parse_args(argv)
    if not args.logs and not args.results:
        p.error("nothing to plot: give --logs, --results or both")
    if args.names is not None and len(args.names) != len(args.logs):
        p.error(f"--names gives {len(args.names)} names for {len(args.logs)} --logs; give one per log")
    names = args.names or log_names(args.logs)
    if (twice := repeated(names)) is not None:  # a legend's runs are keyed by name: one would hide another
        p.error(f"{'--names' if args.names else '--logs'} {twice} is given twice: each log needs its own name")
    check_outside_run(args.out_dir, "--out-dir", "folder")
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out-dir {args.out_dir}: cannot create it ({cannot_create(args.out_dir, e)})") from None
    results = None
    if args.results:  # read before any plotting, so that a wrong file is refused first
        import demo  # its reader refuses a file that is not a results.json in one line

        results, _ = demo.read_results(args.results)
    if args.logs:
        plot_training({n: [read_log(x)] for n, x in zip(names, args.logs)},
                      os.path.join(args.out_dir, "training_curves.png"))
    if results is not None:
        plot_tradeoff(results, os.path.join(args.out_dir, "tradeoff.png"))


if __name__ == "__main__":
    main()
