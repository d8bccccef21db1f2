"""`keras-convit train`: the main job.

With no flags it trains a small ConViT on scikit-learn's handwritten digits (offline, a few
minutes on two CPU cores) and writes runs/digits-convit_digits/. A data set of 50,000 training
images or more gets the paper's recipe (ConViT-Ti, 224x224, 300 epochs, DeiT augmentation); a
smaller folder or TFDS set gets the small-data defaults (a batch, rate and epoch count from its
size, the light augmentation: keras_convit.job.small_data_defaults). Flags override each.

Examples:
    keras-convit train --output-dir runs/demo
    KERAS_BACKEND=jax keras-convit train --model ConViTTiny --dataset imagenette --epochs 100
    keras-convit train --dataset path/to/images --image-size 224 --fraction 0.1
    keras-convit train --output-dir runs/demo --resume        # continue an unfinished run
    keras-convit train --baseline --fraction 0.1              # the DeiT twin, on 10% of the data
    keras-convit train --teacher runs/cnn/model.keras         # hard distillation from a teacher
    keras-convit train --dataset photos/ --weights imagenet   # fine-tune (a new head, the
    keras-convit train --dataset photos/ --weights runs/x/ --layer-decay 0.75  # recipe below)
    keras-convit train --dataset photos/ --weights w.safetensors --freeze-backbone  # linear probe
    keras-convit train --model convit_small --dtype-policy mixed_bfloat16 --remat --tensorboard

SIGTERM or SIGINT (a preemption notice, Ctrl-C) stops a run after the current step with its
state committed, and exits with status 75; the same command resumes it mid-epoch. A second
Ctrl-C stops at once, losing the epoch under way.

Starting from weights selects the fine-tuning recipe (keras_convit.job.fine_tuning): a tenth of
the from-scratch peak rate, 30 epochs (about 1,000 steps on a small data set), a warm-up of one
epoch. Every flag still overrides it.
"""

import argparse
import json
import os

from keras_convit.cli.errors import CommandFailed
from keras_convit.cli.image_limit import add_max_image_pixels_flag, max_image_pixels_of
from keras_convit.cli.scale_flags import add_scale_flags
from keras_convit.job.config import AUGMENTATIONS, DIGITS_DEFAULTS, PAPER_DEFAULTS, TrainConfig
from keras_convit.job.distribute import DISTRIBUTE_MODES
from keras_convit.job.run import run_training
from keras_convit.presets import BASELINES, PRESETS
from keras_convit.training.callbacks import NonFiniteLossError
from keras_convit.training.preemption import PREEMPTED_EXIT_STATUS, Preempted


