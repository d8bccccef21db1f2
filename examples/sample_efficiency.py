"""Sample efficiency, reproduced small (in the spirit of the paper's Table 2).

Trains ConViT and its DeiT twin (DeiT's layout at the same width and heads: the `*_deit`
preset) with the same recipe on several fractions of each class of the training set, each
epoch as long as one over the whole set (the same images seen at every fraction, the paper's
protocol), and writes a table (results.md, results.csv) and a plot (sample_efficiency.png) of
the test accuracy on the fixed test split. Each run is a `keras-convit train` run in its own
folder: a finished one is reused, a killed one resumes. For several seeds and the ablations,
see examples/reproduce_tables.py.

    KERAS_BACKEND=jax python examples/sample_efficiency.py                  # the digits
    python examples/sample_efficiency.py --fractions 0.05 0.1 1.0 --epochs 20
    python examples/sample_efficiency.py --dataset cifar10 --image-size 32 --epochs 50 \\
        --model-args '{"patch_size": 4}'
"""

import argparse
import csv
import json
import os

from keras_convit.job import RunDirectoryError, TrainConfig, run_training


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", help="As `keras-convit train --dataset`.")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory.")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--epochs", type=int, default=None, help="Epochs at fraction 1.")
    parser.add_argument("--no-scale-epochs", dest="scale_epochs", action="store_false")
    parser.add_argument("--model", default=None, help="As `keras-convit train --model`.")
    parser.add_argument("--model-args", type=json.loads, default={}, help="JSON, as the CLI.")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", "--lr", type=float, default=None)
    parser.add_argument("--augmentation", choices=("deit", "light", "none"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/sample_efficiency")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    return parser.parse_args(argv)


def run_one(config, output_dir, verbose):
    """The metrics of one run: trained now, resumed, or read back when it finished before."""
    metrics_file = os.path.join(output_dir, "metrics.json")
    try:
        return run_training(config, output_dir=output_dir, verbose=verbose)
    except RunDirectoryError:
        if not os.path.exists(metrics_file):
            raise
        with open(metrics_file) as file:
            metrics = json.load(file)
        if metrics["settings"] != vars(config.resolved()):
            raise
        print(f"Reusing the finished run in {output_dir}.")
        return metrics


def main(argv=None):
    args = parse_args(argv)
    rows = []
    for fraction in sorted(args.fractions):
        row = {"fraction": fraction}
        for label, baseline in (("convit", None), ("deit", "deit")):
            config = TrainConfig(
                dataset=args.dataset,
                data_dir=args.data_dir,
                model=args.model,
                model_args=args.model_args,
                baseline=baseline,
                image_size=args.image_size,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                augmentation=args.augmentation,
                fraction=fraction,
                scale_epochs=args.scale_epochs,
                seed=args.seed,
            )
            run_dir = os.path.join(args.output_dir, f"{label}-f{fraction:g}")
            metrics = run_one(config, run_dir, args.verbose)
            row[f"{label}_test_accuracy"] = metrics["test_accuracy"]
            row["train_size"] = metrics["train_size"]
            row["epochs"] = metrics["epochs"]
        row["gap"] = row["convit_test_accuracy"] - row["deit_test_accuracy"]
        rows.append(row)
    write_results(rows, args.output_dir, args.dataset)
    return rows


def write_results(rows, output_dir, dataset):
    """Writes results.csv, results.md and sample_efficiency.png; prints the table."""
    os.makedirs(output_dir, exist_ok=True)
    columns = ["fraction", "train_size", "epochs", "convit_test_accuracy",
               "deit_test_accuracy", "gap"]  # fmt: skip
    with open(os.path.join(output_dir, "results.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Test accuracy on {dataset}, same recipe, epochs as long as on the whole set",
        "",
        "| fraction | train images | epochs | ConViT | DeiT twin | gap |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['fraction']:g} | {row['train_size']} | {row['epochs']} | "
        f"{row['convit_test_accuracy']:.3f} | {row['deit_test_accuracy']:.3f} | "
        f"{row['gap']:+.3f} |"
        for row in rows
    ]
    table = "\n".join(lines) + "\n"
    with open(os.path.join(output_dir, "results.md"), "w") as file:
        file.write(table)
    print(table)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing, so no plot: pip install matplotlib")
        return
    figure, axis = plt.subplots(figsize=(5, 3.6))
    fractions = [row["fraction"] for row in rows]
    for key, label in (("convit_test_accuracy", "ConViT"), ("deit_test_accuracy", "DeiT twin")):
        axis.plot(fractions, [row[key] for row in rows], marker="o", label=label)
    axis.set_xscale("log")
    axis.set_xticks(fractions, [f"{fraction:g}" for fraction in fractions])
    axis.set_xlabel("fraction of the training set")
    axis.set_ylabel("test accuracy")
    axis.set_title(f"Sample efficiency on {dataset}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "sample_efficiency.png"), dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
