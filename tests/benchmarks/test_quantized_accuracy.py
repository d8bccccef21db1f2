"""benchmarks/quantized_accuracy.py evaluates a finished run's model float and quantized on the
run's own test split, and writes its files. A run directory is made without training: a small
model saved as model.keras beside a run.json marked finished."""

import json
import os

import keras
import pytest

from keras_convit.job import TrainConfig, build_model, write_run

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks")


@pytest.fixture
def finished_run(tmp_path):
    pytest.importorskip("tensorflow")
    config = TrainConfig(
        image_size=16,
        batch_size=64,
        model_args=dict(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1, patch_size=8),
    ).resolved(train_size=1000)
    model = build_model(config, 10)
    model.compile(**config.compile_arguments(model, steps_per_epoch=16))
    model.save(tmp_path / "model.keras")
    write_run(str(tmp_path), config, "finished")
    return tmp_path


def test_quantized_accuracy_reports_each_mode_on_the_runs_test_split(finished_run, monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import quantized_accuracy

    output = finished_run / "figures"
    quantized_accuracy.main(["--run-dir", str(finished_run), "--modes", "int8",
                             "--output-dir", str(output)])  # fmt: skip
    stem = output / f"quantized-accuracy-{keras.backend.backend()}"
    report = json.loads(stem.with_suffix(".json").read_text())
    assert report["dataset"] == "digits" and report["test_size"] == 359  # 20% of 1,797
    assert set(report["results"]) == {"float32", "int8"}
    int8 = report["results"]["int8"]
    # GPSA's qk, v, proj; the attention's qkv, proj; each MLP's fc1, fc2; the head.
    assert int8["quantized_layers"] == 5 + 4 + 1
    assert 0 < int8["max_relative_logit_change"] < 0.2
    assert 0 <= int8["test_accuracy"] <= 1 and 0 <= int8["predictions_changed"] <= 1
    assert "| int8 |" in stem.with_suffix(".md").read_text()


def test_an_unfinished_run_is_refused(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import quantized_accuracy

    with pytest.raises(SystemExit, match="No finished run"):
        quantized_accuracy.main(["--run-dir", str(tmp_path), "--output-dir", str(tmp_path)])
