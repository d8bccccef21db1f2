"""The paper's Tables 2, 3 and 4 and Fig. 8, reproduced small: on the digits, over seeds.

Every run is a `keras-convit train` process in its own folder under --output-dir (a finished
one is reused, so a killed reproduction continues where it stopped), with one recipe for all:
- Table 2 (sample efficiency): ConViT (row a) against its DeiT twin (row e, DeiT's layout at
  ConViT's width and heads) at the paper's five fractions, the epochs counted in whole-set
  epochs (the same images seen at every fraction, the paper's protocol);
- Table 3 (ablations): rows a-g, switching gating training, the convolutional init, GPSA
  training and GPSA itself;
- Table 4 (hard distillation): ConViT and DeiT at fraction 1, without and with a small CNN
  teacher trained first on the same training images;
- Fig. 8 (how much convolutional prior helps), at --sweep-fraction: the locality strength
  alpha of the convolutional init, and the number of GPSA blocks before the class token (0 is
  the DeiT twin), each with the validation accuracy at an early epoch (the paper's head start)
  and the test accuracy at the end; beside them the in-place ablation, the baseline that is
  not DeiT (docs/models.md).
The test split is fixed (`--split-seed`); the seeds change the initialisation, the shuffling
and the augmentation, and a run repeats exactly under its seed. Writes runs.csv (one line per
run), tables.md (mean +- standard deviation over the seeds, the paper's figures beside),
tables.png (Table 3) and sweeps.png (Table 2 and Fig. 8).

    KERAS_BACKEND=jax python examples/reproduce_tables.py   # 3 seeds: about 3 h on 2 cores
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

from keras_convit.presets import get_preset

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
# DeiT-S, ConViT-S: the paper's fractions (there is no 25%).
PAPER_TABLE_2 = {0.05: (34.8, 47.8), 0.1: (48.0, 59.6), 0.3: (66.1, 73.7), 0.5: (74.6, 78.2),
                 1.0: (79.9, 81.4)}  # fmt: skip
TABLE_2_ROWS = ("e", "a")
PAPER_TABLE_4 = {"e": (79.8, 80.9), "a": (82.2, 82.9)}  # DeiT-S, ConViT-S+
DISTILLED_ROWS = ("a", "e")
TEACHER_EPOCHS = 40

# Fig. 8 sweeps alpha in {0.01, 0.1, 1} and 0, 3, 6, 9 GPSA blocks of 12 on ConViT-S+; here the
# same alphas, and the digits model's GPSA blocks from none to all it has.
LOCALITY_STRENGTHS = (0.01, 0.1, 1.0)
DEFAULT_MODEL = get_preset("convit_digits")
GPSA_BLOCKS = tuple(range(DEFAULT_MODEL.architecture["local_up_to_layer"] + 1))
DEFAULT_LOCALITY_STRENGTH = 1.0  # keras_convit.ConViT's, the paper's
SWEEPS = ("alpha", "blocks", "baselines")
EARLY_EPOCH = 5  # of the default 50: a tenth of the run, after the 3-epoch warm-up
IN_PLACE = "in-place"


def alpha_variant(alpha):
    """The variant (a key of VARIANTS) of locality strength `alpha`: 1 is ConViT."""
    return "a" if alpha == DEFAULT_LOCALITY_STRENGTH else f"alpha{alpha:g}"


def blocks_variant(blocks):
    """The variant of `blocks` GPSA blocks: all of them is ConViT, none the DeiT twin."""
    return {GPSA_BLOCKS[-1]: "a", 0: "e"}.get(blocks, f"gpsa{blocks}")


def _variants():
    """Table 3's rows, the in-place ablation and the sweeps' points that are not one of them:
    {name: (label, settings)}."""
    variants = {**ROWS, IN_PLACE: ("in-place ablation", {"baseline": "in_place"})}
    for alpha in LOCALITY_STRENGTHS:
        variants.setdefault(
            alpha_variant(alpha),
            (f"alpha {alpha:g}", {"model_args": {"locality_strength": alpha}}),
        )
    for blocks in GPSA_BLOCKS:
        variants.setdefault(
            blocks_variant(blocks),
            (f"{blocks} GPSA blocks", {"model_args": {"local_up_to_layer": blocks}}),
        )
    return variants


VARIANTS = _variants()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any further flags go to every `keras-convit train` run.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[0.1, 1.0], help="Table 3's fractions."
    )
    parser.add_argument(
        "--table2-fractions",
        type=float,
        nargs="*",
        default=sorted(PAPER_TABLE_2),
        help="Further fractions of rows a and e (Table 2); none for only --fractions.",
    )
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=sorted(ROWS))
    parser.add_argument("--sweeps", nargs="*", choices=SWEEPS, default=list(SWEEPS))
    parser.add_argument("--sweep-fraction", type=float, default=0.1)
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
    planned = {}  # variant: fractions
    for row in args.rows:
        extra = args.table2_fractions if row in TABLE_2_ROWS else []
        planned[row] = sorted({*args.fractions, *extra})
    points = {
        "alpha": [alpha_variant(alpha) for alpha in LOCALITY_STRENGTHS],
        "blocks": [blocks_variant(blocks) for blocks in GPSA_BLOCKS],
        "baselines": ["e", IN_PLACE],
    }
    for sweep in args.sweeps:
        for variant in points[sweep]:
            fractions = planned.setdefault(variant, [])
            if args.sweep_fraction not in fractions:
                fractions.append(args.sweep_fraction)
    runs = []
    for variant, fractions in planned.items():
        for fraction in fractions:
            for seed in args.seeds:
                key = (variant, fraction, seed, False)
                runs.append((key, _flags(variant, fraction, seed, args)))
    if args.distillation:
        for row in (row for row in DISTILLED_ROWS if row in args.rows):
            for seed in args.seeds:
                flags = _flags(row, 1.0, seed, args) + ["--teacher", _teacher_path(args)]
                runs.append(((row, 1.0, seed, True), flags))
    return sorted(runs, key=lambda run: (run[0][0] not in DISTILLED_ROWS, run[0][3]))


def _flags(variant, fraction, seed, args):
    settings = VARIANTS[variant][1]
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
        **_history_figures(os.path.join(run_dir, "history.csv")),
    }


def _head_start(accuracy):
    """The validation accuracy at EARLY_EPOCH (or the last epoch of a shorter run) and at the
    end, from the run's per-epoch validation accuracies."""
    early = min(EARLY_EPOCH, len(accuracy))
    return {"early_epoch": early, "val_accuracy_early": accuracy[early - 1],
            "val_accuracy_final": accuracy[-1]}  # fmt: skip


