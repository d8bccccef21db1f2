"""The paper's Tables 2, 3 and 4, reproduced small: on the digits, over several seeds.

Every run is a `keras-convit train` process in its own folder under --output-dir (a finished
one is reused, so a killed reproduction continues where it stopped), with one recipe for all:
- Table 2 (sample efficiency): ConViT (row a) against its DeiT twin (row e, DeiT's layout at
  ConViT's width and heads) at each fraction, the epochs counted in whole-set epochs (the same
  images seen at every fraction, the paper's protocol);
- Table 3 (ablations): rows a-g, switching gating training, the convolutional init, GPSA
  training and GPSA itself;
- Table 4 (hard distillation): ConViT and DeiT at fraction 1, without and with a small CNN
  teacher trained first on the same training images.
The test split is fixed (`--split-seed`); the seeds change the initialisation, the shuffling
and the augmentation. Writes runs.csv (one line per run), tables.md (mean +- standard
deviation over the seeds, the paper's figures beside) and tables.png.

    KERAS_BACKEND=jax python examples/reproduce_tables.py   # 3 seeds: 90 min on 2 cores
    python examples/reproduce_tables.py --seeds 0 --rows a e --fractions 1.0 --epochs 5
"""

import argparse
import concurrent.futures
import csv
import json
import os
import statistics
import subprocess
import sys

# Table 3 of d'Ascoli et al. 2021: (train gating, conv init, train GPSA, use GPSA), as
# `keras-convit train` flags. Row e, "use GPSA" off, is DeiT itself: the DeiT twin.
FROZEN_GATING = {"trainable_gating": False}
NO_CONV_INIT = {"use_conv_init": False}
FROZEN_GPSA = {"trainable_gpsa": False}
ROWS = {
    "a": ("ConViT", {}),
    "b": ("frozen gating", {"model_args": FROZEN_GATING}),
    "c": ("no conv init", {"model_args": NO_CONV_INIT}),
    "d": ("frozen gating, no conv init", {"model_args": {**FROZEN_GATING, **NO_CONV_INIT}}),
    "e": ("DeiT twin", {"baseline": "deit"}),
    "f": ("frozen GPSA, conv init", {"model_args": {**FROZEN_GATING, **FROZEN_GPSA}}),
    "g": (
        "frozen GPSA, random init",
        {"model_args": {**FROZEN_GATING, **NO_CONV_INIT, **FROZEN_GPSA}},
    ),
}
# The paper's top-1 on ImageNet: Table 3 (ConViT-S+, full / 10%), Table 2 (ConViT-S against
# DeiT-S, 10% / 100%) and Table 4 (hard distillation from a RegNetY-16GF, none / hard).
PAPER_TABLE_3 = {"a": (82.2, 59.7), "b": (82.0, 57.4), "c": (81.4, 56.9), "d": (81.6, 54.6),
                 "e": (79.1, 47.8), "f": (78.6, 54.3), "g": (73.7, 44.8)}  # fmt: skip
PAPER_TABLE_2 = {0.1: (48.0, 59.6), 1.0: (79.9, 81.4)}  # DeiT, ConViT
PAPER_TABLE_4 = {"e": (79.8, 80.9), "a": (82.2, 82.9)}  # DeiT-S, ConViT-S+
DISTILLED_ROWS = ("a", "e")
TEACHER_EPOCHS = 40


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any further flags go to every `keras-convit train` run.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=sorted(ROWS))
    parser.add_argument("--no-distillation", dest="distillation", action="store_false")
    parser.add_argument("--epochs", type=int, default=None, help="Whole-set epochs per run.")
    parser.add_argument(
        "--image-size", type=int, default=None, help="Input side of the runs and the teacher."
    )
    parser.add_argument("--teacher-epochs", type=int, default=TEACHER_EPOCHS)
    parser.add_argument("--jobs", type=int, default=2, help="Runs at once.")
    parser.add_argument("--output-dir", default="runs/reproduce_tables")
    return parser.parse_known_args(argv)


def planned_runs(args):
    """[(key, flags)] of every run, key = (row, fraction, seed, distilled): ConViT and the
    DeiT twin first, then their distillation, then the other ablations."""
    runs = []
    for row in args.rows:
        for fraction in args.fractions:
            for seed in args.seeds:
                runs.append(((row, fraction, seed, False), _flags(row, fraction, seed, args)))
    if args.distillation:
        for row in (row for row in DISTILLED_ROWS if row in args.rows):
            for seed in args.seeds:
                flags = _flags(row, 1.0, seed, args) + ["--teacher", _teacher_path(args)]
                runs.append(((row, 1.0, seed, True), flags))
    return sorted(runs, key=lambda run: (run[0][0] not in DISTILLED_ROWS, run[0][3]))


