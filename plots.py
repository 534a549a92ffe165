"""
The demo's two pictures, as PNG (matplotlib is imported only here, and only when a plot is drawn):

- training curves: held-out accuracy and mean response length against step, for each train_rl.py log;
- the trade-off: accuracy against mean length of every evaluated checkpoint (eval.py --out JSON).

    python plots.py --logs runs/demo/phase1/log.jsonl runs/demo/phase2/log.jsonl --results runs/demo/results.json
"""

import os

from common import Parser, cli, read_json, read_jsonl


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: plotting needs matplotlib: pip install matplotlib") from None
    return plt


def read_log(path):
    return [rec for _, rec in read_jsonl(path, "train_rl.py log")]


def plot_training(logs, out, starts=None):
    """Two panels (accuracy, length) with one line per log; train-batch values faint, held-out bold.

    starts: {name: step on the shared x axis where that run begins}; by default runs follow each other
    (phase 2 starts where phase 1 ended)."""
    plt = pyplot()
    fig, (acc_ax, len_ax) = plt.subplots(1, 2, figsize=(11, 4))
    next_start = 0
    for name, records in logs.items():
        offset = starts[name] if starts and name in starts else next_start
        train = [r for r in records if "accuracy" in r]
        evals = [r for r in records if "eval_accuracy" in r]
        steps = lambda rs: [offset + r["step"] + 1 for r in rs]
        line = acc_ax.plot(steps(evals), [100 * r["eval_accuracy"] for r in evals], "o-", label=f"{name} held-out")[0]
        acc_ax.plot(steps(train), [100 * r["accuracy"] for r in train], alpha=0.3, color=line.get_color(),
                    label=f"{name} train batch")
        len_ax.plot(steps(evals), [r["eval_length"] for r in evals], "o-", color=line.get_color(),
                    label=f"{name} held-out")
        len_ax.plot(steps(train), [r["length_mean"] for r in train], alpha=0.3, color=line.get_color(),
                    label=f"{name} train batch")
        next_start = offset + max((r["step"] + 1 for r in records), default=0)
    acc_ax.set(xlabel="RL step", ylabel="accuracy (%)", title="accuracy")
    len_ax.set(xlabel="RL step", ylabel="mean response length (tokens)", title="response length")
    for ax in (acc_ax, len_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, out)


def plot_tradeoff(results, out):
    """Accuracy vs mean length, one point per checkpoint, per level in small markers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, r in results.items():
        s = r["all"]
        point = ax.errorbar(s["length_mean"], 100 * s["accuracy"], yerr=100 * s["accuracy_stderr"], fmt="o",
                            markersize=9, capsize=3, label=name)
        for lv, ls in r["levels"].items():
            ax.plot(ls["length_mean"], 100 * ls["accuracy"], "x", color=point[0].get_color(), alpha=0.6)
            ax.annotate(f"L{lv}", (ls["length_mean"], 100 * ls["accuracy"]), fontsize=7, alpha=0.6)
    ax.set(xlabel="mean response length (tokens)", ylabel="pass@1 (%)",
           title="accuracy vs length (large: all levels; x: per level)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


def save(fig, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)
    pyplot().close(fig)


@cli
def main(argv=None):
    p = Parser(description="Plot training curves and the accuracy/length trade-off.")
    p.add_argument("--logs", nargs="*", default=[], help="train_rl.py log.jsonl files, in order (phase 1, 2)")
    p.add_argument("--names", nargs="*", default=None, help="a name per log (default: the run folder names)")
    p.add_argument("--results", default=None, help="eval.py --out JSON for the trade-off plot")
    p.add_argument("--out-dir", default=".", help="folder for training_curves.png and tradeoff.png")
    args = p.parse_args(argv)
    if args.logs:
        names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(x))) for x in args.logs]
        plot_training({n: read_log(x) for n, x in zip(names, args.logs)}, os.path.join(args.out_dir, "training_curves.png"))
    if args.results:
        plot_tradeoff(read_json(args.results)["results"], os.path.join(args.out_dir, "tradeoff.png"))


if __name__ == "__main__":
    main()
