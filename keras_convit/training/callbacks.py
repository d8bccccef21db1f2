"""Callbacks that make a run resumable and fail loudly: an atomic per-epoch checkpoint that also
keeps the best weights and the full history; the guard against a non-finite loss and the epoch
log additions are in `monitors.py`, imported here."""

import contextlib
import json
import math
import os
import shutil
import warnings

import keras

from keras_convit._files import (
    atomic_path,
    save_weights_safely,
    write_json_atomically,
)
from keras_convit._keras_compat import set_initial_epoch
from keras_convit.training.checkpoint_faults import (  # noqa: F401 (the errors: re-exported)
    CheckpointWriteError,
    DamagedCheckpointError,
    NonFiniteWeightsError,
    check_finite_weights,
    resume_advice,
    short_error,
    write_failure,
)
from keras_convit.training.history_file import write_history_csv
from keras_convit.training.monitors import (  # noqa: F401 (re-exported: imported from here)
    EpochTimer,
    LearningRateLogger,
    NonFiniteLossError,
    NonFiniteLossGuard,
)
from keras_convit.training.preemption import merge_epoch_logs

STATE_FILE = "state.json"
INTERRUPTED_WEIGHTS = "interrupted.weights.h5"


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the whole training state after every epoch and restores it when `fit` starts.

    `directory` holds `state.json` (the commit point, replaced atomically), the last two epochs'
    weights with the optimizer state (so the schedule, AdamW moments and EMA resume exactly) and
    a copy of the best epoch's weights by `monitor` (a copy, not a link: damage to one file
    leaves the others). A run killed at any moment, even mid-write, restarts from the last
    committed epoch; when that epoch's file is damaged (cut short, say), from the one before,
    with a warning naming the file; `fit(epochs=N)` then runs only the epochs left, so the run
    ends with N epochs in all. An epoch whose weights are not all finite is never committed
    (`NonFiniteWeightsError`), and one that cannot be written, e.g. on a full disk, raises
    `CheckpointWriteError` (an `OSError`) with the committed state untouched. With
    `history_csv`, the full history is rewritten there each epoch. Place it after callbacks
    that add to the epoch logs. A run stopped mid-epoch (`PreemptionGuard`) commits the state
    of its last step with `commit_interrupted`; `fit` then restarts from it, and the epoch's
    remaining steps (`interrupted["step"]` were run) complete it.

    Args:
        directory: folder for the checkpoint (created).
        monitor: epoch-log key for the best weights, e.g. "val_accuracy" (ties go to the later
            epoch); None or a key that is absent keeps the last epoch as the best.
        mode: "max" or "min".
        history_csv: optional path of a CSV file mirroring the history.

    Example:
    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> checkpoint = keras_convit.training.RunCheckpoint(tempfile.mkdtemp(), monitor="loss",
    ...                                                  mode="min")
    >>> _ = model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=2, verbose=0,
    ...               callbacks=[checkpoint])
    >>> checkpoint.epoch, len(checkpoint.history["loss"]), checkpoint.best_epoch
    (2, 2, 2)
    """

    def __init__(self, directory, monitor="val_accuracy", mode="max", history_csv=None):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f'`mode` must be "max" or "min", got {mode!r}.')
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.mode = mode
        self.history_csv = None if history_csv is None else os.fspath(history_csv)
        self.state = self.read_state(self.directory) or _empty_state()

    @staticmethod
    def read_state(directory):
        """The committed state dict of a checkpoint folder, or None when there is none; a
        `state.json` that cannot be read raises `DamagedCheckpointError` naming it."""
        path = os.path.join(directory, STATE_FILE)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as file:
                state = json.load(file)
            if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
                raise ValueError("not a checkpoint state (no epoch count)")
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
            raise DamagedCheckpointError(
                f"{path} is damaged ({type(error).__name__}: {error}): the run cannot resume. "
                "Pass --overwrite to start the run again, or choose another --output-dir."
            ) from error
        return {**_empty_state(), **state}  # earlier versions wrote no "previous_weights"

    @property
    def epoch(self):
        """Epochs completed and committed."""
        return self.state["epoch"]

    @property
    def history(self):
        """{log key: [value per epoch]} over all epochs, across restarts."""
        return self.state["history"]

    @property
    def interrupted(self):
        """{"epoch", "step", "logs", "seconds", "weights"} of the epoch a signal stopped after
        `step` of its steps (its state committed in the file `weights`), or None."""
        return self.state["interrupted"]

    @property
    def best_epoch(self):
        return self.state["best_epoch"]

    @property
    def best_value(self):
        return self.state["best_value"]

    def path(self, name):
        return None if name is None else os.path.join(self.directory, name)

    @property
    def best_weights_path(self):
        return self.path(self.state["best_weights"])

    @property
    def last_weights_path(self):
        return self.path(self.state["last_weights"])

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        self.state = self.read_state(self.directory) or _empty_state()
        self._remove_stale_files()
        if self.state["last_weights"] is None and self.interrupted is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        if not self._load_interrupted_weights():
            if self.state["last_weights"] is None:  # stopped in the first epoch, file damaged
                return
            self._load_last_good_weights()
        set_initial_epoch(self.model, self.state["epoch"])
        if self.history_csv:  # a kill between the commit and the CSV left it an epoch behind
            self._write_history_csv(self.state)

    def load_best_weights(self, model=None):
        """Loads the best epoch's weights into `model` (default: the trained one); when that
        file is damaged, the last epoch's, with a warning naming the file. An error names
        every file tried."""
        model = model or self.model
        try:
            model.load_weights(self.best_weights_path)
            return self.best_weights_path
        except Exception as error:
            damaged = f"{self.best_weights_path} is damaged ({short_error(error)})"
        try:
            model.load_weights(self.last_weights_path)
        except Exception as error:
            raise DamagedCheckpointError(
                f"{damaged}, and so is {self.last_weights_path} ({short_error(error)}). Pass "
                "--overwrite to start the run again."
            ) from error
        warnings.warn(f"{damaged}: the last epoch's weights are used instead.", stacklevel=2)
        return self.last_weights_path

    def commit_interrupted(self, epoch, step, part_steps, logs, seconds):
        """Commits the state after `step` steps of `epoch` (1-based), the epoch unfinished:
        `part_steps` of them ran in this `fit`, with the running `logs`, in `seconds`."""
        logs = {key: _to_float(value) for key, value in (logs or {}).items()}
        check_finite_weights(self.model, epoch, self._kept())
        earlier = self.interrupted
        if earlier is not None:  # stopped twice in one epoch: the parts add up
            before = earlier["step"]
            logs = merge_epoch_logs(earlier["logs"], before, logs, part_steps)
            seconds += earlier["seconds"]
        state = dict(self.state)
        state["interrupted"] = {"epoch": epoch, "step": step, "logs": logs,
                                "seconds": seconds, "weights": INTERRUPTED_WEIGHTS}  # fmt: skip
        try:
            save_weights_safely(self.model, self.path(INTERRUPTED_WEIGHTS))
            write_json_atomically(os.path.join(self.directory, STATE_FILE), state)
        except Exception as error:
            raise CheckpointWriteError(
                f"Cannot write the checkpoint of step {step} of epoch {epoch} in "
                f"{self.directory}: {write_failure(error)}. {self._kept()} {resume_advice(error)}"
            ) from error
        self.state = state

    def _load_interrupted_weights(self):
        """Loads the state a signal stopped the run in; False when there is none, or when its
        file is damaged (with a warning: the epoch then runs again from its start)."""
        if self.interrupted is None:
            return False
        path = self.path(self.interrupted["weights"])
        try:
            self.model.load_weights(path)
            return True
        except Exception as error:
            epoch = self.interrupted["epoch"]
            warnings.warn(
                f"{path} is damaged ({short_error(error)}): epoch {epoch} runs again from its "
                "start.",
                stacklevel=2,
            )
        self.state = dict(self.state, interrupted=None)
        return False

    def _load_last_good_weights(self):
        """Loads the last epoch's weights; when that file is damaged, the previous epoch's,
        and the state goes back to that epoch (with a warning naming the file)."""
        try:
            self.model.load_weights(self.last_weights_path)
            return
        except Exception as error:  # h5py and Keras raise OSError, ValueError, KeyError, ...
            damaged = f"{self.last_weights_path} is damaged ({short_error(error)})"
        previous = self.state.get("previous_weights")
        if previous is None:
            raise DamagedCheckpointError(
                f"{damaged} and no earlier checkpoint exists: the run cannot resume. Pass "
                "--overwrite to start the run again, or choose another --output-dir."
            )
        try:
            self.model.load_weights(self.path(previous))
        except Exception as error:
            raise DamagedCheckpointError(
                f"{damaged}, and so is the one before, {self.path(previous)} "
                f"({short_error(error)}): the run cannot resume. Pass --overwrite to start the "
                "run again."
            ) from error
        epoch = self.state["epoch"] - 1
        warnings.warn(
            f"{damaged}: resuming from the checkpoint of epoch {epoch} instead "
            f"({self.path(previous)}); epoch {epoch + 1} runs again.",
            stacklevel=2,
        )
        self.state = _back_to(self.state, epoch, previous)

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: _to_float(value) for key, value in (logs or {}).items()}
        check_finite_weights(self.model, epoch + 1, self._kept())
        state = json.loads(json.dumps(self.state))
        interrupted, state["interrupted"] = state["interrupted"], None
        if interrupted is not None:  # the epoch ran in two parts: its logs are the whole's
            steps = self.params.get("steps") or 0
            logs = {
                **merge_epoch_logs(interrupted["logs"], interrupted["step"], logs, steps),
                "epoch_seconds": logs.get("epoch_seconds", 0.0) + interrupted["seconds"],
            }
        for key, value in logs.items():
            values = state["history"].setdefault(key, [None] * state["epoch"])
            values.append(value)
        state["epoch"] = epoch + 1
        state["previous_weights"] = state["last_weights"]
        state["last_weights"] = f"epoch-{epoch + 1:04d}.weights.h5"

        value = logs.get(self.monitor) if self.monitor else None
        if value is None or not math.isfinite(value):
            improved = value is None and self.monitor not in logs
        elif state["best_value"] is None:
            improved = True
        else:
            # Ties go to the later epoch: with a decaying learning rate it has trained longer,
            # and a small validation set ties often.
            improved = (
                value >= state["best_value"] if self.mode == "max" else value <= state["best_value"]
            )
        if improved:
            state["best_epoch"] = epoch + 1
            state["best_value"] = value
            state["best_weights"] = f"best-epoch-{epoch + 1:04d}.weights.h5"
        try:
            previous = self.last_weights_path  # the same model: its file has the same size
            size = os.path.getsize(previous) if previous else None
            save_weights_safely(self.model, self.path(state["last_weights"]), size)
            if improved:  # a copy: a damaged last file must not take the best with it
                with atomic_path(self.path(state["best_weights"])) as temporary:
                    shutil.copyfile(self.path(state["last_weights"]), temporary)
            write_json_atomically(os.path.join(self.directory, STATE_FILE), state)
        except Exception as error:
            self._remove_stale_files()  # this epoch's files: the committed state names none
            raise CheckpointWriteError(
                f"Cannot write the checkpoint of epoch {epoch + 1} in {self.directory}: "
                f"{write_failure(error)}. {self._kept()} {resume_advice(error)}"
            ) from error
        self.state = state
        self._remove_stale_files()
        if self.history_csv:
            self._write_history_csv(state)

    def _kept(self):
        if not self.epoch:
            return "No epoch had been committed, so there is no checkpoint yet."
        return f"The last good checkpoint (epoch {self.epoch}) is kept."

    def _write_history_csv(self, state):
        try:
            write_history_csv(self.history_csv, state["history"])
        except OSError as error:
            raise CheckpointWriteError(
                f"Cannot write {self.history_csv}: {write_failure(error)}. Epoch {state['epoch']} "
                f"is committed. {resume_advice(error)}"
            ) from error

    def _remove_stale_files(self):
        state = self.state
        keep = {STATE_FILE, state["last_weights"], state["previous_weights"], state["best_weights"]}
        keep.add((state["interrupted"] or {}).get("weights"))
        for name in os.listdir(self.directory):
            if name not in keep and (name.endswith(".weights.h5") or name.startswith("tmp-")):
                with contextlib.suppress(OSError):  # cleaning up must not hide the real error
                    os.remove(os.path.join(self.directory, name))


def _empty_state():
    return {
        "epoch": 0,
        "history": {},
        "last_weights": None,
        "previous_weights": None,
        "best_epoch": None,
        "best_value": None,
        "best_weights": None,
        "interrupted": None,
    }


def _back_to(state, epoch, weights):
    """`state` as committed at the end of `epoch`, whose weights are the file `weights`."""
    state = dict(state, epoch=epoch, last_weights=weights, previous_weights=None)
    # The best stays: a copy of its own (whole unless it was damaged too), and the epoch run
    # again replaces it only if it does at least as well.
    state["history"] = {key: values[:epoch] for key, values in state["history"].items()}
    return state


def _to_float(value):
    return float(keras.ops.convert_to_numpy(value))
