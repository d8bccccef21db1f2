import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from harness import TINY_CONVIT, random_images, run_model_saving_test
from keras import ops

import keras_convit

# The tiny ConViT on a non-square input (a 4x3 grid), with a locality strength of its own.
TINY = {**TINY_CONVIT, "input_shape": (32, 24, 3), "locality_strength": 2.0}
BACKENDS = ("tensorflow", "jax", "torch")


def fixed_images():
    return random_images(np.random.default_rng(7), shape=TINY["input_shape"])


def test_config_round_trip_gives_identical_outputs():
    model = keras_convit.ConViT(**TINY)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = fixed_images()
    np.testing.assert_array_equal(ops.convert_to_numpy(clone(x)), ops.convert_to_numpy(model(x)))


def test_keras_file_round_trip():
    model = keras_convit.ConViT(**TINY)
    model.fit(fixed_images(), np.array([1, 3]), epochs=1, verbose=0)
    loaded = run_model_saving_test(model, fixed_images(), atol=0)  # bit for bit
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW)
    assert loaded.get_layer("blocks_0").attn.grid_size == (4, 3)


def test_weights_argument_loads_a_weights_file(tmp_path):
    model = keras_convit.ConViT(**TINY)
    path = tmp_path / "convit.weights.h5"
    model.save_weights(path)
    loaded = keras_convit.ConViT(**TINY, weights=str(path))
    x = fixed_images()
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x)))


SAVE_UNDER_OTHER_BACKEND = """
import json, sys
import numpy as np
import keras, keras_convit
keras.utils.set_random_seed(3)
model = keras_convit.ConViT(**json.loads(sys.argv[1]))
model.save_weights(sys.argv[2])
x = np.random.default_rng(7).uniform(0, 255, size=(2, 32, 24, 3)).astype("float32")
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x)))
"""


@pytest.mark.slow
def test_weights_saved_under_another_backend_load_here(tmp_path, backend):
    other = BACKENDS[(BACKENDS.index(backend) + 1) % len(BACKENDS)]
    weights, outputs = tmp_path / "other.weights.h5", tmp_path / "outputs.npy"
    environment = {**os.environ, "KERAS_BACKEND": other}
    subprocess.run(
        [
            sys.executable,
            "-c",
            SAVE_UNDER_OTHER_BACKEND,
            json.dumps(TINY),
            str(weights),
            str(outputs),
        ],
        env=environment,
        check=True,
        timeout=300,
    )
    model = keras_convit.ConViT(**TINY, weights=str(weights))
    np.testing.assert_allclose(
        ops.convert_to_numpy(model(fixed_images())), np.load(outputs), atol=1e-5
    )
