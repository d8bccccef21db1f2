"""The main job: train a ConViT with the DeiT recipe, keep everything, report on held-out data.

A run directory holds:
    run.json              the resolved settings and the status ("running", "failed", "finished")
    checkpoint/           per-epoch state while the run is unfinished (see `RunCheckpoint`)
    history.csv           one row per epoch: losses, accuracies, learning rate, seconds
    best.weights.h5       the weights of the best validation epoch (the last one without
                          validation), EMA weights when `use_ema`
    model.keras           the whole model with those weights
    metrics.json          test accuracy and loss of that model on the held-out test split, ...
    learning_curves.png   loss, accuracy and learning rate per epoch
"""

import dataclasses
import json
import math
import os
import shutil
import time

import keras

from keras_convit.training import recipe
from keras_convit.training.callbacks import (
    LearningRateLogger,
    NonFiniteLossError,
    NonFiniteLossGuard,
    RunCheckpoint,
)

RUN_FILE = "run.json"
CHECKPOINT_DIR = "checkpoint"

# Small models for small images, beside the paper's variants (keras_convit.CONFIGS).
SMALL_MODELS = {
    # 16x16 digits in 4x4 patches: 16 tokens, each 2x2 of the original 8x8 pixels.
    "convit_digits": {
        "hidden_dim": 64,
        "num_heads": 4,
        "depth": 4,
        "local_up_to_layer": 3,
        "patch_size": 4,
    },
}

# Defaults per data set; a flag overrides each. The digits get a job that runs in minutes on
# two CPU cores; every other data set gets the paper's recipe.
# 1,295 training digits need many small steps: batch 32 and a peak rate of 2e-3.
DIGITS_DEFAULTS = {
    "model": "convit_digits",
    "image_size": 16,
    "epochs": 50,
    "batch_size": 32,
    "base_lr": 0.032,
    "warmup_epochs": 3,
    "augmentation": "light",
}
PAPER_DEFAULTS = {
    "model": "convit_tiny",
    "image_size": 224,
    "epochs": recipe.EPOCHS,
    "batch_size": 128,
    "base_lr": recipe.BASE_LEARNING_RATE,
    "warmup_epochs": recipe.WARMUP_EPOCHS,
    "augmentation": "deit",
}


class RunDirectoryError(RuntimeError):
    """The output directory cannot be used as asked; the message says why and what to do."""


