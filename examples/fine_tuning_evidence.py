"""Does pretraining help? Fine-tuning measured on data that ships with the project.

The demo model (convit_digits) is pretrained on the digits 0-4, then trained on the digits 5-9
at several fractions of their training images in four ways, with the same budget (epochs,
batch, steps: `--fraction` keeps whole-set epochs) and over several seeds:
- scratch: random weights, the small-data recipe;
- fine-tune: `--weights PRETRAINED` (a new head), the fine-tuning recipe;
- fine-tune, scratch rate: the same at the peak rate of the scratch run of the same fraction
  and seed (read from its run.json), which tells the weights' effect from the recipe's lower rate;
- layer decay: the same with `--layer-decay 0.75`;
- linear probe: `--weights PRETRAINED --freeze-backbone` (only the head trains).
Every run is a `keras-convit train` process in its own folder under --output-dir (a finished one
is reused). The two digit sets are written as image folders (train/ and test/, the digits'
fixed split) under --output-dir/data. Writes runs.csv, table.md (mean +- sd of the test accuracy
over the seeds) and fine_tuning.png.

    KERAS_BACKEND=jax python examples/fine_tuning_evidence.py           # 46 runs, about an hour
    python examples/fine_tuning_evidence.py --seeds 0 --fractions 1.0 --epochs 2 --jobs 1
"""

import argparse
import concurrent.futures
import csv
import json
import os
import statistics
import subprocess
import sys

import numpy as np

METHODS = {
    "scratch": [],
    "fine-tune": ["--weights", "{pretrained}"],
    "fine-tune, scratch rate": ["--weights", "{pretrained}", "--learning-rate", "{scratch_rate}"],
    "layer decay 0.75": ["--weights", "{pretrained}", "--layer-decay", "0.75"],
    "linear probe": ["--weights", "{pretrained}", "--freeze-backbone"],
}
PRETRAIN_CLASSES, TRANSFER_CLASSES = range(0, 5), range(5, 10)
MODEL = "convit_digits"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 1.0])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=20, help="Whole-set epochs of each run.")
    parser.add_argument("--pretrain-epochs", type=int, default=40)
    # 5% of the digits 5-9 is 30 training images: a batch of 16 still makes a step.
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pretrain-batch-size", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=2, help="Runs at once.")
    parser.add_argument("--output-dir", default="runs/fine_tuning_evidence")
    return parser.parse_args(argv)


def write_digit_folders(root):
    """The digits of `PRETRAIN_CLASSES` and of `TRANSFER_CLASSES` as two folders of PNGs,
    root/pretrain and root/transfer, each with train/ and test/ (the digits' own split)."""
    from PIL import Image

    from keras_convit.data import load_digits
    from keras_convit.presets import get_preset

    done = os.path.join(root, "complete")
    if os.path.exists(done):
        return
    side = get_preset(MODEL).input_size[0]
    splits = dict(zip(("train", "test"), load_digits(image_size=side), strict=True))
    for name, classes in (("pretrain", PRETRAIN_CLASSES), ("transfer", TRANSFER_CLASSES)):
        for split, (images, labels) in splits.items():
            for label in classes:
                folder = os.path.join(root, name, split, str(label))
                os.makedirs(folder, exist_ok=True)
                for index in np.flatnonzero(labels == label):
                    pixels = images[index].astype("uint8")
                    Image.fromarray(pixels).save(os.path.join(folder, f"{index:04d}.png"))
    open(done, "w").close()


def train(run_dir, flags):
    """The metrics of one `keras-convit train` run: read back if it finished before."""
    metrics_file = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(metrics_file):
        command = [sys.executable, "-m", "keras_convit", "train", *flags, "--verbose", "2"]
        with open(run_dir + ".log", "w") as log:
            done = subprocess.run(
                [*command, "--output-dir", run_dir], stdout=log, stderr=subprocess.STDOUT
            )
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): see {log.name}")
    with open(metrics_file) as file:
        return json.load(file)


def run_directory(args, method, fraction, seed):
    """The folder of one transfer run, e.g. runs/.../layer-decay-075-f0.05-s1."""
    slug = method.replace(" ", "-").replace(".", "").replace(",", "")
    return os.path.join(args.output_dir, f"{slug}-f{fraction:g}-s{seed}")


def planned_runs(args, pretrained):
    """[(run directory, flags, row)] of every transfer run."""
    runs = []
    for method in args.methods:
        for fraction in args.fractions:
            for seed in args.seeds:
                flags = [flag.replace("{pretrained}", pretrained) for flag in METHODS[method]]
                flags += ["--dataset", os.path.join(args.output_dir, "data", "transfer")]
                flags += ["--model", MODEL, "--fraction", f"{fraction:g}", "--seed", str(seed)]
                flags += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
                run_dir = run_directory(args, method, fraction, seed)
                runs.append(
                    (run_dir, flags, {"method": method, "fraction": fraction, "seed": seed})
                )
    return runs


