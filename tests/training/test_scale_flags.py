"""The job's flags for larger models end to end: `--dtype-policy mixed_bfloat16 --remat
--tensorboard --analysis-every 1` trains, writes its scalars and resumes; `--tensorboard`
without tensorboard and `--steps-per-execution` where it cannot run fail at once, one line."""

import json
import sys

import keras
import numpy as np
import pytest

from keras_convit.analysis import AnalysisScalars
from keras_convit.cli import main
from keras_convit.job import (
    ConfigError,
    RunDirectoryError,
    TrainConfig,
    prepare_run_directory,
    training_callbacks,
)
from keras_convit.models.default_compile import compile_portably
from keras_convit.training import NonFiniteLossError, RunCheckpoint

TINY = json.dumps({"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1})
FLAGS = ["--dtype-policy", "mixed_bfloat16", "--remat", "--tensorboard", "--analysis-every", "1"]


def _arguments(run_dir):
    return [
        "train", "--output-dir", str(run_dir), "--image-size", "8", "--model-args", TINY,
        "--batch-size", "16", "--fraction", "0.1", "--no-scale-epochs", "--epochs", "2",
        "--warmup-epochs", "1", "--augmentation", "none", "--verbose", "0", *FLAGS,
    ]  # fmt: skip


def _scalars(folder):
    """{tag: [(step, value)]} of the event files in `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [
            (event.step, float(make_ndarray(event.tensor_proto))) for event in events.Tensors(tag)
        ]
        for tag in events.Tags()["tensors"]
    }


@pytest.mark.slow
def test_mixed_precision_remat_and_tensorboard_train_resume_and_log(tmp_path, monkeypatch, capsys):
    """A run stopped after its first epoch (as a preemption would) resumes and ends with both
    epochs' scalars in RUN_DIR/tensorboard/ (train, validation, per-layer analysis, each at the
    epoch's index), a mixed_bfloat16 model.keras and preset that predict alike.

    Mutations killed: `tensorboard_callbacks` not added in job/run.py (no tensorboard/);
    `AnalysisScalars` writing at the record's epoch count instead of the index (steps 1, 2);
    `build_model` not passing `dtype` (a float32 model).
    """
    run_dir = tmp_path / "run"
    write = AnalysisScalars.on_epoch_end

    def preempted(self, epoch, logs=None):
        write(self, epoch, logs)
        raise KeyboardInterrupt("preempted")  # the last callback: epoch 1 is complete

    monkeypatch.setattr(AnalysisScalars, "on_epoch_end", preempted)
    with pytest.raises(KeyboardInterrupt):
        main(_arguments(run_dir))
    monkeypatch.setattr(AnalysisScalars, "on_epoch_end", write)
    assert main(_arguments(run_dir)) == 0
    assert "Resuming run in" in capsys.readouterr().out

    settings = json.loads((run_dir / "run.json").read_text())["settings"]
    assert (settings["dtype_policy"], settings["remat"], settings["tensorboard"]) == (
        "mixed_bfloat16", True, True
    )  # fmt: skip
    board = run_dir / "tensorboard"
    train, validation = _scalars(board / "train"), _scalars(board / "validation")
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert [step for step, _ in train[tag]] == [0, 1], (tag, train[tag])
    assert [step for step, _ in validation["epoch_accuracy"]] == [0, 1]
    history = json.loads((run_dir / "metrics.json").read_text())
    assert history["epochs"] == 2
    analysis = _scalars(board / "analysis")
    assert sorted(analysis) == ["gating/blocks_0", "nonlocality/blocks_0", "nonlocality/blocks_1"]
    assert all([step for step, _ in values] == [0, 1] for values in analysis.values())
    assert all(0.0 < value < 1.0 for _, value in analysis["gating/blocks_0"])

    import keras_convit

    model = keras.saving.load_model(run_dir / "model.keras")
    preset = keras_convit.from_preset(str(run_dir / "preset"))
    assert model.get_layer("blocks_0").dtype_policy.name == "mixed_bfloat16"
    images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    predicted = keras.ops.convert_to_numpy(model.predict(images, verbose=0)).astype("float32")
    np.testing.assert_allclose(predicted.sum(axis=-1), 1.0, atol=0.02)
    from_preset = keras.ops.convert_to_numpy(preset.predict(images, verbose=0)).astype("float32")
    np.testing.assert_allclose(from_preset, predicted, atol=2e-3)  # bfloat16: 3 digits


def test_tensorboard_missing_fails_at_once_naming_the_extra(tmp_path, monkeypatch, capsys):
    """Mutation killed: the tensorboard check left out of `scale_problem` (the run starts and
    fails at its first epoch end, having written its directory)."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec: not installed
    status = main(["train", "--tensorboard", "--output-dir", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1, error
    assert "pip install 'keras-convit[tensorboard]'" in error[0]
    assert not (tmp_path / "run").exists()


def test_several_steps_per_execution_keep_the_job_callbacks(tmp_path):
    """Five steps an epoch in calls of two: every step trains, the job's callbacks log and
    commit each epoch, the guard still stops a NaN loss, and the saved compile config keeps one
    step per call (loadable on PyTorch). PyTorch's trainer refuses several steps per call: the
    job says so before it starts.

    Mutations killed: `compile_portably` not setting `steps_per_execution` (5 batch ends an
    epoch, not 3), or passing it to `compile` (the config keeps 2); the backend check dropped
    from `scale_problem` (PyTorch fails in `fit`).
    """
    config = TrainConfig(steps_per_execution=2)
    if keras.backend.backend() == "torch":
        with pytest.raises(ConfigError, match="steps_per_execution must be 1 on the PyTorch"):
            config.resolved()
        return
    assert config.resolved().steps_per_execution == 2
    schedule = keras.optimizers.schedules.PolynomialDecay(1e-2, 10, 1e-3)

    def compiled():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer = keras.optimizers.AdamW(schedule)
        compile_portably(model, optimizer=optimizer, loss="mse", steps_per_execution=2)
        return model

    model, checkpoint, batch_ends = compiled(), RunCheckpoint(tmp_path), []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_ends.append(batch)
    )
    data = np.linspace(0, 1, 30, dtype="float32").reshape(10, 3)
    callbacks = [counter, *training_callbacks(checkpoint)]
    model.fit(data, data[:, :2], batch_size=2, epochs=2, verbose=0, callbacks=callbacks)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 10
    assert len(batch_ends) == 6 and checkpoint.epoch == 2
    expected = [float(schedule(steps)) for steps in (5, 10)]
    np.testing.assert_allclose(checkpoint.history["learning_rate"], expected, rtol=1e-6)
    assert model.get_compile_config()["steps_per_execution"] == 1

    data[7] = np.nan  # the fourth batch
    with pytest.raises(NonFiniteLossError, match="at epoch 1"):
        compiled().fit(data, data[:, :2], batch_size=2, epochs=1, verbose=0,
                       callbacks=training_callbacks(RunCheckpoint(tmp_path / "nan")))  # fmt: skip


def test_a_run_recorded_before_these_settings_resumes_with_the_same_command(tmp_path):
    """A run.json written before the four settings existed holds none of them; the same command
    (their defaults, which it ran with) resumes it. Mutation killed: `ADDED_SETTINGS` left out
    of `read_run` ("holds an unfinished run with other settings")."""
    config = TrainConfig(epochs=3).resolved()
    old = dict(vars(config))
    for key in ("dtype_policy", "remat", "steps_per_execution", "tensorboard"):
        del old[key]
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed", "settings": old}))
    (tmp_path / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 1}))
    assert prepare_run_directory(config, tmp_path)[2]  # resuming


def test_resume_refuses_to_switch_loss_scaling(tmp_path):
    """Keras skips a checkpoint's whole optimizer state when its variables differ (the loss
    scale's): the schedule would restart at its warm-up. mixed_bfloat16 keeps the optimizer.
    Mutation killed: the `resume_problem` check left out of `prepare_run_directory`."""
    saved = TrainConfig(epochs=3).resolved()
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed", "settings": vars(saved)}))
    (tmp_path / "checkpoint" / "state.json").write_text(json.dumps({"epoch": 1}))
    for policy in ("mixed_float16", "mixed_bfloat16"):
        current = TrainConfig(dtype_policy=policy)
        arguments = dict(resume=True, explicit=("dtype_policy",))
        if policy == "mixed_float16":
            with pytest.raises(RunDirectoryError, match="cannot change dtype_policy from float32"):
                prepare_run_directory(current, tmp_path, **arguments)
        else:
            assert prepare_run_directory(current, tmp_path, **arguments)[1].dtype_policy == policy