def _flags(row, fraction, seed, args):
    settings = ROWS[row][1]
    flags = ["--fraction", f"{fraction:g}", "--seed", str(seed)]
    if args.epochs is not None:
        flags += ["--epochs", str(args.epochs)]
    if args.image_size is not None:
        flags += ["--image-size", str(args.image_size)]
    if "baseline" in settings:
        flags += ["--baseline", settings["baseline"]]
    if "model_args" in settings:
        flags += ["--model-args", json.dumps(settings["model_args"])]
    return flags + args.extra


def _run_dir(args, key):
    row, fraction, seed, distilled = key
    return os.path.join(
        args.output_dir, f"{row}-f{fraction:g}-s{seed}" + ("-distilled" if distilled else "")
    )


def _teacher_path(args):
    return os.path.join(args.output_dir, "teacher", "model.keras")


def train(key, flags, args):
    """The metrics of one run: read back if it finished before, else trained in a process."""
    run_dir = _run_dir(args, key)
    metrics_file = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(metrics_file):
        os.makedirs(args.output_dir, exist_ok=True)
        command = [sys.executable, "-m", "keras_convit", "train", *flags, "--verbose", "2"]
        with open(run_dir + ".log", "w") as log:
            done = subprocess.run(
                [*command, "--output-dir", run_dir], stdout=log, stderr=subprocess.STDOUT
            )
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): see {log.name}")
    with open(metrics_file) as file:
        metrics = json.load(file)
    return {
        "row": key[0],
        "fraction": key[1],
        "seed": key[2],
        "distilled": key[3],
        "test_accuracy": metrics["test_accuracy"],
        "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "passes_per_epoch": metrics.get("passes_per_epoch", 1.0),
        "train_size": metrics["train_size"],
        "train_seconds": metrics["train_seconds"],
        **_convergence(os.path.join(run_dir, "history.csv")),
    }


def _convergence(history_csv):
    """Mean validation accuracy over the first and the second half of the last quarter of the
    epochs: a run trained to convergence is flat there."""
    with open(history_csv) as file:
        accuracy = [float(row["val_accuracy"]) for row in csv.DictReader(file)]
    last_quarter = accuracy[-max(2, len(accuracy) // 4) :]
    half = len(last_quarter) // 2
    return {
        "val_accuracy_last_quarter_start": statistics.fmean(last_quarter[:half] or last_quarter),
        "val_accuracy_last_quarter_end": statistics.fmean(last_quarter[half:]),
    }


def train_teacher(args):
    """Trains the CNN teacher on the digits' training images (the runs' split) once, without
    augmentation: the light set's crops cost this CNN 10 points of test accuracy."""
    path = _teacher_path(args)
    if os.path.exists(path):
        return
    from keras_convit.data import load_dataset
    from keras_convit.presets import get_preset
    from keras_convit.training import cnn_teacher

    side = args.image_size or get_preset("convit_digits").input_size[0]
    data = load_dataset("digits", image_size=side, batch_size=32, augmentation="none")
    teacher = cnn_teacher((side, side, 3), data.num_classes)
    teacher.fit(data.train, epochs=args.teacher_epochs, verbose=2, shuffle=False)
    accuracy = teacher.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    teacher.save(path)
    with open(os.path.join(os.path.dirname(path), "metrics.json"), "w") as file:
        json.dump({"test_accuracy": accuracy, "epochs": args.teacher_epochs}, file)
    print(f"Teacher: test accuracy {accuracy:.4f}", flush=True)


def main(argv=None):
    args, extra = parse_args(argv)
    args.extra = extra
    runs = planned_runs(args)
    if any(key[3] for key, _ in runs):
        train_teacher(args)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda run: train(*run, args), runs))
    teacher = None
    if os.path.exists(os.path.join(os.path.dirname(_teacher_path(args)), "metrics.json")):
        with open(os.path.join(os.path.dirname(_teacher_path(args)), "metrics.json")) as file:
            teacher = json.load(file)["test_accuracy"]
    write_tables(results, args.output_dir, teacher)
    return results


def _runs(results, row, fraction, distilled=False):
    return [
        r
        for r in results
        if (r["row"], r["fraction"], r["distilled"]) == (row, fraction, distilled)
    ]


def _summary(results, row, fraction, distilled=False):
    """(mean, standard deviation, count) of the test accuracy in %, or None."""
    values = [100 * r["test_accuracy"] for r in _runs(results, row, fraction, distilled)]
    if not values:
        return None
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread, len(values)


def _cell(summary):
    return "" if summary is None else f"{summary[0]:.1f} ± {summary[1]:.1f}"


