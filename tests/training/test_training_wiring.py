"""Wiring the maths tests miss (issue 26's hand mutations, each named in its test): a resumed
run restores the last epoch, not the best; `--resume` keeps the saved settings but for the flags
given; the warm-up never outlasts the run."""

import json
from dataclasses import asdict

import keras
import numpy as np

from keras_convit.job import TrainConfig, prepare_run_directory
from keras_convit.training import RunCheckpoint, learning_rate_schedule

DATA = np.linspace(0, 1, 48, dtype="float32").reshape(16, 3)


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_resume_restores_the_last_epoch_not_the_best_weights(tmp_path):
    """Mutation killed: `on_train_begin` loading `best_weights_path` instead of the last
    epoch's weights. Monitoring the loss with mode "max" makes epoch 1 the best of 3."""
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="max")
    _model().fit(DATA, DATA[:, :2], batch_size=4, epochs=3, verbose=0, callbacks=[checkpoint])
    assert checkpoint.best_epoch == 1 and checkpoint.epoch == 3
    last = _model()
    last.optimizer.build(last.trainable_variables)
    last.load_weights(checkpoint.last_weights_path)

    model, seen = _model(), []
    probe = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.extend(
            keras.ops.convert_to_numpy(v) for v in model.weights
        )
    )
    resumed = RunCheckpoint(tmp_path, monitor="loss", mode="max")
    model.fit(DATA, DATA[:, :2], batch_size=4, epochs=4, verbose=0, callbacks=[resumed, probe])
    for expected, actual in zip(last.weights, seen, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(expected), actual)


def test_resume_takes_only_the_flags_given(tmp_path):
    """Mutation killed: `--resume` merging every current setting (`merged.update(settings)`)
    instead of the explicit flags only: the saved epochs and seed must survive a resume that
    names only the learning rate."""
    saved = TrainConfig(epochs=7, seed=3).resolved()
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed", "settings": asdict(saved)}))
    (tmp_path / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 2}))
    current = TrainConfig(learning_rate=1e-4).resolved()  # epochs 50 and seed 0: not given
    _, resumed, resuming = prepare_run_directory(
        current, tmp_path, resume=True, explicit=("learning_rate",)
    )
    assert resuming
    assert (resumed.epochs, resumed.seed, resumed.learning_rate) == (7, 3, 1e-4)


def test_the_warm_up_ends_before_the_last_step():
    """Mutation killed: the clamp `warmup_steps = min(warmup_steps, total_steps - 1)` removed
    (training/recipe.py): a run shorter than its warm-up (5 warm-up epochs in a 2-epoch
    fine-tune) would never reach its peak rate. With the clamp the peak comes at the step
    before the last, and the last step is at the minimum."""
    schedule = learning_rate_schedule(1e-3, total_steps=10, warmup_steps=50)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(11)]
    assert abs(max(rates) - 1e-3) < 1e-9 and rates.index(max(rates)) == 9
    assert abs(rates[10] - 1e-5) < 1e-9
