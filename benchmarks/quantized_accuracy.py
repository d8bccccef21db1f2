"""Held-out accuracy of a finished run's model, float and after `model.quantize(mode)`.

    make demo
    KERAS_BACKEND=jax python benchmarks/quantized_accuracy.py --run-dir runs/demo

The run's `model.keras` is evaluated on the run's own test split (its data set, image size and
seed from `run.json`, through the library's `load_dataset`), then quantized in place with each
mode, from a fresh load, and evaluated again (top-1 accuracy, as `metrics.json`'s
`test_accuracy`). Also given: the largest logit change on the first test batch, relative to the
largest float logit, and the share of test predictions that changed. Results go to
`<output-dir>/quantized-accuracy-<backend>.json` and `.md`.
"""

import argparse
import datetime
import os
import sys
import time
import warnings

from contestants import REPOSITORY
from report import git_commit, machine_description, versions, write_report

MODES = ("int8", "float8", "int4")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default=os.path.join(REPOSITORY, "runs", "demo"))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--output-dir", default=os.path.join(REPOSITORY, "benchmarks", "results"))
    return parser.parse_args(argv)


def test_split(run):
    """The run's data (`load_dataset`), rebuilt from its settings: `.test`, `.class_names`."""
    sys.path.insert(0, REPOSITORY)
    from keras_convit.data.pipelines import load_dataset
    from keras_convit.data.sources import resolve_source

    settings = run["settings"]
    source = resolve_source(
        settings["dataset"],
        data_dir=settings["data_dir"],
        image_size=settings["image_size"],
        seed=settings["seed"],
    )
    data = load_dataset(
        source,
        image_size=settings["image_size"],
        batch_size=settings["batch_size"],
        augmentation="none",  # the test split is not augmented; this keeps the train one cheap
        fraction=settings["fraction"],
        validation_fraction=settings["validation_fraction"],
        data_dir=settings["data_dir"],
        seed=settings["seed"],
    )
    return data


def evaluate(model, data):
    """(test accuracy, predicted classes, logits of the first batch, seconds) of `model` on the
    test split, in one pass."""
    import numpy as np

    start = time.perf_counter()
    predictions, labels, first = [], [], None
    for images, batch_labels in data.test:
        scores = np.asarray(model.predict_on_batch(np.asarray(images)))
        first = scores if first is None else first
        predictions.append(np.argmax(scores, axis=-1))
        batch_labels = np.asarray(batch_labels)
        labels.append(np.argmax(batch_labels, -1) if batch_labels.ndim == 2 else batch_labels)
    predictions, labels = np.concatenate(predictions), np.concatenate(labels).reshape(-1)
    accuracy = float(np.mean(predictions == labels))
    return accuracy, predictions, first, time.perf_counter() - start


def quantize(model, mode):
    with warnings.catch_warnings():
        # Keras notes each layer type it leaves float (Conv2D, the norms): expected.
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize(mode)


def run(args):
    import keras
    import numpy as np

    sys.path.insert(0, REPOSITORY)
    from keras_convit.deploy.quantization import quantized_layers
    from keras_convit.job import read_run

    record = read_run(args.run_dir)
    if record is None or record.get("status") != "finished":
        raise SystemExit(f"No finished run in {args.run_dir} (run `make demo` first).")
    model_path = os.path.join(args.run_dir, "model.keras")
    data = test_split(record)
    # Not compiled: the saved compile arguments hold the training backend's resolved
    # `jit_compile`, and True from JAX means torch.compile here, which fails on this model.
    model = keras.saving.load_model(model_path, compile=False)
    accuracy, predictions, scores, seconds = evaluate(model, data)
    results = {
        "float32": {"test_accuracy": accuracy, "eval_s": round(seconds, 2)},
    }
    for mode in args.modes:
        model = keras.saving.load_model(model_path, compile=False)
        quantize(model, mode)
        quantized = quantized_layers(model)
        mode_accuracy, mode_predictions, mode_scores, seconds = evaluate(model, data)
        results[mode] = {
            "test_accuracy": mode_accuracy,
            "eval_s": round(seconds, 2),
            "quantized_layers": len(quantized),
            "predictions_changed": float(np.mean(mode_predictions != predictions)),
            "max_relative_logit_change": float(
                np.abs(mode_scores - scores).max() / np.abs(scores).max()
            ),
        }
        print(f"{mode}: test accuracy {mode_accuracy:.4f} (float {accuracy:.4f})", flush=True)
    return {
        "backend": keras.backend.backend(),
        "run_dir": os.path.abspath(args.run_dir),
        "trained_on": record["backend"],
        "dataset": record["settings"]["dataset"],
        "image_size": record["settings"]["image_size"],
        "test_size": data.test_size,
        "machine": machine_description("cpu"),
        "versions": versions(),
        "commit": git_commit(),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "results": results,
    }


def markdown(reports):
    lines = []
    for report in reports:
        lines += [
            f"### Quantized accuracy, {report['dataset']} ({report['test_size']} test images, "
            f"{report['image_size']}x{report['image_size']}), Keras {report['backend']} backend",
            "",
            f"Model trained on the {report['trained_on']} backend; commit {report['commit']}.",
            "",
            "| weights | test accuracy | predictions changed | max relative logit change "
            "| quantized layers |",
            "|---|---:|---:|---:|---:|",
        ]
        for mode, result in report["results"].items():
            changed = result.get("predictions_changed")
            logit = result.get("max_relative_logit_change")
            lines.append(
                f"| {mode} | {result['test_accuracy']:.4f} "
                f"| {'-' if changed is None else f'{changed:.2%}'} "
                f"| {'-' if logit is None else f'{logit:.3f}'} "
                f"| {result.get('quantized_layers', '-')} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    report = run(args)
    stem = f"quantized-accuracy-{report['backend']}"
    write_report(report, args.output_dir, stem, markdown, echo=True)


if __name__ == "__main__":
    main()
