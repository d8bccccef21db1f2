"""`keras-convit predict` on an ONNX or LiteRT artefact needs only its runtime and Pillow: run in
a subprocess where importing TensorFlow fails (a meta-path finder refuses it), on KERAS_BACKEND=jax.

Each test is a subprocess of its own (~5 s), so each runs once: the ONNX one on the JAX run of
the suite, the LiteRT one on the TensorFlow run (TensorFlow writes the .tflite file there; the
subprocess then runs without it). The other backends skip them.
"""

import csv
import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from tiny_onnx import tiny_onnx_logits, write_tiny_onnx

from keras_convit.deploy import softmax

WITHOUT_TENSORFLOW = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "tensorflow_cpu"):
            raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)

sys.meta_path.insert(0, NoTensorFlow())
from keras_convit.cli import main
status = main(sys.argv[1:])
assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
sys.exit(status)
"""


def run_predict_without_tensorflow(*arguments):
    env = {**os.environ, "KERAS_BACKEND": "jax", "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, "-c", WITHOUT_TENSORFLOW, "predict", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def images(folder):
    """Two 16x16 PNGs (RGB and grey) whose pixels are returned, and a 20x24 JPEG (resized)."""
    rng = np.random.default_rng(0)
    pixels = {}
    for name, mode, shape in (("a.png", "RGB", (16, 16, 3)), ("b.png", "L", (16, 16))):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        image.save(folder / name)
        pixels[str(folder / name)] = np.asarray(image.convert("RGB"), "float32")
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "c.jpg")
    return pixels


def check_rows(result, pixels, logits_of, folder):
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["path"] for row in rows] == [*sorted(pixels), str(folder / "c.jpg")]
    for row in rows[:2]:
        probabilities = softmax(logits_of(pixels[row["path"]][None]))[0]
        assert int(row["class_1"]) == int(np.argmax(probabilities))
        assert abs(float(row["probability_1"]) - probabilities.max()) < 1e-5


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="a subprocess on JAX: run once")
def test_onnx_predicts_without_tensorflow_and_a_missing_input_is_status_1(tmp_path):
    pixels = images(tmp_path)
    model = write_tiny_onnx(tmp_path / "tiny.onnx")
    result = run_predict_without_tensorflow(model, tmp_path, tmp_path / "gone.png")
    assert result.returncode == 1, result.stderr[-3000:]
    check_rows(result, pixels, tiny_onnx_logits, tmp_path)
    assert f"keras-convit predict: warning: {tmp_path / 'gone.png'}: no such file" in result.stderr

    alone = run_predict_without_tensorflow(model, tmp_path / "gone.png")
    assert alone.returncode == 2 and alone.stdout == ""
    assert "error: no images matched" in alone.stderr


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow writes the .tflite file: run once, on the TensorFlow run",
)
def test_litert_predicts_without_tensorflow(tmp_path):
    pytest.importorskip("ai_edge_litert")
    import tensorflow as tf

    weight = np.diag([0.02, 0.01, -0.01]).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def classify(images):
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), weight)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [classify.get_concrete_function()], classify
    )
    (tmp_path / "tiny.tflite").write_bytes(converter.convert())
    pixels = images(tmp_path)
    result = run_predict_without_tensorflow(tmp_path / "tiny.tflite", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_rows(result, pixels, tiny_onnx_logits, tmp_path)