def configure_parser(parser):
    """Adds the `train` flags; a flag left out takes the data set's default (see `--help`).

    Example:
    >>> import argparse
    >>> parser = configure_parser(argparse.ArgumentParser())
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
        "--image-size",
        type=int,
        default=hidden,
        help="Input side (default: the model preset's input size).",
    )
    data.add_argument(
        "--fraction",
        type=float,
        default=hidden,
        help="Keep this share of each training class (deterministic; default "
        f"{_default('fraction')}).",
    )
    data.add_argument(
        "--no-scale-epochs",
        dest="scale_epochs",
        action="store_false",
        default=hidden,
        help="With --fraction, make an epoch one pass over the subset instead of as many "
        "steps as an epoch of the whole training set (the paper's protocol: the same images "
        "seen, the epochs scaled by 1 / fraction in passes).",
    )
    data.add_argument(
        "--validation-fraction",
        type=float,
        default=hidden,
        help="Share of each training class held out to pick the best epoch (default "
        f"{_default('validation_fraction')}; 0: keep the last epoch).",
    )
    data.add_argument(
        "--split-seed",
        type=int,
        default=hidden,
        help="Seed of the held-out validation (and test) split, kept apart from --seed so that "
        f"seeds compare on the same images (default {_default('split_seed')}).",
    )
    data.add_argument(
        "--augmentation",
        choices=AUGMENTATIONS,
        default=hidden,
        help=f"Training augmentation ({_per_dataset('augmentation')}).",
    )
    data.add_argument("--repeats", type=int, default=hidden, help="Repeated augmentation count.")
    add_max_image_pixels_flag(data)

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default=hidden,
        help=f"A preset: {', '.join(PRESETS)} ({_per_dataset('model')}; ConViTTiny "
        "and convit-tiny also work).",
    )
    model.add_argument(
        "--model-args",
        type=json.loads,
        default=hidden,
        help="JSON of further keras_convit.ConViT arguments, e.g. '{\"depth\": 6}'.",
    )
    model.add_argument(
        "--weights",
        default=hidden,
        metavar="imagenet|FILE|RUN_DIR",
        help="Start from these weights (fine-tuning): imagenet (the model's preset), a weight "
        "file (.weights.h5, a timm or official .safetensors/.pth), a .keras model, or a finished "
        "run's directory. The model is read from the file unless --model is given; the position "
        "embedding is resampled to --image-size and the head is new where the classes differ.",
    )
    model.add_argument(
        "--layer-decay",
        type=float,
        default=hidden,
        metavar="R",
        help="Layer-wise learning-rate decay (timm's): the head at the full rate, block i at "
        "R^(depth - i), the patch embedding lowest (fine-tuning; 0.65 to 0.75 is usual).",
    )
    model.add_argument(
        "--freeze-backbone",
        action="store_true",
        default=hidden,
        help="Train only the head: a linear probe of the --weights' features.",
    )
    model.add_argument(
        "--baseline",
        nargs="?",
        const="deit",
        choices=sorted({name.replace("_", "-") for name in BASELINES} | set(BASELINES)),
        default=hidden,
        help="Train a baseline of the model's size without GPSA: deit (the default) is DeiT's "
        "layout, the class token from the first block (the model's *_deit preset); in-place "
        "swaps GPSA for attention and keeps the class token late (an ablation, not DeiT).",
    )
    model.add_argument(
        "--teacher",
        default=hidden,
        metavar="MODEL",
        help="A .keras classifier of the same images and classes: train with DeiT's hard "
        "distillation (a distillation token and head learn its top class).",
    )
    model.add_argument(
        "--drop-path-rate",
        "--drop-path",
        type=float,
        default=hidden,
        help=f"Stochastic depth rate of the last block ({_default('drop_path_rate')}).",
    )

    optimization = parser.add_argument_group("optimization (the DeiT recipe)")
    optimization.add_argument("--epochs", type=int, default=hidden, help=_per_dataset("epochs"))
    optimization.add_argument(
        "--batch-size", type=int, default=hidden, help=_per_dataset("batch_size")
    )
    optimization.add_argument(
        "--learning-rate",
        "--lr",
        type=float,
        default=hidden,
        help="Peak learning rate (default: the base rate x batch size / 512, or a small data "
        "set's rate).",
    )
    optimization.add_argument(
        "--base-learning-rate",
        "--base-lr",
        type=float,
        default=hidden,
        help=f"Learning rate per 512 images ({_per_dataset('base_learning_rate')}).",
    )
    optimization.add_argument(
        "--min-learning-rate",
        "--min-lr",
        type=float,
        default=hidden,
        help=f"Final rate ({_default('min_learning_rate')}).",
    )
    optimization.add_argument(
        "--warmup-epochs",
        type=float,
        default=hidden,
        help=f"Linear warm-up, in epochs ({_per_dataset('warmup_epochs')}); with --fraction "
        "they are whole-set epochs, so the warm-up spans the same steps as at fraction 1.",
    )
    optimization.add_argument(
        "--weight-decay", type=float, default=hidden, help=str(_default("weight_decay"))
    )
    optimization.add_argument(
        "--label-smoothing", type=float, default=hidden, help=str(_default("label_smoothing"))
    )
    optimization.add_argument(
        "--ema",
        dest="use_ema",
        action="store_true",
        default=hidden,
        help="Keep an EMA of the weights; validate and report with it.",
    )
    optimization.add_argument(
        "--ema-momentum", type=float, default=hidden, help=str(_default("ema_momentum"))
    )
    optimization.add_argument(
        "--clipnorm",
        "--clip-norm",
        type=float,
        default=hidden,
        help="Global gradient-norm clipping (off).",
    )
    optimization.add_argument("--seed", type=int, default=hidden, help=str(_default("seed")))
    optimization.add_argument(
        "--analysis-every",
        type=int,
        default=hidden,
        metavar="N",
        help="Every N epochs, log nonlocality, gating and attention centres to analysis.jsonl "
        "(keras_convit.analysis.AnalysisLogger) and plot them at the end (default 0: off).",
    )

    add_scale_flags(parser)

    devices = parser.add_argument_group("devices")
    devices.add_argument(
        "--distribute",
        metavar="{" + ",".join(DISTRIBUTE_MODES) + "}",
        default="none",
        help="data: data parallel, through the backend's engine: over this machine's devices "
        "(TensorFlow's MirroredStrategy, JAX's keras.distribution.DataParallel, also over "
        "several hosts launched with KERAS_DISTRIBUTION_* variables), or over the processes "
        "torchrun launched (PyTorch's DistributedDataParallel: torchrun --nproc-per-node N "
        "-m keras_convit train --distribute data ...). model:N (JAX): each block's attention "
        "and MLP split over N devices, data parallel across the rest. --batch-size is the "
        "global batch and must divide over the data replicas (default none: one device).",
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
        "give change them, e.g. a lower --learning-rate after a non-finite loss).",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="Delete the run in --output-dir and start again."
    )
    run.add_argument(
        "--accept-data-change",
        action="store_true",
        help="Resume even though the folder data set changed since the run began.",
    )
    run.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="0 silent, 1 progress bars, 2 one line per epoch (default: 1 on a terminal, else 2).",
    )
    return parser


def run(args):
    """Runs the job for parsed `args`; returns the exit status (0 on success)."""
    # TensorFlow (tf.data) loads later under JAX and torch: keep its start-up INFO lines quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    fields = set(TrainConfig.__dataclass_fields__)
    explicit = {key: value for key, value in vars(args).items() if key in fields}
    with max_image_pixels_of(args):
        try:
            run_training(
                TrainConfig(**explicit),
                output_dir=args.output_dir,
                resume=args.resume,
                overwrite=args.overwrite,
                explicit=tuple(explicit),
                verbose=args.verbose,
                accept_data_change=args.accept_data_change,
                distribute=args.distribute,
            )
        except NonFiniteLossError as error:
            raise CommandFailed(str(error), status=1) from error
        except Preempted as stop:
            raise CommandFailed(str(stop), status=PREEMPTED_EXIT_STATUS) from stop
    return 0


def _default(field):
    """A `TrainConfig` field's default, for the help texts."""
    return TrainConfig.__dataclass_fields__[field].default


def _per_dataset(key):
    return f"digits: {DIGITS_DEFAULTS[key]}; else {PAPER_DEFAULTS[key]}"
