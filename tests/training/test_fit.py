"""`model.fit` with the whole recipe and augmentation, and the run callbacks."""

import json
import os

import keras
import numpy as np
import pytest

import keras_convit
from keras_convit.data import Augmentation, load_dataset
from keras_convit.job import training_callbacks
from keras_convit.training import (
    NonFiniteLossError,
    NonFiniteLossGuard,
    RunCheckpoint,
    deit_recipe,
    learning_rate_schedule,
)

pytest.importorskip("tensorflow")


def _tiny_model():
    return keras_convit.ConViT(
        hidden_dim=32,
        num_heads=4,
        depth=2,
        local_up_to_layer=1,
        patch_size=4,
        input_shape=(16, 16, 3),
        classes=10,
        drop_path_rate=0.1,
        compile=False,
    )


@pytest.mark.slow
def test_two_epoch_fit_with_the_full_recipe_runs_and_follows_its_schedule(tmp_path):
    # The DeiT augmentation (crop, flip, RandAugment, erasing, MixUp/CutMix, repeats) on a third
    # of the digits, through the recipe and the run callbacks. Two such epochs do not learn (the
    # validation accuracy stays at chance, 0.105, on every backend), so the loss going down was
    # a coin flip: learning is shown by tests/models/test_convit.py's digits test instead.
    data = load_dataset(
        "digits",
        image_size=16,
        batch_size=32,
        augmentation=Augmentation.deit(repeats=2),
        fraction=0.4,
        validation_fraction=0.1,
    )
    model = _tiny_model()
    recipe = deit_recipe(
        model, 32, data.steps_per_epoch, epochs=2, learning_rate=3e-3, warmup_epochs=0.2
    )
    model.compile(**recipe)
    checkpoint = RunCheckpoint(tmp_path / "checkpoint")
    history = model.fit(
        data.train,
        validation_data=data.validation,
        epochs=2,
        verbose=0,
        shuffle=False,  # the pipeline shuffles
        callbacks=training_callbacks(checkpoint),
    )
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["val_loss"]).all()
    assert checkpoint.epoch == 2 and checkpoint.best_epoch in (1, 2)
    # The logged rate is the schedule's at the end of each epoch: past the warm-up, then its floor.
    steps = [data.steps_per_epoch * epoch for epoch in (1, 2)]
    schedule = learning_rate_schedule(3e-3, steps[1], round(0.2 * data.steps_per_epoch))
    expected = [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]
    np.testing.assert_allclose(checkpoint.history["learning_rate"], expected, rtol=1e-5)
    assert expected[1] < expected[0]


class _Batches(keras.utils.PyDataset):
    """Random (images, one-hot labels) batches; batch 3 is NaN once `poisoned` is set."""

    def __init__(self):
        super().__init__()
        self.poisoned = False
        rng = np.random.default_rng(0)
        self.images = rng.uniform(0, 255, (4, 8, 16, 16, 3)).astype("float32")
        self.labels = np.eye(10, dtype="float32")[rng.integers(0, 10, (4, 8))]

    def __len__(self):
        return 4

    def __getitem__(self, index):
        images = self.images[index]
        if self.poisoned and index == 2:
            images = np.full_like(images, np.nan)
        return images, self.labels[index]


def _compiled_model():
    model = _tiny_model()
    model.compile(**deit_recipe(model, 8, 4, epochs=4, learning_rate=1e-3, warmup_epochs=1))
    return model


def test_checkpoint_resumes_where_it_stopped(tmp_path):
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    model = _compiled_model()
    model.fit(_Batches(), epochs=2, verbose=0, callbacks=[checkpoint])
    weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    first_history = json.loads(json.dumps(checkpoint.history))

    # A fresh process would rebuild the model; the checkpoint restores weights, optimizer state
    # and epoch count, so fit(epochs=4) runs the 2 epochs left.
    model = _compiled_model()
    resumed = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    seen = {}

    def on_train_begin(logs=None):
        # Runs after the checkpoint restored the state (callbacks run in order).
        seen["weights"] = keras.ops.convert_to_numpy(model.weights[0])
        seen["iterations"] = int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    marker = keras.callbacks.LambdaCallback(
        on_train_begin=on_train_begin,
        on_epoch_begin=lambda epoch, logs: seen.setdefault("epochs", []).append(epoch),
    )
    model.fit(_Batches(), epochs=4, verbose=0, callbacks=[resumed, marker])
    assert seen["epochs"] == [2, 3]
    assert seen["iterations"] == iterations == 8
    np.testing.assert_array_equal(seen["weights"], weights[0])
    assert resumed.epoch == 4 and len(resumed.history["loss"]) == 4
    assert resumed.history["loss"][:2] == first_history["loss"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        {
            "state.json",
            "epoch-0003.weights.h5",  # the last two epochs: the fallback of a damaged last file
            "epoch-0004.weights.h5",
            f"best-epoch-{resumed.best_epoch:04d}.weights.h5",
        }
    )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    model = _compiled_model()
    batches = _Batches()
    poison = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(batches, "poisoned", True)
    )
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch \d.*end of epoch 1"):
        model.fit(
            batches, epochs=3, verbose=0, callbacks=[NonFiniteLossGuard(), checkpoint, poison]
        )
    state = RunCheckpoint.read_state(tmp_path)
    assert state["epoch"] == 1 and len(state["history"]["loss"]) == 1
    restored = _compiled_model()
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(os.path.join(tmp_path, state["last_weights"]))
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in restored.weights)
