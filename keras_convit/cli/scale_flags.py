"""The `train` flags for larger models (the settings of `keras_convit.job.scale`)."""

import argparse

from keras_convit.job.scale import DTYPE_POLICIES, TENSORBOARD_EXTRA


def add_scale_flags(parser):
    """Adds `--dtype-policy`, `--remat`, `--steps-per-execution` and `--tensorboard` to
    `parser`; each is absent unless given. Values are checked by `TrainConfig.validate` (one
    line, exit status 2), not by argparse.

    Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_scale_flags(parser)
    >>> sorted(vars(parser.parse_args(["--remat", "--dtype-policy", "mixed_bfloat16"])).items())
    [('dtype_policy', 'mixed_bfloat16'), ('remat', True)]
    """
    hidden = argparse.SUPPRESS
    scale = parser.add_argument_group("scale (larger models)")
    scale.add_argument(
        "--dtype-policy",
        default=hidden,
        metavar="{" + ",".join(DTYPE_POLICIES) + "}",
        help="Keras dtype policy of the model (default float32): mixed_* computes in 16 bits "
        "with float32 weights; GPSA's softmaxes, positional attention and gating stay float32; "
        "mixed_float16 adds dynamic loss scaling.",
    )
    scale.add_argument(
        "--remat",
        action="store_true",
        default=hidden,
        help="Gradient checkpointing: recompute each transformer block in the backward pass "
        "instead of keeping its activations (keras.RematScope): less memory, more time, the "
        "same results.",
    )
    scale.add_argument(
        "--steps-per-execution",
        type=int,
        default=hidden,
        metavar="N",
        help="Training steps per compiled call (default 1; JAX and TensorFlow only): less "
        "Python overhead for small models; batch callbacks then run every N steps.",
    )
    scale.add_argument(
        "--tensorboard",
        action="store_true",
        default=hidden,
        help="Write TensorBoard event files to RUN_DIR/tensorboard/: the epoch logs and learning "
        "rate, and with --analysis-every the nonlocality and gating per layer "
        f"(pip install '{TENSORBOARD_EXTRA}').",
    )