def _history_figures(history_csv):
    """Mean validation accuracy over the first and the second half of the last quarter of the
    epochs (a run trained to convergence is flat there), and its head start."""
    with open(history_csv) as file:
        accuracy = [float(row["val_accuracy"]) for row in csv.DictReader(file)]
    last_quarter = accuracy[-max(2, len(accuracy) // 4) :]
    half = len(last_quarter) // 2
    return {
        "val_accuracy_last_quarter_start": statistics.fmean(last_quarter[:half] or last_quarter),
        "val_accuracy_last_quarter_end": statistics.fmean(last_quarter[half:]),
        **_head_start(accuracy),
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


def _summary(results, row, fraction, distilled=False, key="test_accuracy"):
    """(mean, standard deviation, count) of `key` (an accuracy) in %, or None."""
    values = [100 * r[key] for r in _runs(results, row, fraction, distilled)]
    if not values:
        return None
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread, len(values)


def _cell(summary):
    return "" if summary is None else f"{summary[0]:.1f} ± {summary[1]:.1f}"


def write_tables(results, output_dir, teacher_accuracy=None):
    """Writes runs.csv, tables.md, tables.png and sweeps.png; prints the tables. Returns the
    Markdown."""
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
    # Table 3 at the fractions its other rows ran at (rows a and e alone: at all of theirs).
    rows = sorted({r["row"] for r in results} & set(ROWS))
    ablations = [r for r in results if r["row"] in ROWS and r["row"] not in TABLE_2_ROWS]
    table_3_fractions = sorted({r["fraction"] for r in ablations}) or fractions
    lines += [
        "",
        "Table 3, ablations (train gating, conv init, train GPSA, use GPSA)",
        "",
        "| row | model | " + " | ".join(f"fraction {f:g}" for f in table_3_fractions)
        + " | paper full | paper 10% |",
        "|---|---|" + "---:|" * (len(table_3_fractions) + 2),
    ]  # fmt: skip
    for row in rows:
        cells = " | ".join(_cell(_summary(results, row, f)) for f in table_3_fractions)
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
    sweeps = _sweeps(results)
    for title, points in sweeps:
        lines += _sweep_table(results, title, points)
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(output_dir, "tables.md"), "w") as file:
        file.write(markdown)
    print(markdown)
    _plot(results, table_3_fractions, os.path.join(output_dir, "tables.png"))
    _plot_sweeps(results, sweeps, os.path.join(output_dir, "sweeps.png"))
    return markdown


def _sweeps(results):
    """[(title, [(label, variant, fraction)])] of Fig. 8's sweeps and the two baselines, each
    with the points that have runs, at the fraction where its non-default points ran."""
    present = {(r["row"], r["fraction"]) for r in results if not r["distilled"]}
    alphas = [(f"{alpha:g}", alpha_variant(alpha)) for alpha in LOCALITY_STRENGTHS]
    blocks = [(str(count), blocks_variant(count)) for count in GPSA_BLOCKS]
    baselines = [("DeiT twin", "e"), ("in-place ablation", IN_PLACE)]
    sweeps = []
    for title, points in (
        ("Fig. 8, locality strength alpha", alphas),
        ("Fig. 8, GPSA blocks", blocks),
        ("The two baselines", baselines),
    ):
        own = {variant for _, variant in points} - set(TABLE_2_ROWS)
        for fraction in sorted({f for variant, f in present if variant in own}):
            kept = [(label, v, fraction) for label, v in points if (v, fraction) in present]
            sweeps.append((f"{title} (fraction {fraction:g})", kept))
    return sweeps


def _sweep_table(results, title, points):
    """Markdown lines: the validation accuracy at the early epoch and the test accuracy at the
    end of each point of a sweep."""
    early = sorted({r["early_epoch"] for r in results})
    lines = [
        "",
        f"{title}: validation accuracy at epoch {'/'.join(map(str, early))} (the head start) "
        "and test accuracy at the end",
        "",
        "| point | variant | early validation | final test |",
        "|---|---|---:|---:|",
    ]
    for label, variant, fraction in points:
        head_start = _summary(results, variant, fraction, key="val_accuracy_early")
        final = _summary(results, variant, fraction)
        lines.append(f"| {label} | {variant} | {_cell(head_start)} | {_cell(final)} |")
    return lines


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
    rows = sorted({r["row"] for r in results} & set(ROWS))
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


def _plot_sweeps(results, sweeps, path):
    """Table 2 (test accuracy against the fraction) and each of Fig. 8's sweeps (early
    validation and final test accuracy against the point), mean ± std over the seeds."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing, so no plot: pip install matplotlib")
        return
    sweeps = [sweep for sweep in sweeps if sweep[0].startswith("Fig. 8")]
    table_2 = sorted({r["fraction"] for r in results if r["row"] in TABLE_2_ROWS})
    figure, axes = plt.subplots(1, 1 + len(sweeps), figsize=(4 * (1 + len(sweeps)), 3.6))
    axes = list(getattr(axes, "flat", [axes]))
    for row in TABLE_2_ROWS:
        points = [(f, _summary(results, row, f)) for f in table_2]
        points = [(f, summary) for f, summary in points if summary]
        axes[0].errorbar(
            [f for f, _ in points], [s[0] for _, s in points], yerr=[s[1] for _, s in points],
            marker="o", capsize=3, label=ROWS[row][0],
        )  # fmt: skip
    axes[0].set_xscale("log")
    axes[0].set_xlabel("fraction of the training images")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("Table 2", fontsize=9)
    axes[0].legend(fontsize=8)
    for axis, (title, points) in zip(axes[1:], sweeps, strict=True):
        positions = range(len(points))
        early = "/".join(map(str, sorted({r["early_epoch"] for r in results})))
        for key, name in (
            ("val_accuracy_early", f"validation, epoch {early}"),
            ("test_accuracy", "test, at the end"),
        ):
            summaries = [_summary(results, v, f, key=key) for _, v, f in points]
            axis.errorbar(
                positions, [s[0] for s in summaries], yerr=[s[1] for s in summaries],
                marker="o", capsize=3, label=name,
            )  # fmt: skip
        axis.set_xticks(list(positions), [label for label, _, _ in points])
        axis.set_ylabel("accuracy (%)")
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
