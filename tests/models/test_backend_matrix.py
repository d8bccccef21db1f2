"""Models travel: a `.keras` file saved on any backend loads on every other with plain
`keras.saving.load_model`, follows the loading backend's compile rule (not the saving one's),
predicts the same, keeps its optimizer state, trains a step and saves again."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BACKENDS = ("tensorflow", "jax", "torch")

SAVE = """
import numpy as np, keras, keras_convit
model = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
                            input_shape=(32, 32, 3), classes=3)
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
model.fit(images, np.arange(4) % 3, batch_size=4, epochs=1, verbose=0)
np.save({images!r}, images)
np.save({predictions!r}, model.predict(images, verbose=0))
model.save({path!r})
"""
LOAD = """
import json, numpy as np, keras, keras_convit
images = np.load({images!r})
report = {{}}
for source in {sources!r}:
    model = keras.saving.load_model({folder!r} + f"/{{source}}.keras")
    got = model.predict(images, verbose=0)
    expected = np.load({folder!r} + f"/{{source}}.npy")
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    model.fit(images, np.arange(4) % 3, batch_size=4, epochs=1, verbose=0)
    model.save({folder!r} + f"/{{source}}-on-{backend}.keras")
    again = keras.saving.load_model({folder!r} + f"/{{source}}-on-{backend}.keras")
    report[source] = dict(
        jit_compile=bool(model.jit_compile),
        difference=float(np.abs(got - expected).max()),
        iterations=iterations,
        iterations_after=int(keras.ops.convert_to_numpy(again.optimizer.iterations)),
        resaved_jit_compile=bool(again.jit_compile),
        optimizer=type(again.optimizer).__name__,
    )
print("REPORT" + json.dumps(report))
"""
# Keras' "auto" per backend on a machine without a GPU: XLA on JAX, eager PyTorch, and on
# TensorFlow XLA only with a GPU.
EXPECTED_JIT = {"jax": True, "torch": False, "tensorflow": False}


def _run(code, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{backend}:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the 3x3 matrix runs every backend in subprocesses: once, under the PyTorch suite",
)
def test_a_model_saved_on_each_backend_loads_trains_and_saves_on_each(tmp_path):
    folder, images = str(tmp_path), str(tmp_path / "images.npy")
    for backend in BACKENDS:
        path, predictions = (str(tmp_path / f"{backend}{suffix}") for suffix in (".keras", ".npy"))
        _run(SAVE.format(images=images, predictions=predictions, path=path), backend)
    for backend in BACKENDS:
        output = _run(
            LOAD.format(images=images, sources=BACKENDS, folder=folder, backend=backend), backend
        )
        report = json.loads(output.split("REPORT")[-1])
        for source, row in report.items():
            what = f"saved on {source}, loaded on {backend}: {row}"
            assert row["jit_compile"] is EXPECTED_JIT[backend], what
            assert row["resaved_jit_compile"] is EXPECTED_JIT[backend], what
            assert row["difference"] <= 1e-5, what
            assert row["iterations"] == 1 and row["iterations_after"] == 2, what
            assert row["optimizer"] == "ConViTAdamW", what
