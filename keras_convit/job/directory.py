"""The run directory of the main job: where a run goes, whether it resumes, and its status.

A run directory holds:
    run.json              the resolved settings and the status (`STATUSES` of job/record.py)
    checkpoint/           per-epoch state while the run is unfinished (see `RunCheckpoint`)
    history.csv           one row per epoch: losses, accuracies, learning rate, seconds
    best.weights.h5       the weights of the best validation epoch (the last one without
                          validation), EMA weights when `use_ema`
    model.keras           the whole model with those weights, compiled as it was trained
    metrics.json          test accuracy, loss, per-class accuracy and confusion matrix of that
                          model on the held-out test split, ...
    preset/               that model as a preset (`keras_convit.from_preset("RUN/preset")`),
                          with a model card of the run's settings and metrics
    learning_curves.png   loss, accuracy and learning rate per epoch
    confusion_matrix.png  the test confusion matrix
    unreadable.txt        the images of a folder data set that do not decode (left out)
    tensorboard/          with --tensorboard: event files (train/, validation/, analysis/)
    .lock                 held by the process running in the directory (`run_lock`)
"""

import dataclasses
import json
import math
import os
import shutil

from keras_convit.job.config import TrainConfig
from keras_convit.job.lock import LOCK_FILE
from keras_convit.job.record import DAMAGED, RUN_FILE, UNFINISHED, read_run
from keras_convit.job.scale import resume_problem
from keras_convit.training.callbacks import RunCheckpoint

CHECKPOINT_DIR = "checkpoint"
UNREADABLE_FILE = "unreadable.txt"
METRICS_FILE = "metrics.json"
PRESET_DIR = "preset"


class RunDirectoryError(RuntimeError):
    """The output directory cannot be used as asked; the message says why and what to do."""


def choose_run_directory(config):
    """The default run directory of `config`: runs/<name>, runs/<name>-2, ...: the first that is
    free or holds an unfinished run with the same settings.

    Example:
    >>> path = keras_convit.job.choose_run_directory(keras_convit.job.TrainConfig().resolved())
    >>> path.startswith("runs/digits-convit_digits")
    True
    """
    settings = dataclasses.asdict(config)
    base = os.path.join("runs", config.run_name)
    for index in range(1, 10_000):
        path = base if index == 1 else f"{base}-{index}"
        saved = read_run(path)
        if not os.path.exists(path) or _is_empty(path):
            return path
        if saved and saved["status"] in UNFINISHED and saved["settings"] == settings:
            return path
    raise RunDirectoryError(f"No free run directory under {base}-*.")


def prepare_run_directory(config, output_dir, resume=False, overwrite=False, explicit=()):
    """Decides whether the run in `output_dir` resumes; returns (path, config, resuming).

    - A new or empty directory starts a new run.
    - An unfinished run (killed or failed) with the same settings resumes: running the same
      command again after a kill continues it.
    - `resume=True` continues the unfinished run with its saved settings, changed by the
      settings named in `explicit` (the flags given on the command line), if any; not a
      change its checkpoint cannot take (`keras_convit.job.scale.resume_problem`).
    - `overwrite=True` replaces a previous run (only a directory that holds one); the job
      deletes it only once the new run can start (`clear_run_directory`).
    - An unfinished run that committed no epoch holds nothing to keep: a run with other
      settings replaces it.
    - A damaged `run.json` (or checkpoint `state.json`) never blocks `overwrite=True`;
      without it, the error names the file.
    - Anything else is an error: an existing run is never silently overwritten.
    Without an `output_dir` of the user's, `choose_run_directory` picks one.

    Example:
    >>> import tempfile
    >>> config = keras_convit.job.TrainConfig().resolved()
    >>> path, _, resuming = keras_convit.job.prepare_run_directory(config, tempfile.mkdtemp())
    >>> resuming
    False
    """
    settings = dataclasses.asdict(config)
    path = os.fspath(output_dir)
    if not os.path.exists(path) or _is_empty(path):
        if resume:
            raise RunDirectoryError(f"--resume: there is no run to resume in {path}.")
        return path, config, False
    saved = read_run(path)
    if saved is None:
        raise RunDirectoryError(
            f"{path} exists, is not empty and holds no keras-convit run ({RUN_FILE} is "
            "missing); choose another --output-dir."
        )
    if overwrite:
        return path, config, False
    if saved["status"] == DAMAGED:
        raise RunDirectoryError(
            f"{saved['damaged']}: it cannot be resumed. Pass --overwrite to replace the run, or "
            "choose another --output-dir."
        )
    if saved["status"] == "finished":
        raise RunDirectoryError(
            f"{path} already holds a finished run ({_summary(path)}). Pass --overwrite to "
            "replace it, or choose another --output-dir."
        )
    if resume:
        merged = dict(saved["settings"])
        merged.update({key: settings[key] for key in explicit})
        resumed = TrainConfig(**merged)
        problem = resume_problem(saved["settings"], resumed)
        if problem:
            raise RunDirectoryError(problem)
        return path, resumed, True
    if saved["settings"] == settings:
        return path, config, True
    if not RunCheckpoint.read_state(os.path.join(path, CHECKPOINT_DIR)):
        return path, config, False
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


def clear_run_directory(path):
    """Deletes everything in the run directory `path` but its lock."""
    for name in os.listdir(path):
        if name == LOCK_FILE:
            continue
        entry = os.path.join(path, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.remove(entry)


def _is_empty(path):
    return os.path.isdir(path) and not set(os.listdir(path)) - {LOCK_FILE}


def _summary(path):
    metrics_file = os.path.join(path, METRICS_FILE)
    if not os.path.exists(metrics_file):
        return "no metrics.json"
    try:
        with open(metrics_file, encoding="utf-8") as file:
            accuracy = json.load(file).get("test_accuracy")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return f"{metrics_file} unreadable"
    number = isinstance(accuracy, (int, float)) and not math.isnan(accuracy)
    return "test_accuracy " + (f"{accuracy:.4f}" if number else "?")


def check_data_change(path, saved, resuming, scan, accept_data_change):
    """Raises `RunDirectoryError` if a resumed run's folder data set changed since it began
    (`saved`, its run.json, records the fingerprint of the `scan` then), unless
    `accept_data_change`."""
    recorded = (saved or {}).get("data_fingerprint")
    fingerprint = scan.fingerprint if scan is not None else None
    if not resuming or recorded in (None, fingerprint):
        return
    if not accept_data_change:
        now = scan.summary(limit=0).splitlines()[0] if scan else "no scan"
        raise RunDirectoryError(
            f"The data set changed since the run in {path} began (fingerprint "
            f"{recorded[:12]} -> {str(fingerprint)[:12]}; now {now}). Pass "
            "--accept-data-change to resume on the new data, or --overwrite to start again."
        )
    print("The data set changed since the run began; resuming on the new data.", flush=True)
