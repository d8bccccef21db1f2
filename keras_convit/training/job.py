"""The main job: train a ConViT with the DeiT recipe, keep everything, report on held-out data.

What a run directory holds is listed in `keras_convit.training.run_directory`.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time

import keras

from keras_convit.analysis import plots
from keras_convit.analysis.callback import AnalysisLogger
from keras_convit.data.augmentation import Augmentation
from keras_convit.data.pipelines import load_dataset
from keras_convit.data.sources import resolve_source
from keras_convit.models.convit import from_preset
from keras_convit.presets import BASELINES, DEIT_TWIN_SUFFIX
from keras_convit.training.callbacks import (
    LearningRateLogger,
    NonFiniteLossError,
    NonFiniteLossGuard,
    RunCheckpoint,
)
from keras_convit.training.distillation import HardDistillation
from keras_convit.training.files import save_weights_safely
from keras_convit.training.lock import LOCK_FILE, run_lock
from keras_convit.training.report import held_out_report
from keras_convit.training.run_directory import (
    CHECKPOINT_DIR,
    UNREADABLE_FILE,
    RunDirectoryError,
    clear_run_directory,
    prepare_run_directory,
    read_run,
    write_run,
)


def build_model(config, num_classes):
    """The model of `config` (resolved): its preset with `config.model_args` on top; with
    `config.baseline` "deit" its DeiT twin (the `*_deit` preset's layout), with "in_place"
    the in-place ablation (`keras_convit.presets.BASELINES`); with `config.teacher`, with a
    distillation token and head.

    Example:
    >>> config = keras_convit.training.TrainConfig(baseline="deit").resolved()
    >>> model = keras_convit.training.build_model(config, 10)
    >>> model.name, model.output_shape, model.get_layer("blocks_0").use_gpsa
    ('convit_digits_deit', (None, 10), False)
    """
    arguments = dict(config.model_args)
    name = config.model
    if config.baseline:
        arguments.update(BASELINES[config.baseline])
        name += DEIT_TWIN_SUFFIX if config.baseline == "deit" else f"_{config.baseline}"
    if config.teacher:
        arguments["distillation"] = True
    return from_preset(
        config.model,
        **arguments,
        drop_path_rate=config.drop_path,
        input_shape=(config.image_size, config.image_size, 3),
        classes=num_classes,
        compile=False,
        name=name,
    )


def load_teacher(path):
    """The teacher of `--teacher`: a `.keras` classifier, loaded without its compile state."""
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise ValueError(f"Cannot load the teacher {path!r} as a .keras model: {error}") from error


def run_training(
    config,
    output_dir=None,
    resume=False,
    overwrite=False,
    explicit=(),
    data=None,
    verbose=None,
    accept_data_change=False,
):
    """Runs the main job and returns its metrics (also written to `metrics.json`).

    Nothing is written before training can start (the data read, the model built): a start
    that fails leaves the directory as it was. One process at a time holds a run directory
    (`run_lock`). A run that fails once training has started is marked "failed" with the error
    in `run.json` and resumes from its last committed epoch.

    Args:
        config: a `TrainConfig`; its None settings take the data set's defaults, and a small
            folder or TFDS set its size's (`small_data_defaults`).
        output_dir, resume, overwrite, explicit: see `prepare_run_directory`.
        data: an optional `keras_convit.data.DataBundle` to train on instead of
            `config.dataset` (its batch size must be `config.batch_size`).
        verbose: Keras `fit` verbosity; default 1 (progress bars) on a terminal, else 2 (one
            line per epoch).
        accept_data_change: resume even if the folder data set changed since the run began
            (its fingerprint, see `keras_convit.data.scan_folder`, differs).

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the last good epoch is kept and
            the run can be resumed).
        RunDirectoryError: see `prepare_run_directory`; also a resumed run whose data changed.
        RunLockedError: another process runs in that directory.

    Example (a tiny run: one epoch on half of the 8x8 digits):
    >>> import tempfile
    >>> config = keras_convit.training.TrainConfig(
    ...     image_size=8, epochs=1, fraction=0.5, scale_epochs=False, augmentation="none",
    ...     model_args={"hidden_dim": 16, "num_heads": 2, "depth": 1, "local_up_to_layer": 0})
    >>> metrics = keras_convit.training.run_training(
    ...     config, output_dir=tempfile.mkdtemp(), verbose=0)  # doctest: +ELLIPSIS
    Starting run in ...
    >>> metrics["epochs"], 0.0 <= metrics["test_accuracy"] <= 1.0, len(metrics["confusion_matrix"])
    (1, True, 10)
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    source, given = None, config
    config = given.resolved()
    if data is None:
        source = resolve_source(
            config.dataset,
            data_dir=config.data_dir,
            image_size=config.image_size,
            seed=config.split_seed,
        )
        # Full-length epochs keep the whole set's recipe at every fraction (the paper's protocol).
        kept = (1 - config.validation_fraction) * (
            1.0 if config.full_length_epochs else config.fraction
        )
        config = given.resolved(train_size=int(source.sizes["train"] * kept))
    if output_dir is None:  # choose it first, then hold it and check again
        output_dir = prepare_run_directory(config, None, resume, overwrite, explicit)[0]
    created = not os.path.exists(output_dir)
    locked_before = os.path.exists(os.path.join(output_dir, LOCK_FILE))
    try:
        with run_lock(output_dir):
            return _run_locked(
                config, output_dir, resume, overwrite, explicit, data, source, verbose,
                accept_data_change,
            )  # fmt: skip
    finally:
        _remove_unused_lock(output_dir, created, locked_before)


