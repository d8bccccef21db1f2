"""`keras-convit train` (also `python -m keras_convit.train`): the main job.

With no flags it trains a small ConViT on scikit-learn's handwritten digits (offline, a few
minutes on two CPU cores) and writes runs/digits-convit_digits/. Any other data set gets the
paper's recipe (ConViT-Ti, 224x224, 300 epochs, DeiT augmentation) unless flags say otherwise.

Examples:
    keras-convit train --output-dir runs/demo
    KERAS_BACKEND=jax keras-convit train --model ConViTTiny --dataset imagenette --epochs 100
    keras-convit train --dataset path/to/images --image-size 224 --fraction 0.1
    keras-convit train --output-dir runs/demo --resume        # continue an unfinished run
"""

import argparse
import json
import os
import sys

from keras_convit.data.sources import DatasetUnavailableError
from keras_convit.training.callbacks import NonFiniteLossError
from keras_convit.training.job import ConfigError, RunDirectoryError, TrainConfig, run_training


def configure_parser(parser):
    """Adds the `train` flags; a flag left out takes the data set's default (see `--help`).

    Example:
    >>> import argparse
    >>> parser = keras_convit.training.cli.configure_parser(argparse.ArgumentParser())
    >>> args = parser.parse_args(["--epochs", "3", "--output-dir", "runs/x"])
    >>> args.epochs, args.output_dir, hasattr(args, "batch_size")  # absent: the default applies
    (3, 'runs/x', False)
    """
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    hidden = argparse.SUPPRESS  # absent unless given: tells explicit flags from defaults
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default=hidden,
        help='"digits" (default, offline), a folder of images with one sub-folder per class '
        "(or train/ and test/ folders), or a TFDS name such as cifar10 or imagenette.",
    )
    data.add_argument("--data-dir", default=hidden, help="TFDS data directory.")
    data.add_argument(
        "--image-size", type=int, default=hidden, help="Input side (digits: 16; else 224)."
    )
    data.add_argument(
        "--fraction",
        type=float,
        default=hidden,
        help="Keep this share of each training class (deterministic; default 1).",
    )
    data.add_argument(
        "--no-scale-epochs",
        dest="scale_epochs",
        action="store_false",
        default=hidden,
        help="Do not multiply the epochs by 1 / fraction (the paper does).",
    )
    data.add_argument(
        "--validation-fraction",
        type=float,
        default=hidden,
        help="Share of each training class held out to pick the best epoch (default 0.1; 0: "
        "keep the last epoch).",
    )
    data.add_argument(
        "--augmentation",
        choices=("deit", "light", "none"),
        default=hidden,
        help="Training augmentation (digits: light; else deit).",
    )
    data.add_argument("--repeats", type=int, default=hidden, help="Repeated augmentation count.")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default=hidden,
        help="convit_digits (digits default), convit_tiny (else), convit_small, convit_base, "
        "... (ConViTTiny also works).",
    )
    model.add_argument(
        "--model-args",
        type=json.loads,
        default=hidden,
        help="JSON of further keras_convit.ConViT arguments, e.g. '{\"depth\": 6}'.",
    )
    model.add_argument(
        "--baseline",
        action="store_true",
        default=hidden,
        help="Train the DeiT baseline of the same size (GPSA off).",
    )
    model.add_argument("--drop-path", type=float, default=hidden, help="Drop path rate (0.1).")

    optimization = parser.add_argument_group("optimization (the DeiT recipe)")
    optimization.add_argument("--epochs", type=int, default=hidden, help="digits: 50; else 300.")
    optimization.add_argument(
        "--batch-size", type=int, default=hidden, help="digits: 32; else 128."
    )
    optimization.add_argument(
        "--lr",
        type=float,
        default=hidden,
        help="Peak learning rate (default: base-lr x batch size / 512).",
    )
    optimization.add_argument(
        "--base-lr", type=float, default=hidden, help="Learning rate per 512 images (5e-4)."
    )
    optimization.add_argument("--min-lr", type=float, default=hidden, help="Final rate (1e-5).")
    optimization.add_argument("--warmup-epochs", type=float, default=hidden, help="5 (digits: 3).")
    optimization.add_argument("--weight-decay", type=float, default=hidden, help="0.05.")
    optimization.add_argument("--label-smoothing", type=float, default=hidden, help="0.1.")
    optimization.add_argument(
        "--ema",
        dest="use_ema",
        action="store_true",
        default=hidden,
        help="Keep an EMA of the weights; validate and report with it.",
    )
    optimization.add_argument("--ema-momentum", type=float, default=hidden, help="0.99996.")
    optimization.add_argument(
        "--clip-norm", type=float, default=hidden, help="Global gradient-norm clipping (off)."
    )
    optimization.add_argument("--seed", type=int, default=hidden, help="0.")
    optimization.add_argument(
        "--analysis-every",
        type=int,
        default=hidden,
        metavar="N",
        help="Every N epochs, log nonlocality, gating and attention centres to analysis.jsonl "
        "(keras_convit.analysis.AnalysisLogger) and plot them at the end (default 0: off).",
    )

    run = parser.add_argument_group("run directory")
    run.add_argument(
        "--output-dir",
        default=None,
        help="Run directory (default runs/<dataset>-<model>[-N]). An unfinished run there with "
        "the same settings resumes; a finished one is never overwritten.",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="Continue the unfinished run in --output-dir with its saved settings (flags you "
        "give change them, e.g. a lower --lr after a non-finite loss).",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="Delete the run in --output-dir and start again."
    )
    run.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras fit verbosity: 1 progress bars (default), 2 one line per epoch.",
    )
    return parser


def run(args):
    """Runs the job for parsed `args`; returns the exit status (0 on success)."""
    # TensorFlow (tf.data) loads later under JAX and torch: keep its start-up INFO lines quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    fields = {field for field in TrainConfig.__dataclass_fields__}
    explicit = {key: value for key, value in vars(args).items() if key in fields}
    config = TrainConfig(**explicit)
    try:
        run_training(
            config,
            output_dir=args.output_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            explicit=tuple(explicit),
            verbose=args.verbose,
        )
    except (ConfigError, RunDirectoryError, DatasetUnavailableError) as error:
        print(f"keras-convit train: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"keras-convit train: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    """Entry point of `python -m keras_convit.train`."""
    parser = configure_parser(argparse.ArgumentParser(prog="python -m keras_convit.train"))
    return run(parser.parse_args(argv))
