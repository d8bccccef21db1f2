"""Damaged run files (issue 26): a garbage `run.json` or `state.json` never blocks
`--overwrite` and is named in every error; a truncated last checkpoint falls back to the one
before (the last two are kept, and the best is a copy, not a link)."""

import json
import os
from dataclasses import asdict

import keras
import numpy as np
import pytest

from keras_convit.job import RunDirectoryError, TrainConfig, prepare_run_directory, run_training
from keras_convit.job.record import read_run
from keras_convit.training.callbacks import DamagedCheckpointError, RunCheckpoint

DATA = np.linspace(0, 1, 48, dtype="float32").reshape(16, 3)


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _fit(model, directory, epochs):
    checkpoint = RunCheckpoint(directory, monitor="loss", mode="min")
    model.fit(DATA, DATA[:, :2], batch_size=4, epochs=epochs, verbose=0, callbacks=[checkpoint])
    return checkpoint


def _weights(directory, name):
    model = _model()
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(directory, name))
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00", b"[]", b'{"settings": {}}'])
def test_a_damaged_run_json_is_named_and_never_blocks_overwrite(tmp_path, garbage):
    config = TrainConfig().resolved()
    (tmp_path / "run.json").write_bytes(garbage)
    assert read_run(tmp_path)["status"] == "damaged"
    for flags in ({}, {"resume": True}):
        with pytest.raises(RunDirectoryError, match=f"{tmp_path}/run.json is damaged.*--overwrite"):
            prepare_run_directory(config, tmp_path, **flags)
    assert prepare_run_directory(config, tmp_path, overwrite=True) == (str(tmp_path), config, False)


def test_a_damaged_state_json_is_named_and_never_blocks_overwrite(tmp_path):
    config = TrainConfig().resolved()
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("garbage")
    saved = {"status": "failed", "settings": {**asdict(config), "epochs": 3}}
    (tmp_path / "run.json").write_text(json.dumps(saved))
    state_file = f"{tmp_path}/checkpoint/state.json is damaged"
    with pytest.raises(DamagedCheckpointError, match=f"{state_file}.*--overwrite"):
        prepare_run_directory(config, tmp_path)  # other settings: the state is read
    with pytest.raises(DamagedCheckpointError, match=state_file):
        RunCheckpoint(tmp_path / "checkpoint")
    assert prepare_run_directory(config, tmp_path, overwrite=True)[2] is False


def test_a_truncated_last_checkpoint_resumes_from_the_one_before(tmp_path):
    checkpoint = _fit(_model(), tmp_path, 3)
    names = sorted(name for name in os.listdir(tmp_path) if name.endswith(".h5"))
    assert names == ["best-epoch-0003.weights.h5", "epoch-0002.weights.h5", "epoch-0003.weights.h5"]
    best, last = (tmp_path / names[0]).stat(), (tmp_path / names[2]).stat()
    assert best.st_ino != last.st_ino  # a copy: damage to one leaves the other
    epoch_2 = _weights(tmp_path, "epoch-0002.weights.h5")
    last_file = tmp_path / "epoch-0003.weights.h5"
    last_file.write_bytes(last_file.read_bytes()[: last.st_size // 2])

    model = _model()
    loaded = []
    probe = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: loaded.append(
            [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        )
    )
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    with pytest.warns(UserWarning, match=f"{last_file} is damaged.*checkpoint of epoch 2"):
        history = model.fit(
            DATA, DATA[:, :2], batch_size=4, epochs=3, verbose=0, callbacks=[checkpoint, probe]
        )
    for expected, actual in zip(epoch_2, loaded[0], strict=True):
        np.testing.assert_array_equal(expected, actual)
    assert len(history.history["loss"]) == 1  # epoch 3 only, run again
    assert checkpoint.epoch == 3 and len(checkpoint.history["loss"]) == 3
    _weights(tmp_path, "epoch-0003.weights.h5")  # rewritten whole
    # The best weights, damaged, give way to the last epoch's, named in a warning.
    best = tmp_path / f"best-epoch-{checkpoint.best_epoch:04d}.weights.h5"
    best.write_bytes(b"cut")
    with pytest.warns(UserWarning, match=f"{best} is damaged.*last epoch's weights"):
        assert checkpoint.load_best_weights(_model()) == str(last_file)


def test_damaged_checkpoints_with_nothing_to_fall_back_on_say_what_to_do(tmp_path):
    _fit(_model(), tmp_path, 2)
    for name in ("epoch-0002.weights.h5", "epoch-0001.weights.h5"):
        (tmp_path / name).write_bytes(b"cut")
    with pytest.raises(DamagedCheckpointError, match="and so is the one before.*--overwrite"):
        _fit(_model(), tmp_path, 3)
    state = json.loads((tmp_path / "state.json").read_text())
    (tmp_path / "state.json").write_text(json.dumps({**state, "previous_weights": None}))
    with pytest.raises(DamagedCheckpointError, match="no earlier checkpoint exists.*--overwrite"):
        _fit(_model(), tmp_path, 3)


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the job's file handling is the same on every backend: run once, where it is fastest "
    "(3 s on torch, 9 s on TensorFlow, 17 s on JAX); the checkpoint tests above run on all",
)
def test_the_job_overwrites_a_run_whose_run_json_is_garbage(tmp_path):
    """The whole job: `run_training(overwrite=True)` clears the damaged run and trains."""
    (tmp_path / "run.json").write_text("{garbage")
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("garbage")
    config = TrainConfig(
        image_size=8, epochs=1, fraction=0.2, scale_epochs=False, augmentation="none",
        model_args={"hidden_dim": 8, "num_heads": 2, "depth": 1, "local_up_to_layer": 0},
    )  # fmt: skip
    metrics = run_training(config, output_dir=str(tmp_path), overwrite=True, verbose=0)
    assert metrics["epochs"] == 1
    assert read_run(tmp_path)["status"] == "finished"
