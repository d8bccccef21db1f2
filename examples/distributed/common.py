"""What the distributed examples share: flags, the job's settings, data, model and recipe (all
from keras_convit), the replica comparison and the one-line summary.

Imports nothing heavy at module level: each script fixes its backend and simulated devices
first, then imports Keras.
"""

import argparse
import json
import math
import os
import sys

# --smoke: a tiny ConViT (one GPSA block, one attention block, 16 tokens of 8x8 patches) on the
# 32x32 digits, a few steps at full learning rate (no warm-up, so the weights really move).
SMOKE_MODEL = {
    "hidden_dim": 32,
    "num_heads": 4,
    "depth": 2,
    "local_up_to_layer": 1,
    "patch_size": 8,
    "qkv_bias": True,
}
SMOKE = {
    "image_size": 32,
    "batch_size": 16,
    "epochs": 1,
    "steps": 3,
    "warmup_epochs": 0.0,
    "augmentation": "light",
    "validation_fraction": 0.0,
}
SUMMARY_PREFIX = "DISTRIBUTED"
EXIT_FAILED, EXIT_USAGE = 1, 2


def require_backend(backend, script):
    """Selects `backend` for Keras, or exits with a message if KERAS_BACKEND names another.

    Call before Keras is imported.
    """
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen and chosen != backend:
        sys.exit(
            f"{os.path.basename(script)} needs the {backend} backend, but KERAS_BACKEND="
            f"{chosen}. Run it as: KERAS_BACKEND={backend} python {script} ..."
        )
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            sys.exit(f"Keras was imported with backend {keras.backend.backend()!r}, not {backend}.")
    os.environ["KERAS_BACKEND"] = backend


