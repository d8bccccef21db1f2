"""The main job: train a ConViT with the DeiT recipe, keep everything, report on held-out data.

What a run directory holds is listed in `keras_convit.job.directory`.
"""

import dataclasses
import functools
import os
import shutil
import sys

import keras

from keras_convit._files import (
    atomic_path,
    save_weights_safely,
    write_json_atomically,
    write_text_atomically,
)
from keras_convit.analysis.callback import AnalysisLogger
from keras_convit.data.pipelines import load_dataset
from keras_convit.data.sources import resolve_source
from keras_convit.job.directory import (
    CHECKPOINT_DIR,
    METRICS_FILE,
    PRESET_DIR,
    UNREADABLE_FILE,
    RunDirectoryError,
    check_data_change,
    choose_run_directory,
    clear_run_directory,
    prepare_run_directory,
)
from keras_convit.job.distribute import (
    EvenBatches,
    data_parallel_trainee,
    distribution_scope,
    parse_distribute,
)
from keras_convit.job.fine_tuning import (
    RUN_MODEL_FILE,
    read_source_weights,
    weight_file,
    with_model_of_weights,
)
from keras_convit.job.fitting import fit_to_the_end, training_callbacks
from keras_convit.job.lock import LOCK_FILE, remove_unused_lock, run_lock
from keras_convit.job.model import build_model, load_teacher, shallow_model
from keras_convit.job.processes import MeanOverProcesses, launched_processes, run_directory_of
from keras_convit.job.record import read_run, write_run
from keras_convit.job.report import held_out_report, plot_run
from keras_convit.job.scale import tensorboard_callbacks
from keras_convit.models.default_compile import compile_portably
from keras_convit.models.preset_files import save_to_preset
from keras_convit.training.callbacks import NonFiniteLossError, RunCheckpoint
from keras_convit.training.distillation import HardDistillation
from keras_convit.training.preemption import Preempted, PreemptionGuard


@dataclasses.dataclass(frozen=True)
class _Run:
    """One run as it starts: where, with which resolved settings, on which data."""

    path: str
    config: object
    resuming: bool
    saved: dict  # the run.json found there, or None
    data: object  # a `DataBundle`
    scan: object  # the folder data set's `ScanReport`, or None
    source: object = None  # the `SourceWeights` of `--weights`, read before the run started
    processes: object = None  # the job's `Processes`

    @property
    def fingerprint(self):
        return self.scan.fingerprint if self.scan is not None else None

    @property
    def source_record(self):
        """What run.json keeps of the source weights: read now, or by the run resumed."""
        if self.resuming and self.saved is not None:
            return self.saved.get("source_weights")
        return self.source.record() if self.source is not None else None

    def record(self, status, error=None):
        source, fingerprint = self.source_record, self.fingerprint
        write_run(self.path, self.config, status, fingerprint, error, source_weights=source)


