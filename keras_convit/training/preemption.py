"""Stopping a run on SIGTERM or SIGINT (the notice a spot VM or a TPU gets before it is taken
away, or Ctrl-C) at the end of the current step, with the state reached committed, so that the
same command resumes it."""

import signal
import threading
import time

import keras

# EX_TEMPFAIL of sysexits.h: a temporary failure, "run the same command again".
PREEMPTED_EXIT_STATUS = 75
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGINT)
NOT_AVERAGED = ("learning_rate", "epoch_seconds")  # epoch log keys that are not running means


class Preempted(Exception):
    """Training stopped on a signal; the state at its last finished step is committed."""

    def __init__(self, signal_number, epoch, step=None):
        self.signal_number = signal_number
        self.epoch = epoch
        self.step = step
        where = f"after step {step} of epoch {epoch}" if step else f"after epoch {epoch}"
        super().__init__(
            f"Stopped by {signal.Signals(signal_number).name} {where}, with that state "
            "committed; run the same command again to resume."
        )


class PreemptionGuard(keras.callbacks.Callback):
    """Turns SIGTERM and SIGINT during `fit` into a committed stop; use it as a context manager
    around `fit` (the signal handlers are in place inside the block only, in the main thread).

    The first signal lets the step under way finish (with `steps_per_execution`, those steps);
    then `checkpoint` (a `RunCheckpoint`) commits the state reached mid-epoch and `Preempted`
    is raised out of `fit`. A signal during the last step of an epoch or its validation takes
    effect once that epoch is committed (place the guard after the checkpoint). A second SIGINT
    stops at once (`KeyboardInterrupt`) and a second SIGTERM kills, as without the guard: the
    last committed epoch is then where the run resumes. With `agree` and `mean_logs` (see
    `keras_convit.job.Processes`) the processes of a data-parallel job all stop at the step
    after any of them got a signal, and commit their averaged logs.

    Example:
    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> checkpoint = keras_convit.training.RunCheckpoint(tempfile.mkdtemp(), monitor=None)
    >>> guard = keras_convit.training.PreemptionGuard(checkpoint)
    >>> with guard:
    ...     _ = model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0,
    ...                   callbacks=[checkpoint, guard])
    >>> guard.received is None  # no signal came
    True
    """

    def __init__(self, checkpoint, signals=PREEMPTION_SIGNALS, agree=None, mean_logs=None):
        super().__init__()
        self.checkpoint = checkpoint
        self.signals = tuple(signals)
        # Several processes (data parallel) stop at the same step, with their logs averaged:
        # `agree(received)` is the signal any process received, called after every step.
        self.agree = agree or (lambda received: received)
        self.mean_logs = mean_logs or (lambda logs: logs)
        self.received = None
        self._previous = {}

    def __enter__(self):
        self.received = None
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        return False

    def _on_signal(self, number, frame):
        self.received = number
        # A second signal of this kind does what it would do without the guard.
        signal.signal(number, self._previous.get(number, signal.SIG_DFL))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        interrupted = self.checkpoint.interrupted
        # Resuming the epoch a signal stopped: its steps count on from where they stopped.
        self._steps_before = interrupted["step"] if interrupted else 0

    def on_train_batch_end(self, batch, logs=None):
        self.received = self.agree(self.received)
        steps = self.params.get("steps")
        if self.received is None or (steps is not None and batch + 1 >= steps):
            return
        logs = self.mean_logs(logs)
        epoch = self.checkpoint.epoch + 1
        step = self._steps_before + batch + 1
        seconds = time.monotonic() - self._epoch_start
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()  # JAX keeps the weights in its step until the epoch ends
        self.checkpoint.commit_interrupted(epoch, step, batch + 1, logs, seconds)
        raise Preempted(self.received, epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        self.received = self.agree(self.received)
        if self.received is not None:
            raise Preempted(self.received, epoch + 1)


def merge_epoch_logs(first, first_steps, second, second_steps):
    """The logs of one epoch run in two parts: the running means of the training metrics
    weighted by steps; anything else (validation, run once at the end; the learning rate; the
    time) from the second part.

    Example:
    >>> merge_epoch_logs({"loss": 1.0}, 3, {"loss": 2.0, "val_loss": 5.0}, 1)
    {'loss': 1.25, 'val_loss': 5.0}
    """
    merged = dict(second)
    total = first_steps + second_steps
    for key, value in first.items():
        if key in second and not key.startswith("val_") and key not in NOT_AVERAGED:
            merged[key] = (value * first_steps + second[key] * second_steps) / total
    return merged