def argument_parser(doc):
    """The flags every script takes; each adds its own."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="A tiny model for a few steps on simulated CPU devices; exits non-zero unless the "
        "loss is finite and all replicas hold identical weights.",
    )
    parser.add_argument("--dataset", default="digits", help="As `keras-convit train --dataset`.")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory.")
    parser.add_argument("--model", default=None, help="convit_tiny ... convit_base_plus.")
    parser.add_argument("--model-args", type=json.loads, default={}, help="JSON, as the CLI.")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Global batch size, all devices together; the learning rate scales with it.",
    )
    parser.add_argument(
        "--learning-rate", "--lr", type=float, default=None, help="Peak rate; default scaled."
    )
    parser.add_argument(
        "--base-learning-rate",
        "--base-lr",
        type=float,
        default=None,
        help="Peak rate per 512 images.",
    )
    parser.add_argument("--warmup-epochs", type=float, default=None)
    parser.add_argument("--augmentation", choices=("deit", "light", "none"), default=None)
    parser.add_argument("--steps", type=int, default=None, help="Steps per epoch (default all).")
    parser.add_argument("--devices", type=int, default=None, help="--smoke: simulated devices.")
    parser.add_argument("--output-dir", default=None, help="Where the final weights go.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    return parser


def train_config(args):
    """The resolved `keras_convit.job.TrainConfig` of the flags (with --smoke's settings)."""
    from keras_convit.job import TrainConfig

    settings = {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "model": args.model,
        "model_args": dict(args.model_args),
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "base_learning_rate": args.base_learning_rate,
        "warmup_epochs": args.warmup_epochs,
        "augmentation": args.augmentation,
        "seed": args.seed,
    }
    if args.smoke:
        settings["model_args"] = {**SMOKE_MODEL, **settings["model_args"]}
        for key in ("image_size", "epochs", "batch_size", "warmup_epochs", "augmentation"):
            if settings[key] is None:
                settings[key] = SMOKE[key]
        settings["validation_fraction"] = SMOKE["validation_fraction"]
        args.steps = args.steps or SMOKE["steps"]
    return TrainConfig(**settings).resolved()


def check_batch(config, replicas):
    """Exits with a message unless the global batch splits evenly over the replicas."""
    if config.batch_size % replicas:
        sys.exit(
            f"The global batch size {config.batch_size} does not divide by the {replicas} data "
            "replicas: pass --batch-size as a multiple of it."
        )


def load_data(config, batch_size=None):
    """`keras_convit.data.load_dataset` with the job's settings (`batch_size`: per process)."""
    from keras_convit.data import Augmentation, load_dataset

    overrides = {} if config.repeats is None else {"repeats": config.repeats}
    return load_dataset(
        config.dataset,
        image_size=config.image_size,
        batch_size=batch_size or config.batch_size,
        augmentation=Augmentation.from_name(config.augmentation, **overrides),
        fraction=config.fraction,
        validation_fraction=config.validation_fraction,
        data_dir=config.data_dir,
        seed=config.seed,
        split_seed=config.split_seed,
        full_length_epochs=config.full_length_epochs,
    )


def compiled_model(config, num_classes, steps_per_epoch, **compile_kwargs):
    """The job's ConViT, compiled with the DeiT recipe at the global batch size; `compile_kwargs`
    override the recipe's (`steps_per_execution`, say)."""
    from keras_convit.job import build_model

    model = build_model(config, num_classes)
    model.compile(**{**config.compile_arguments(model, steps_per_epoch), **compile_kwargs})
    return model


def compare_replicas(named_replicas):
    """Compares the copies of each variable.

    Args:
        named_replicas: iterable of (name, list of numpy arrays): the copies that must be equal
            (the replicas of one variable, or of one shard of it).

    Returns:
        (number of variables compared, total copies, names whose copies differ).
    """
    import numpy as np

    count, copies, differing = 0, 0, []
    for name, replicas in named_replicas:
        count += 1
        copies += len(replicas)
        first = replicas[0]
        if not all(np.array_equal(first, other) for other in replicas[1:]):
            differing.append(name)
    return count, copies, differing


def finish(engine, loss, differing, updated=True, **fields):
    """Prints the one-line summary and returns the exit status (0 only if all checks pass)."""
    finite = loss is not None and math.isfinite(loss)
    ok = finite and not differing and updated
    parts = [
        f"{SUMMARY_PREFIX} {'OK' if ok else 'FAILED'}",
        f"engine={engine}",
        *(f"{key}={value}" for key, value in fields.items()),
        f"loss={loss:.4f}" if loss is not None else "loss=None",
        f"finite_loss={finite}",
        f"weights_updated={updated}",
        f"replicas_identical={not differing}",
    ]
    print(" ".join(parts), flush=True)
    if differing:
        print(f"Replicas differ for: {', '.join(differing[:10])}", flush=True)
    return 0 if ok else EXIT_FAILED


def output_path(args, name):
    if not args.output_dir:
        return None
    os.makedirs(args.output_dir, exist_ok=True)
    return os.path.join(args.output_dir, name)


def fit(model, data, config, args, **fit_kwargs):
    """`model.fit` on the job's pipeline (`args.steps` batches per epoch, if set); returns
    (last training loss, whether every trainable variable changed)."""
    import numpy as np

    from keras_convit.training import NonFiniteLossGuard

    before = [np.array(variable.numpy()) for variable in model.trainable_variables]
    history = model.fit(
        data.train,
        validation_data=data.validation,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch(data, args),
        callbacks=[NonFiniteLossGuard()],
        verbose=args.verbose,
        shuffle=False,  # the pipeline shuffles
        **fit_kwargs,
    )
    after = [variable.numpy() for variable in model.trainable_variables]
    updated = all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    return float(history.history["loss"][-1]), updated


def steps_per_epoch(data, args, replicas=1):
    steps = data.steps_per_epoch // replicas
    return min(steps, args.steps) if args.steps else steps


def simulate_jax_devices(count):
    """Makes JAX see `count` CPU devices; must run before JAX is imported."""
    if "jax" in sys.modules:
        sys.exit("JAX is already imported: simulated devices must be set before.")
    flag = f"--xla_force_host_platform_device_count={count}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    os.environ["JAX_PLATFORMS"] = "cpu"


def jax_replicas(variables):
    """(name, copies) per variable shard: the copies of each shard of each JAX array, read
    from every local device that holds one; also returns the number of distinct shards per
    variable path."""
    import numpy as np

    pairs, shard_counts = [], {}
    for variable in variables:
        groups = {}
        for shard in variable.value.addressable_shards:
            key = tuple((s.start, s.stop) for s in shard.index)
            groups.setdefault(key, []).append(np.asarray(shard.data))
        shard_counts[variable.path] = len(groups)
        pairs += [(f"{variable.path}{list(key)}", copies) for key, copies in groups.items()]
    return pairs, shard_counts


def evaluate_and_save(model, data, args, is_chief=True):
    """After a real run: test accuracy, and the weights in --output-dir (chief only)."""
    if args.smoke or data.test is None:
        return
    test = model.evaluate(data.test, verbose=0, return_dict=True)
    print(f"Test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}.", flush=True)
    path = output_path(args, "final.weights.h5")
    if path and is_chief:
        model.save_weights(path, overwrite=True)
        print(f"Wrote {path}", flush=True)