def run_training(
    config,
    output_dir=None,
    resume=False,
    overwrite=False,
    explicit=(),
    data=None,
    verbose=None,
    accept_data_change=False,
    distribute="none",
):
    """Runs the main job and returns its metrics (also written to `metrics.json`).

    Nothing is written before training can start (the data read, the model built): a start
    that fails leaves the directory as it was. One process at a time holds a run directory
    (`run_lock`). A run that fails once training has started is marked "failed" with the error
    in `run.json` and resumes from its last committed epoch. SIGTERM or SIGINT during training
    (`PreemptionGuard`) stops it after the current step with that step's state committed,
    marked "preempted", and raises `Preempted`; the same call resumes it mid-epoch.

    Args:
        config: a `TrainConfig`; its None settings take the data set's defaults, and a small
            folder or TFDS set its size's (`small_data_defaults`).
        output_dir: the run directory; default `choose_run_directory(config)`.
        resume, overwrite, explicit: see `prepare_run_directory`.
        data: an optional `keras_convit.data.DataBundle` to train on instead of
            `config.dataset` (its batch size must be `config.batch_size`).
        verbose: Keras `fit` verbosity; default 1 (progress bars) on a terminal, else 2 (one
            line per epoch).
        accept_data_change: resume even if the folder data set changed since the run began
            (its fingerprint, see `keras_convit.data.scan_folder`, differs).
        distribute: "none", "data" (data parallel) or "model:N" (model parallel, JAX); see
            `distribution_scope`. Not a setting of the run: it resumes on other devices.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the last good epoch is kept and
            the run can be resumed).
        RunDirectoryError: see `prepare_run_directory`; also a resumed run whose data changed.
        RunLockedError: another process runs in that directory.
        Preempted: a signal stopped the run (its state committed: run again to resume).

    Example (a tiny run: one epoch on half of the 8x8 digits):
    >>> import tempfile
    >>> config = keras_convit.job.TrainConfig(
    ...     image_size=8, epochs=1, fraction=0.5, scale_epochs=False, augmentation="none",
    ...     model_args={"hidden_dim": 16, "num_heads": 2, "depth": 1, "local_up_to_layer": 0})
    >>> metrics = keras_convit.job.run_training(
    ...     config, output_dir=tempfile.mkdtemp(), verbose=0)  # doctest: +ELLIPSIS
    Starting run in ...
    >>> metrics["epochs"], 0.0 <= metrics["test_accuracy"] <= 1.0, len(metrics["confusion_matrix"])
    (1, True, 10)
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    parse_distribute(distribute)  # a bad value fails before anything is read
    # A resumed run continues from its own checkpoint, never again from its source weights.
    weights = read_source_weights(config.weights) if config.weights and not resume else None
    if weights is not None:
        config = with_model_of_weights(config, weights)
    source = None
    if data is None:
        source = resolve_source(
            config.dataset,
            data_dir=config.data_dir,
            image_size=config.resolved_image_size(),
            seed=config.split_seed,
        )
        # Full-length epochs keep the whole set's recipe at every fraction (the paper's protocol).
        share = 1.0 if config.full_length_epochs else config.fraction
        kept = (1 - config.validation_fraction) * share
        config = config.resolved(train_size=int(source.sizes["train"] * kept))
    else:
        config = config.resolved()
    if output_dir is None:
        if resume or overwrite:
            raise RunDirectoryError("--resume and --overwrite need an explicit --output-dir.")
        output_dir = choose_run_directory(config)
    with launched_processes(distribute) as processes:
        with run_directory_of(processes, output_dir) as output_dir:
            created = not os.path.exists(output_dir)
            locked_before = os.path.exists(os.path.join(output_dir, LOCK_FILE))
            try:
                with run_lock(output_dir):
                    path, config, resuming = prepare_run_directory(
                        config, output_dir, resume, overwrite, explicit
                    )
                    run = _start(
                        path, config, resuming, source, data, accept_data_change, processes
                    )
                    run = dataclasses.replace(run, source=weights, processes=processes)
                    shallow = functools.partial(shallow_model, config, run.data.num_classes)
                    scope = distribution_scope(distribute, config.batch_size, processes, shallow)
                    with scope as replicas:
                        return _train(run, verbose if processes.writer else 0, replicas)
            finally:
                remove_unused_lock(output_dir, created, locked_before)


def _start(path, config, resuming, source, data, accept_data_change, processes):
    """Reads the data and checks it against the run being resumed; writes nothing."""
    saved = read_run(path)
    committed = RunCheckpoint.read_state(os.path.join(path, CHECKPOINT_DIR)) if resuming else None
    processes.check_same_start(path, committed)
    print(
        f"{'Resuming' if resuming else 'Starting'} run in {path} "
        + (f"after epoch {committed['epoch']} of {config.epochs} " if committed else "")
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
            augmentation=config.augmentation_settings(),
            fraction=config.fraction,
            validation_fraction=config.validation_fraction,
            data_dir=config.data_dir,
            seed=config.seed,
            split_seed=config.split_seed,
            full_length_epochs=config.full_length_epochs,
            shard=(processes.index, processes.count) if processes.several else None,
        )
    run = _Run(path, config, resuming, saved, data, getattr(source, "scan", None))
    check_data_change(path, saved, resuming, run.scan, accept_data_change)
    print(
        f"Data: {data.train_size} training images ({data.steps_per_epoch} batches of "
        f"{config.batch_size} an epoch"
        + (f", {data.passes_per_epoch:.3g} passes" if data.passes_per_epoch != 1 else "")
        + f"), {data.validation_size} validation, {data.test_size} test; "
        f"{data.num_classes} classes.",
        flush=True,
    )
    if run.scan is not None and (run.scan.unreadable or run.scan.skipped):
        print(f"Scanned {run.scan.root}: {run.scan.summary()}", flush=True)
    for warning in config.warnings(data.steps_per_epoch):
        print(f"Warning: {warning}", file=sys.stderr, flush=True)
    return run


def _train(run, verbose, replicas=1):
    """Builds the model, trains it (the directory changes only from here), reports and plots."""
    config, data = run.config, run.data
    validation, test = (
        EvenBatches.of(batches, size, data.eval_batch_size or config.batch_size, replicas)
        for batches, size in ((data.validation, data.validation_size), (data.test, data.test_size))
    )
    if run.resuming or run.source is None:
        model = build_model(config, data.num_classes)
    elif run.source.architecture is None:  # "imagenet"
        model = build_model(config, data.num_classes, weights=run.source.path)
    else:
        with weight_file(run.source.path) as file:
            model = build_model(config, data.num_classes, weights=file)
    # Saved with jit_compile None: the .keras file follows the loading backend's rule.
    arguments = config.compile_arguments(model, data.steps_per_epoch)
    compile_portably(model, **validation.compile_arguments(test.compile_arguments(arguments)))
    # What `fit` trains: the model, or a distiller of it whose weights hold the teacher's too.
    trainee = model
    if config.teacher:
        trainee = HardDistillation(model, load_teacher(config.teacher))
        arguments = config.compile_arguments(trainee, data.steps_per_epoch)
        compile_portably(trainee, **validation.compile_arguments(test.compile_arguments(arguments)))

    if not run.resuming and run.saved is not None:
        clear_run_directory(run.path)
    run.record("running")
    if run.scan is not None and run.scan.unreadable:
        lines = "".join(f"{image}\t{reason}\n" for image, reason in run.scan.unreadable)
        write_text_atomically(os.path.join(run.path, UNREADABLE_FILE), lines)
    checkpoint = RunCheckpoint(
        os.path.join(run.path, CHECKPOINT_DIR),
        monitor="val_accuracy" if data.validation is not None else None,
        history_csv=os.path.join(run.path, "history.csv"),
    )
    callbacks = [validation.validation_callback(), *training_callbacks(checkpoint, config.use_ema)]
    if run.processes.several:
        trainee = data_parallel_trainee(trainee, run.processes)
        callbacks.insert(0, MeanOverProcesses(run.processes))
    if config.analysis_every:
        # Before the checkpoint, so a committed epoch always has its analysis record.
        probe = data.validation if data.validation is not None else data.test
        logger = AnalysisLogger(run.path, probe, every=config.analysis_every, append=run.resuming)
        callbacks.insert(len(callbacks) - 1, logger)
    callbacks += tensorboard_callbacks(config, run.path, callbacks)  # after the commit
    # Last: an epoch that a signal ends is committed (and logged) first.
    guard = PreemptionGuard(
        checkpoint, agree=run.processes.agreed_signal, mean_logs=run.processes.mean_logs
    )
    callbacks.append(guard)
    try:
        with guard:
            fit_to_the_end(
                trainee,
                dataclasses.replace(data, validation=validation.batches),
                config.epochs,
                callbacks,
                checkpoint.interrupted,
                verbose,
            )
        if run.processes.several:
            held = run.processes.check_replicas_agree(
                trainee.variables + trainee.optimizer.variables
            )
            print(f"All {run.processes.count} processes hold the same {held} variables.")
        checkpoint.load_best_weights(trainee)
        if config.use_ema:
            # The file holds the raw weights and, in the optimizer, their average: use it.
            trainee.optimizer.finalize_variable_values(trainee.trainable_variables)
        report = held_out_report(model, data.test, data.class_names, even=test)
    except Preempted as stop:
        run.record("preempted", error=str(stop))
        raise
    except NonFiniteLossError as error:
        run.record("failed", error=str(error))
        raise NonFiniteLossError(
            f"{error} Run directory: {run.path}; to resume, e.g. keras-convit train --output-dir "
            f"{run.path} --resume --learning-rate {config.learning_rate / 10:.3g}"
        ) from error
    except Exception as error:
        run.record("failed", error=str(error))
        raise
    return _finish(run, model, checkpoint, report)


def _finish(run, model, checkpoint, report):
    """Writes the run's model, metrics and figures, and marks it finished."""
    data, path = run.data, run.path
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
        "unreadable_files": len(run.scan.unreadable) if run.scan is not None else 0,
        "parameters": model.count_params(),
        "backend": keras.backend.backend(),
        "settings": dataclasses.asdict(run.config),
    }
    save_weights_safely(model, os.path.join(path, "best.weights.h5"))
    with atomic_path(os.path.join(path, RUN_MODEL_FILE)) as temporary:
        model.save(temporary)
    write_json_atomically(os.path.join(path, METRICS_FILE), metrics)
    save_to_preset(model, os.path.join(path, PRESET_DIR), run_directory=path)
    plot_run(path, run.config, checkpoint.history, report)
    run.record("finished")
    shutil.rmtree(os.path.join(path, CHECKPOINT_DIR), ignore_errors=True)
    print(
        f"Test accuracy {metrics['test_accuracy']:.4f} on {data.test_size} held-out images "
        f"(best epoch {metrics['best_epoch']} of {metrics['epochs']}); wrote {path}/",
        flush=True,
    )
    return metrics