class ConfigError(ValueError):
    """A setting of the main job is out of range or unknown."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of the main job; None means "the data set's default" (see `resolved`).

    Example:
    >>> config = keras_convit.training.TrainConfig(dataset="cifar10", batch_size=256).resolved()
    >>> config.model, config.image_size, config.epochs, config.lr
    ('convit_tiny', 224, 300, 0.00025)
    """

    dataset: str = "digits"
    data_dir: str = None
    model: str = None
    model_args: dict = dataclasses.field(default_factory=dict)
    baseline: bool = False
    image_size: int = None
    epochs: int = None
    batch_size: int = None
    lr: float = None
    base_lr: float = None
    min_lr: float = recipe.MIN_LEARNING_RATE
    warmup_epochs: float = None
    weight_decay: float = recipe.WEIGHT_DECAY
    label_smoothing: float = recipe.LABEL_SMOOTHING
    drop_path: float = recipe.DROP_PATH_RATE
    augmentation: str = None
    repeats: int = None
    fraction: float = 1.0
    scale_epochs: bool = True
    validation_fraction: float = 0.1
    use_ema: bool = False
    ema_momentum: float = recipe.EMA_MOMENTUM
    clip_norm: float = None
    analysis_every: int = 0
    seed: int = 0

    def resolved(self):
        """A copy with the data set's defaults filled in and the learning rate computed."""
        defaults = DIGITS_DEFAULTS if self.dataset == "digits" else PAPER_DEFAULTS
        values = dataclasses.asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        values["model"] = _canonical_model_name(values["model"])
        if values["lr"] is None:
            values["lr"] = recipe.scaled_learning_rate(values["batch_size"], values["base_lr"])
        config = TrainConfig(**values)
        config.validate()
        return config

    def validate(self):
        """Raises `ConfigError` naming the first setting out of range (on a resolved config)."""
        import keras_convit

        checks = [
            (
                "model",
                self.model in SMALL_MODELS or self.model in keras_convit.CONFIGS,
                f"one of {sorted(SMALL_MODELS) + sorted(keras_convit.CONFIGS)}",
            ),
            (
                "augmentation",
                self.augmentation in ("deit", "light", "none"),
                '"deit", "light" or "none"',
            ),
            ("fraction", 0.0 < self.fraction <= 1.0, "in (0, 1]"),
            ("validation_fraction", 0.0 <= self.validation_fraction < 1.0, "in [0, 1)"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("image_size", self.image_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("drop_path", 0.0 <= self.drop_path < 1.0, "in [0, 1)"),
            ("repeats", self.repeats is None or self.repeats >= 1, ">= 1"),
            ("analysis_every", self.analysis_every >= 0, ">= 0 (0: off)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}.")

    @property
    def total_epochs(self):
        """`epochs`, scaled by 1 / fraction when `scale_epochs` (the paper's protocol)."""
        if self.scale_epochs and self.fraction < 1.0:
            from keras_convit.data import scaled_epochs

            return scaled_epochs(self.epochs, self.fraction)
        return self.epochs

    def compile_arguments(self, model, steps_per_epoch):
        """`deit_recipe(...)` with these settings, over `total_epochs` of `steps_per_epoch`:
        `model.compile(**config.compile_arguments(model, steps_per_epoch))`."""
        return recipe.deit_recipe(
            model,
            self.batch_size,
            steps_per_epoch,
            self.total_epochs,
            learning_rate=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            min_learning_rate=self.min_lr,
            label_smoothing=self.label_smoothing,
            clipnorm=self.clip_norm,
            use_ema=self.use_ema,
            ema_momentum=self.ema_momentum,
        )

    @property
    def run_name(self):
        name = f"{_slug(self.dataset)}-{self.model}"
        if self.baseline:
            name += "-deit"
        if self.fraction < 1.0:
            name += f"-f{self.fraction:g}"
        return name


def build_model(config, num_classes):
    """The ConViT of `config` (resolved), or its DeiT baseline with `config.baseline`.

    Example:
    >>> config = keras_convit.training.TrainConfig(image_size=16).resolved()
    >>> keras_convit.training.build_model(config, 10).output_shape
    (None, 10)
    """
    import keras_convit

    name = config.model
    if name in SMALL_MODELS:
        architecture = dict(SMALL_MODELS[name])
    elif name in keras_convit.CONFIGS:
        architecture = dict(keras_convit.CONFIGS[name])
    else:
        known = sorted(SMALL_MODELS) + sorted(keras_convit.CONFIGS)
        raise ValueError(f"Unknown model {name!r}; choose one of {known}.")
    architecture.update(config.model_args)
    if config.baseline:
        architecture["use_gpsa"] = False
    return keras_convit.ConViT(
        **architecture,
        drop_path_rate=config.drop_path,
        input_shape=(config.image_size, config.image_size, 3),
        classes=num_classes,
        compile=False,
        name=f"{name}_deit" if config.baseline else name,
    )


def prepare_run_directory(config, output_dir=None, resume=False, overwrite=False, explicit=()):
    """Chooses the run directory and whether the run resumes; returns (path, config, resuming).

    - A new or empty directory starts a new run.
    - An unfinished run (killed or failed) with the same settings resumes: running the same
      command again after a kill continues it.
    - `resume=True` continues the unfinished run with its saved settings, changed by the
      settings named in `explicit` (the flags given on the command line), if any.
    - `overwrite=True` deletes a previous run (only a directory that holds one).
    - Anything else is an error: an existing run is never silently overwritten.
    Without `output_dir`, the run goes to runs/<name>, runs/<name>-2, ...: the first that is
    free or holds an unfinished run with the same settings.

    Example:
    >>> import tempfile
    >>> config = keras_convit.training.TrainConfig().resolved()
    >>> path, _, resuming = keras_convit.training.prepare_run_directory(config, tempfile.mkdtemp())
    >>> resuming
    False
    """
    settings = dataclasses.asdict(config)
    if output_dir is None:
        if resume or overwrite:
            raise RunDirectoryError("--resume and --overwrite need an explicit --output-dir.")
        base = os.path.join("runs", config.run_name)
        for index in range(1, 10_000):
            path = base if index == 1 else f"{base}-{index}"
            saved = _read_run(path)
            if not os.path.exists(path) or _is_empty(path):
                return path, config, False
            if saved and saved["status"] != "finished" and saved["settings"] == settings:
                return path, config, True
        raise RunDirectoryError(f"No free run directory under {base}-*.")

    path = os.fspath(output_dir)
    if not os.path.exists(path) or _is_empty(path):
        if resume:
            raise RunDirectoryError(f"--resume: there is no run to resume in {path}.")
        return path, config, False
    saved = _read_run(path)
    if saved is None:
        raise RunDirectoryError(
            f"{path} exists, is not empty and holds no keras-convit run ({RUN_FILE} is "
            "missing); choose another --output-dir."
        )
    if overwrite:
        shutil.rmtree(path)
        return path, config, False
    if saved["status"] == "finished":
        raise RunDirectoryError(
            f"{path} already holds a finished run ({_summary(path)}). Pass --overwrite to "
            "replace it, or choose another --output-dir."
        )
    if resume:
        merged = dict(saved["settings"])
        merged.update({key: settings[key] for key in explicit})
        return path, TrainConfig(**merged), True
    if saved["settings"] == settings:
        return path, config, True
    differences = ", ".join(
        f"{key}: {saved['settings'].get(key)!r} -> {value!r}"
        for key, value in settings.items()
        if saved["settings"].get(key) != value
    )
    raise RunDirectoryError(
        f"{path} holds an unfinished run with other settings ({differences}). Pass --resume "
        "to continue it (with its own settings, changed by the flags you give), --overwrite "
        "to start again, or choose another --output-dir."
    )


def run_training(
    config, output_dir=None, resume=False, overwrite=False, explicit=(), data=None, verbose=1
):
    """Runs the main job and returns its metrics (also written to `metrics.json`).

    Args:
        config: a `TrainConfig`; its None settings take the data set's defaults.
        output_dir, resume, overwrite, explicit: see `prepare_run_directory`.
        data: an optional `keras_convit.data.DataBundle` to train on instead of
            `config.dataset` (its batch size must be `config.batch_size`).
        verbose: Keras `fit` verbosity (1: progress bars).

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the last good epoch is kept and
            the run can be resumed).
        RunDirectoryError: see `prepare_run_directory`.

    Example (a tiny run: one epoch on half of the 8x8 digits):
    >>> import tempfile
    >>> config = keras_convit.training.TrainConfig(
    ...     image_size=8, epochs=1, fraction=0.5, scale_epochs=False, augmentation="none",
    ...     model_args={"hidden_dim": 16, "num_heads": 2, "depth": 1, "local_up_to_layer": 0})
    >>> metrics = keras_convit.training.run_training(
    ...     config, output_dir=tempfile.mkdtemp(), verbose=0)  # doctest: +ELLIPSIS
    Starting run in ...
    >>> metrics["epochs"], 0.0 <= metrics["test_accuracy"] <= 1.0
    (1, True)
    """
    config = config.resolved()
    path, config, resuming = prepare_run_directory(config, output_dir, resume, overwrite, explicit)
    os.makedirs(path, exist_ok=True)
    checkpoint_dir = os.path.join(path, CHECKPOINT_DIR)
    committed = RunCheckpoint.read_state(checkpoint_dir)
    epochs = config.total_epochs
    print(
        f"{'Resuming' if resuming else 'Starting'} run in {path} "
        + (f"after epoch {committed['epoch']} of {epochs} " if resuming and committed else "")
        + f"(backend {keras.backend.backend()}):\n  "
        + ", ".join(f"{key}={value}" for key, value in dataclasses.asdict(config).items()),
        flush=True,
    )
    _write_run(path, config, "running")

    keras.utils.set_random_seed(config.seed)
    if data is None:
        from keras_convit.data import load_dataset

        data = load_dataset(
            config.dataset,
            image_size=config.image_size,
            batch_size=config.batch_size,
            augmentation=_augmentation(config),
            fraction=config.fraction,
            validation_fraction=config.validation_fraction,
            data_dir=config.data_dir,
            seed=config.seed,
        )
    print(
        f"Data: {data.train_size} training images ({data.steps_per_epoch} batches of "
        f"{config.batch_size}), {data.validation_size} validation, {data.test_size} test; "
        f"{data.num_classes} classes.",
        flush=True,
    )
    model = build_model(config, data.num_classes)
    model.compile(**config.compile_arguments(model, data.steps_per_epoch))
    monitor = "val_accuracy" if data.validation is not None else None
    checkpoint = RunCheckpoint(
        checkpoint_dir, monitor=monitor, history_csv=os.path.join(path, "history.csv")
    )
    callbacks = training_callbacks(checkpoint, use_ema=config.use_ema)
    if config.analysis_every:
        from keras_convit.analysis import AnalysisLogger

        # Before the checkpoint, so a committed epoch always has its analysis record.
        probe = data.validation if data.validation is not None else data.test
        logger = AnalysisLogger(path, probe, every=config.analysis_every, append=resuming)
        callbacks.insert(len(callbacks) - 1, logger)
    try:
        model.fit(
            data.train,
            validation_data=data.validation,
            epochs=epochs,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles
        )
    except NonFiniteLossError as error:
        _write_run(path, config, "failed")
        raise NonFiniteLossError(
            f"{error} Run directory: {path}; to resume, e.g. keras-convit train --output-dir "
            f"{path} --resume --lr {config.lr / 10:.3g}"
        ) from error

    model.load_weights(checkpoint.best_weights_path)
    if config.use_ema:
        # The file holds the raw weights and, in the optimizer, their average: use the average.
        model.optimizer.finalize_variable_values(model.trainable_variables)
    test = model.evaluate(data.test, verbose=0, return_dict=True)
    metrics = {
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        **{
            f"test_{key}": float(value)
            for key, value in test.items()
            if key not in ("accuracy", "loss")
        },
        "best_epoch": checkpoint.best_epoch,
        "best_val_accuracy": checkpoint.best_value,
        "epochs": checkpoint.epoch,
        "train_seconds": round(sum(checkpoint.history.get("epoch_seconds", [])), 1),
        "train_size": data.train_size,
        "validation_size": data.validation_size,
        "test_size": data.test_size,
        "parameters": model.count_params(),
        "backend": keras.backend.backend(),
        "settings": dataclasses.asdict(config),
    }
    model.save_weights(os.path.join(path, "best.weights.h5"), overwrite=True)
    model.save(os.path.join(path, "model.keras"), overwrite=True)
    with open(os.path.join(path, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=1)
    plot_learning_curves(checkpoint.history, os.path.join(path, "learning_curves.png"))
    if config.analysis_every:
        plot_analysis(path)
    _write_run(path, config, "finished")
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print(
        f"Test accuracy {metrics['test_accuracy']:.4f} on {data.test_size} held-out images "
        f"(best epoch {metrics['best_epoch']} of {metrics['epochs']}); wrote {path}/",
        flush=True,
    )
    return metrics


def training_callbacks(checkpoint, use_ema=False):
    """The job's callbacks, in order: epoch timer and learning rate (added to the logs), the EMA
    swap for validation, the non-finite loss guard, and the checkpoint (last, so it records
    what the others add).

    Example:
    >>> import tempfile
    >>> checkpoint = keras_convit.training.RunCheckpoint(tempfile.mkdtemp())
    >>> [type(c).__name__ for c in keras_convit.training.training_callbacks(checkpoint)]
    ['_EpochTimer', 'LearningRateLogger', 'NonFiniteLossGuard', 'RunCheckpoint']
    """
    callbacks = [_EpochTimer(), LearningRateLogger()]
    if use_ema:
        callbacks.append(keras.callbacks.SwapEMAWeights())
    callbacks += [NonFiniteLossGuard(), checkpoint]
    return callbacks


def plot_learning_curves(history, path):
    """Loss, accuracy and learning rate per epoch, train and validation, as a PNG.

    Returns the path, or None (with a message) when matplotlib is missing.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> history = {"loss": [2.3, 1.1], "val_loss": [2.2, 1.3], "learning_rate": [1e-3, 1e-5]}
    >>> keras_convit.training.plot_learning_curves(history, path) == path
    True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing, so no learning-curve plot: pip install matplotlib")
        return None
    panels = [
        ("loss", ("loss", "val_loss")),
        ("accuracy", ("accuracy", "val_accuracy")),
        ("learning rate", ("learning_rate",)),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for axis, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            points = [(i + 1, v) for i, v in enumerate(history.get(key) or []) if v is not None]
            if points:
                label = "validation" if key.startswith("val_") else "train"
                axis.plot(*zip(*points, strict=True), marker=".", label=label)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if len(axis.get_legend_handles_labels()[0]) > 1:
            axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_analysis(path):
    """Nonlocality and gating across epochs (paper Figs. 5 and 6) from `<path>/analysis.jsonl`,
    as `nonlocality.png` and `gating.png` in `path`; skipped with a message without matplotlib."""
    from keras_convit import analysis

    try:
        analysis.plot_nonlocality(path, path=os.path.join(path, "nonlocality.png"))
        analysis.plot_gating(path, path=os.path.join(path, "gating.png"))
    except ImportError:
        print("matplotlib is missing, so no analysis plots: pip install matplotlib")


class _EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall-clock seconds to the logs as "epoch_seconds"."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def _augmentation(config):
    from keras_convit.data import Augmentation

    overrides = {} if config.repeats is None else {"repeats": config.repeats}
    return Augmentation.from_name(config.augmentation, **overrides)


def _canonical_model_name(name):
    """`convit_tiny` from "ConViTTiny", "convit-tiny" or "convit_tiny"; others unchanged."""
    import keras_convit

    def key(text):
        return "".join(character for character in text.lower() if character.isalnum())

    known = {key(known): known for known in [*SMALL_MODELS, *keras_convit.CONFIGS]}
    return known.get(key(name), name)


def _slug(dataset):
    return os.path.basename(os.path.normpath(dataset)).replace("/", "_").replace(":", "_")


def _is_empty(path):
    return os.path.isdir(path) and not os.listdir(path)


def _read_run(path):
    run_file = os.path.join(path, RUN_FILE)
    if not os.path.exists(run_file):
        return None
    with open(run_file) as file:
        return json.load(file)


def _write_run(path, config, status):
    import keras_convit

    run_file = os.path.join(path, RUN_FILE)
    temporary = f"{run_file}.tmp"
    with open(temporary, "w") as file:
        json.dump(
            {
                "status": status,
                "settings": dataclasses.asdict(config),
                "backend": keras.backend.backend(),
                "keras_convit": keras_convit.__version__,
            },
            file,
            indent=1,
        )
    os.replace(temporary, run_file)


def _summary(path):
    metrics_file = os.path.join(path, "metrics.json")
    if not os.path.exists(metrics_file):
        return "no metrics.json"
    with open(metrics_file) as file:
        accuracy = json.load(file).get("test_accuracy")
    return "test_accuracy " + (
        "?" if accuracy is None or math.isnan(accuracy) else f"{accuracy:.4f}"
    )