def write_tables(results, output_dir, teacher_accuracy=None):
    """Writes runs.csv, tables.md and tables.png; prints the tables. Returns the Markdown."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "runs.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    fractions = sorted({r["fraction"] for r in results})
    seeds = sorted({r["seed"] for r in results})
    epochs = sorted({r["epochs"] for r in results})
    lines = [
        f"Test accuracy (%) on the digits' fixed test split, mean ± standard deviation over "
        f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); {'/'.join(map(str, epochs))} "
        "whole-set epochs per run. The paper's ImageNet top-1 beside.",
        "",
        "Table 2, sample efficiency (ConViT against its DeiT twin)",
        "",
        "| fraction | train images | DeiT twin | ConViT | gap | paper DeiT-S | paper ConViT-S |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fraction in fractions:
        deit, convit = _summary(results, "e", fraction), _summary(results, "a", fraction)
        if deit is None or convit is None:
            continue
        size = next(r["train_size"] for r in results if r["fraction"] == fraction)
        paper = PAPER_TABLE_2.get(fraction, ("", ""))
        lines.append(
            f"| {fraction:g} | {size} | {_cell(deit)} | {_cell(convit)} | "
            f"{convit[0] - deit[0]:+.1f} | {paper[0]} | {paper[1]} |"
        )
    lines += [
        "",
        "Table 3, ablations (train gating, conv init, train GPSA, use GPSA)",
        "",
        "| row | model | " + " | ".join(f"fraction {f:g}" for f in fractions)
        + " | paper full | paper 10% |",
        "|---|---|" + "---:|" * (len(fractions) + 2),
    ]  # fmt: skip
    for row in sorted({r["row"] for r in results}):
        cells = " | ".join(_cell(_summary(results, row, f)) for f in fractions)
        full, tenth = PAPER_TABLE_3[row]
        lines.append(f"| {row} | {ROWS[row][0]} | {cells} | {full} | {tenth} |")
    distilled = [row for row in DISTILLED_ROWS if _summary(results, row, 1.0, True)]
    if distilled:
        teacher = f"{100 * teacher_accuracy:.1f}%" if teacher_accuracy is not None else "?"
        lines += [
            "",
            f"Table 4, hard distillation at fraction 1 (CNN teacher: {teacher} test accuracy)",
            "",
            "| model | no distillation | hard distillation | paper none | paper hard |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in distilled:
            plain, hard = _summary(results, row, 1.0), _summary(results, row, 1.0, True)
            paper = PAPER_TABLE_4[row]
            lines.append(
                f"| {ROWS[row][0]} | {_cell(plain)} | {_cell(hard)} | {paper[0]} | {paper[1]} |"
            )
    lines += _convergence_table(results)
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(output_dir, "tables.md"), "w") as file:
        file.write(markdown)
    print(markdown)
    _plot(results, fractions, os.path.join(output_dir, "tables.png"))
    return markdown


def _convergence_table(results):
    """Markdown lines: each model's validation accuracy over the two halves of the last quarter
    of its epochs at fraction 1, flat where it has converged."""
    models = sorted({(r["row"], r["distilled"]) for r in results if r["fraction"] == 1.0})
    if not models:
        return []
    lines = [
        "",
        "Convergence at fraction 1: mean validation accuracy (%) over the first and the second "
        "half of the last quarter of the epochs",
        "",
        "| model | first half | second half | change |",
        "|---|---:|---:|---:|",
    ]
    for row, distilled in models:
        runs = _runs(results, row, 1.0, distilled)
        start = statistics.fmean(100 * r["val_accuracy_last_quarter_start"] for r in runs)
        end = statistics.fmean(100 * r["val_accuracy_last_quarter_end"] for r in runs)
        name = f"{row} {ROWS[row][0]}" + (", distilled" if distilled else "")
        lines.append(f"| {name} | {start:.1f} | {end:.1f} | {end - start:+.1f} |")
    return lines


def _plot(results, fractions, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing, so no plot: pip install matplotlib")
        return
    rows = sorted({r["row"] for r in results})
    figure, axis = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(fractions)
    lowest = 100.0
    for index, fraction in enumerate(fractions):
        summaries = [_summary(results, row, fraction) or (0.0, 0.0, 0) for row in rows]
        lowest = min([lowest] + [mean - spread for mean, spread, count in summaries if count])
        axis.bar(
            [position + index * width for position in range(len(rows))],
            [summary[0] for summary in summaries],
            width,
            yerr=[summary[1] for summary in summaries],
            capsize=3,
            label=f"fraction {fraction:g}",
        )
    axis.set_xticks(
        [position + width * (len(fractions) - 1) / 2 for position in range(len(rows))],
        [f"{row}\n" + ROWS[row][0].replace(", ", ",\n") for row in rows],
        fontsize=7,
    )
    # From below the lowest bar: the differences are a few points, not tens.
    axis.set_ylim(max(0.0, 5 * (lowest // 5) - 5), 100)
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Table 3 on the digits (mean ± std over seeds)")
    axis.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
