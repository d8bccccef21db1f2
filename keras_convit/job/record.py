"""The record of a run, `run.json`: its status ("running", "failed", "finished"), its resolved
settings, the fingerprint of its data, its error, the backend and the keras_convit version."""

import dataclasses
import json
import os

import keras

from keras_convit._files import write_json_atomically
from keras_convit.version import __version__

RUN_FILE = "run.json"
# Settings renamed since runs were first recorded: a run of an earlier version still resumes.
RENAMED_SETTINGS = {
    "lr": "learning_rate",
    "base_lr": "base_learning_rate",
    "min_lr": "min_learning_rate",
    "clip_norm": "clipnorm",
    "drop_path": "drop_path_rate",
}


def read_run(path):
    """The `run.json` record of the run directory `path` (settings under today's names), or
    None when it holds none.

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_run(folder, keras_convit.job.TrainConfig(epochs=3), "running")
    >>> record = read_run(folder)
    >>> record["status"], record["settings"]["epochs"]
    ('running', 3)
    """
    run_file = os.path.join(path, RUN_FILE)
    if not os.path.exists(run_file):
        return None
    with open(run_file, encoding="utf-8") as file:
        record = json.load(file)
    settings = record.get("settings", {})
    record["settings"] = {RENAMED_SETTINGS.get(key, key): value for key, value in settings.items()}
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