def _run_locked(
    config, output_dir, resume, overwrite, explicit, data, source, verbose, accept_data_change
):
    path, config, resuming = prepare_run_directory(config, output_dir, resume, overwrite, explicit)
    saved = read_run(path)
    checkpoint_dir = os.path.join(path, CHECKPOINT_DIR)
    committed = RunCheckpoint.read_state(checkpoint_dir) if resuming else None
    epochs = config.epochs
    print(
        f"{'Resuming' if resuming else 'Starting'} run in {path} "
        + (f"after epoch {committed['epoch']} of {epochs} " if committed else "")
        + f"(backend {keras.backend.backend()}):\n  "
        + ", ".join(f"{key}={value}" for key, value in dataclasses.asdict(config).items()),
        flush=True,
    )

    keras.utils.set_random_seed(config.seed)
    if data is None:
        data = load_dataset(
            source,
            image_size=config.image_size,
            batch_size=config.batch_size,
            augmentation=_augmentation(config),
            fraction=config.fraction,
            validation_fraction=config.validation_fraction,
            data_dir=config.data_dir,
            seed=config.seed,
            split_seed=config.split_seed,
            full_length_epochs=config.full_length_epochs,
        )
    scan = getattr(source, "scan", None)
    fingerprint = scan.fingerprint if scan is not None else None
    if resuming and saved and saved.get("data_fingerprint") not in (None, fingerprint):
        if not accept_data_change:
            raise RunDirectoryError(
                f"The data set changed since the run in {path} began (fingerprint "
                f"{saved['data_fingerprint'][:12]} -> {str(fingerprint)[:12]}; now "
                f"{scan.summary(limit=0).splitlines()[0] if scan else 'no scan'}). Pass "
                "--accept-data-change to resume on the new data, or --overwrite to start again."
            )
        print("The data set changed since the run began; resuming on the new data.", flush=True)
    print(
        f"Data: {data.train_size} training images ({data.steps_per_epoch} batches of "
        f"{config.batch_size} an epoch"
        + (f", {data.passes_per_epoch:.3g} passes" if data.passes_per_epoch != 1 else "")
        + f"), {data.validation_size} validation, {data.test_size} test; "
        f"{data.num_classes} classes.",
        flush=True,
    )
    if scan is not None and (scan.unreadable or scan.skipped):
        print(f"Scanned {scan.root}: {scan.summary()}", flush=True)
    for warning in config.warnings(data.steps_per_epoch):
        print(f"Warning: {warning}", file=sys.stderr, flush=True)
    model = build_model(config, data.num_classes)
    model.compile(**config.compile_arguments(model, data.steps_per_epoch))
    # What `fit` trains: the model, or a distiller of it whose weights hold the teacher's too.
    trainee = model
    if config.teacher:
        trainee = HardDistillation(model, load_teacher(config.teacher))
        trainee.compile(**config.compile_arguments(trainee, data.steps_per_epoch))

    # Training can start: only now is the directory changed.
    if not resuming and saved is not None:
        clear_run_directory(path)
    write_run(path, config, "running", data_fingerprint=fingerprint)
    if scan is not None and scan.unreadable:
        _write_unreadable(path, scan)
    monitor = "val_accuracy" if data.validation is not None else None
    checkpoint = RunCheckpoint(
        checkpoint_dir, monitor=monitor, history_csv=os.path.join(path, "history.csv")
    )
    callbacks = training_callbacks(checkpoint, use_ema=config.use_ema)
    if config.analysis_every:
        # Before the checkpoint, so a committed epoch always has its analysis record.
        probe = data.validation if data.validation is not None else data.test
        logger = AnalysisLogger(path, probe, every=config.analysis_every, append=resuming)
        callbacks.insert(len(callbacks) - 1, logger)
    try:
        trainee.fit(
            data.train,
            validation_data=data.validation,
            epochs=epochs,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles
        )
        trainee.load_weights(checkpoint.best_weights_path)
        if config.use_ema:
            # The file holds the raw weights and, in the optimizer, their average: use it.
            trainee.optimizer.finalize_variable_values(trainee.trainable_variables)
        report = held_out_report(model, data.test, data.class_names)
    except NonFiniteLossError as error:
        write_run(path, config, "failed", data_fingerprint=fingerprint, error=str(error))
        raise NonFiniteLossError(
            f"{error} Run directory: {path}; to resume, e.g. keras-convit train --output-dir "
            f"{path} --resume --lr {config.lr / 10:.3g}"
        ) from error
    except Exception as error:
        write_run(path, config, "failed", data_fingerprint=fingerprint, error=str(error))
        raise

    metrics = {
        **report,
        "best_epoch": checkpoint.best_epoch,
        "best_val_accuracy": checkpoint.best_value,
        "epochs": checkpoint.epoch,
        "train_seconds": round(sum(checkpoint.history.get("epoch_seconds", [])), 1),
        "train_size": data.train_size,
        "passes_per_epoch": round(data.passes_per_epoch, 3),
        "validation_size": data.validation_size,
        "test_size": data.test_size,
        "unreadable_files": len(scan.unreadable) if scan is not None else 0,
        "parameters": model.count_params(),
        "backend": keras.backend.backend(),
        "settings": dataclasses.asdict(config),
    }
    save_weights_safely(model, os.path.join(path, "best.weights.h5"))
    model.save(os.path.join(path, "model.keras"), overwrite=True)
    with open(os.path.join(path, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=1)
    _plot_run(path, checkpoint.history, report, analysis=bool(config.analysis_every))
    write_run(path, config, "finished", data_fingerprint=fingerprint)
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


class _EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall-clock seconds to the logs as "epoch_seconds"."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def _remove_unused_lock(path, created, locked_before):
    """A start that failed leaves nothing: not the directory it made, nor the lock file it put
    in a directory that holds no run."""
    if locked_before or not os.path.isdir(path) or read_run(path) is not None:
        return
    if created and set(os.listdir(path)) <= {LOCK_FILE}:
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(path, LOCK_FILE))


def _write_unreadable(path, scan):
    """`unreadable.txt`: one line per image file of the data set that does not decode."""
    with open(os.path.join(path, UNREADABLE_FILE), "w") as file:
        file.writelines(f"{image}\t{reason}\n" for image, reason in scan.unreadable)


def _augmentation(config):
    overrides = {} if config.repeats is None else {"repeats": config.repeats}
    return Augmentation.from_name(config.augmentation, **overrides)


def _plot_run(path, history, report, analysis=False):
    """The run's figures: learning curves, the test confusion matrix, and nonlocality and
    gating across epochs (paper Figs. 5 and 6) from `analysis.jsonl`; skipped with a message
    without matplotlib."""
    try:
        plots.plot_learning_curves(history, os.path.join(path, "learning_curves.png"))
        plots.plot_confusion_matrix(
            report["confusion_matrix"],
            report["class_names"],
            os.path.join(path, "confusion_matrix.png"),
        )
        if analysis:
            plots.plot_nonlocality(path, path=os.path.join(path, "nonlocality.png"))
            plots.plot_gating(path, path=os.path.join(path, "gating.png"))
    except ImportError:
        print("matplotlib is missing, so no plots: pip install matplotlib", flush=True)
