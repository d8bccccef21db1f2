"""A preset saved on JAX loads on TensorFlow and PyTorch, from its folder and from hf:// out of a
Hugging Face cache with HF_HUB_OFFLINE=1, with the same predictions within 1e-5."""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

SAVE = """
import numpy as np, keras_convit
model = keras_convit.ConViT(32, 4, depth=3, local_up_to_layer=2, patch_size=8,
                            input_shape=(32, 32, 3), classes=5)
keras_convit.save_to_preset(model, {folder!r}, class_names=list("abcde"))
images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
np.save({images!r}, images)
np.save({expected!r}, model.predict(images, verbose=0))
"""
LOAD = """
import numpy as np, keras_convit
images = np.load({images!r})
for handle in ({folder!r}, "hf://org/tiny"):
    model = keras_convit.from_preset(handle)
    np.save({out!r} + handle.replace("/", "_").replace(":", "") + ".npy",
            model.predict(images, verbose=0))
"""


def _run(code, backend, home):
    env = {**os.environ, "KERAS_BACKEND": backend, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{backend}:\n{result.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="one cross-backend run is enough: it runs under the JAX suite (subprocesses)",
)
@pytest.mark.skipif(
    importlib.util.find_spec("huggingface_hub") is None, reason="hf:// needs huggingface_hub"
)
def test_a_jax_preset_loads_on_tensorflow_and_torch_from_folder_and_hf_cache(tmp_path):
    folder, images, expected = (str(tmp_path / n) for n in ("preset", "x.npy", "y.npy"))
    _run(SAVE.format(folder=folder, images=images, expected=expected), "jax", tmp_path / "hf")
    # The Hugging Face cache layout huggingface_hub reads offline.
    repo = tmp_path / "hf" / "hub" / "models--org--tiny"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    assert (
        json.loads((repo / "snapshots" / revision / "metadata.json").read_text())["backend"]
        == "jax"
    )
    reference = np.load(expected)
    for backend in ("tensorflow", "torch"):
        out = str(tmp_path / backend)
        _run(LOAD.format(images=images, folder=folder, out=out), backend, tmp_path / "hf")
        for handle in (folder, "hf://org/tiny"):
            got = np.load(out + handle.replace("/", "_").replace(":", "") + ".npy")
            np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5, err_msg=backend)