def _with_scratch_rate(run, args):
    """The flags of `run` with "{scratch_rate}" replaced by the peak learning rate that its
    scratch twin (same fraction and seed) resolved."""
    _, flags, row = run
    if "{scratch_rate}" not in flags:
        return flags
    twin = run_directory(args, "scratch", row["fraction"], row["seed"])
    with open(os.path.join(twin, "run.json")) as file:
        rate = json.load(file)["settings"]["learning_rate"]
    return [str(rate) if flag == "{scratch_rate}" else flag for flag in flags]


def main(argv=None):
    args = parse_args(argv)
    if "fine-tune, scratch rate" in args.methods and "scratch" not in args.methods:
        raise SystemExit("--methods: 'fine-tune, scratch rate' needs 'scratch' beside it.")
    write_digit_folders(os.path.join(args.output_dir, "data"))
    pretrained = os.path.join(args.output_dir, "pretrain")
    pretrain_flags = ["--dataset", os.path.join(args.output_dir, "data", "pretrain")]
    pretrain_flags += ["--model", MODEL, "--epochs", str(args.pretrain_epochs)]
    pretrain_flags += ["--batch-size", str(args.pretrain_batch_size)]
    pretrain = train(pretrained, pretrain_flags)
    print(f"Pretrained on digits 0-4: test accuracy {pretrain['test_accuracy']:.4f}", flush=True)

    runs = planned_runs(args, pretrained)
    # The runs at the scratch rate read it from their scratch twins: those finish first.
    later = [run for run in runs if "{scratch_rate}" in run[1]]
    metrics = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for batch in ([run for run in runs if run not in later], later):
            done = pool.map(lambda run: train(run[0], _with_scratch_rate(run, args)), batch)
            metrics.update(zip((run[0] for run in batch), done, strict=True))
    metrics = [metrics[run_dir] for run_dir, _, _ in runs]
    rows = [
        {
            **row,
            "test_accuracy": result["test_accuracy"],
            "train_size": result["train_size"],
            "train_seconds": result["train_seconds"],
        }
        for (_, _, row), result in zip(runs, metrics, strict=True)
    ]
    write_results(rows, args, pretrain["test_accuracy"])
    return rows


def write_results(rows, args, pretrain_accuracy):
    """runs.csv, table.md and fine_tuning.png under --output-dir."""
    with open(os.path.join(args.output_dir, "runs.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cells = {}
    for row in rows:
        cells.setdefault((row["method"], row["fraction"]), []).append(100 * row["test_accuracy"])
    sizes = {row["fraction"]: row["train_size"] for row in rows}
    header = "| method | " + " | ".join(f"{100 * f:g}% ({sizes[f]} images)" for f in args.fractions)
    lines = [
        f"Test accuracy (%) on the digits 5-9, mean ± sd over seeds {args.seeds}; "
        f"{args.epochs} whole-set epochs of batch {args.batch_size} each; pretrained on the "
        f"digits 0-4 ({args.pretrain_epochs} epochs, test accuracy "
        f"{100 * pretrain_accuracy:.1f}%).",
        "",
        header + " |",
        "|---" * (len(args.fractions) + 1) + "|",
    ]
    for method in args.methods:
        values = [_mean_sd(cells[(method, f)]) for f in args.fractions]
        lines.append(f"| {method} | " + " | ".join(values) + " |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.output_dir, "table.md"), "w") as file:
        file.write(table)
    print(table, flush=True)
    _plot(cells, args)


def _mean_sd(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {sd:.1f}"


def _plot(cells, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in args.methods:
        means = [statistics.fmean(cells[(method, f)]) for f in args.fractions]
        sds = [
            statistics.stdev(cells[(method, f)]) if len(cells[(method, f)]) > 1 else 0.0
            for f in args.fractions
        ]
        axis.errorbar([100 * f for f in args.fractions], means, yerr=sds, marker="o", capsize=3,
                      label=method)  # fmt: skip
    axis.set_xscale("log")
    axis.set_xticks([100 * f for f in args.fractions], [f"{100 * f:g}" for f in args.fractions])
    axis.minorticks_off()
    axis.set_xlabel("share of the digits 5-9 training images (%)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("convit_digits on digits 5-9, pretrained on 0-4")
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(args.output_dir, "fine_tuning.png"), dpi=120)


if __name__ == "__main__":
    main()
