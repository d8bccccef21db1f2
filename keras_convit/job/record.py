"""The record of a run, `run.json`: its status (one of `STATUSES`), its resolved
settings, the fingerprint of its data, its error, the backend and the keras_convit version."""

import dataclasses
import json
import os

import keras

from keras_convit._files import write_json_atomically
from keras_convit.version import __version__

RUN_FILE = "run.json"
# "preempted": stopped by SIGTERM or SIGINT with its state committed. All but "finished" resume.
STATUSES = ("running", "failed", "preempted", "finished")
UNFINISHED = tuple(status for status in STATUSES if status != "finished")
DAMAGED = "damaged"  # the status `read_run` gives a run.json it cannot read
# Settings renamed since runs were first recorded: a run of an earlier version still resumes.
RENAMED_SETTINGS = {
    "lr": "learning_rate",
    "base_lr": "base_learning_rate",
    "min_lr": "min_learning_rate",
    "clip_norm": "clipnorm",
    "drop_path": "drop_path_rate",
}
# Settings added since, with the value an earlier run had in effect: its same command resumes.
ADDED_SETTINGS = {
    "dtype_policy": "float32",
    "remat": False,
    "steps_per_execution": 1,
    "tensorboard": False,
}


def read_run(path):
    """The `run.json` record of the run directory `path` (settings under today's names, those
    added since with the value they had), or None when it holds none.

    A file that is not a record (garbage, cut short, edited by hand) is read as the record of
    a damaged run, `{"status": "damaged", "settings": {}, "damaged": why}`: `--overwrite`
    replaces it, nothing resumes it, and every error about it names the file.

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_run(folder, keras_convit.job.TrainConfig(epochs=3), "running")
    >>> record = read_run(folder)
    >>> record["status"], record["settings"]["epochs"]
    ('running', 3)
    >>> _ = open(os.path.join(folder, "run.json"), "w").write("{garbage")
    >>> read_run(folder)["status"]
    'damaged'
    """
    run_file = os.path.join(path, RUN_FILE)
    if not os.path.exists(run_file):
        return None
    try:
        with open(run_file, encoding="utf-8") as file:
            record = json.load(file)
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
            raise ValueError("not a run record (no settings)")
        if record.get("status") not in STATUSES:
            raise ValueError(f"unknown status {record.get('status')!r}")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = f"{run_file} is damaged ({type(error).__name__}: {error})"
        return {"status": DAMAGED, "settings": {}, "damaged": reason}
    settings = record["settings"]
    renamed = {RENAMED_SETTINGS.get(key, key): value for key, value in settings.items()}
    record["settings"] = {**ADDED_SETTINGS, **renamed}
    return record


def write_run(path, config, status, data_fingerprint=None, error=None, source_weights=None):
    """Writes `run.json` (status, settings, data fingerprint, the weights it started from,
    error, backend, version) atomically."""
    record = {
        "status": status,
        "settings": dataclasses.asdict(config),
        "data_fingerprint": data_fingerprint,
        "source_weights": source_weights,
        "backend": keras.backend.backend(),
        "keras_convit": __version__,
    }
    if error is not None:
        record["error"] = error
    write_json_atomically(os.path.join(path, RUN_FILE), record)
