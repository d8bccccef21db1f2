"""Artefacts from elsewhere: a SavedModel runs its own graph, which can write files, so it loads
only with `--unsafe` / `safe_mode=False`; the refusal comes before TensorFlow reads a byte."""

import keras
import numpy as np
import pytest

from keras_convit.cli import main
from keras_convit.deploy import load_artifact, load_classifier

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the hostile SavedModel is written with TensorFlow, whatever the Keras backend; "
    "checked once, on the TensorFlow run (the refusal itself is checked on every backend in "
    "tests/cli/test_predict.py)",
)


def hostile_saved_model(folder, victim):
    """A SavedModel whose serving function writes `victim`, then returns 3 probabilities."""
    import tensorflow as tf

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, "images")])
        def serve(self, images):
            tf.io.write_file(str(victim), "written by a SavedModel")
            batch = tf.shape(images)[0]
            return {"probabilities": tf.fill([batch, 3], 1.0 / 3.0)}

    module = Hostile()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_a_saved_model_that_writes_a_file_is_refused_unless_trusted(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    saved = hostile_saved_model(tmp_path / "saved", victim)
    image = tmp_path / "image.png"
    keras.utils.save_img(image, np.zeros((16, 16, 3)))

    status = main(["predict", str(saved), str(image)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "runs its own TensorFlow graph, which can read and write files" in err[0]
    assert "--unsafe" in err[0]
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_artifact(saved)
    with pytest.raises(ValueError, match="Refused to load"):
        load_classifier(saved)
    assert not victim.exists()

    assert main(["predict", str(saved), str(image), "--unsafe"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].startswith(f"{image},") and rows[1].count("0.333333") == 3
    assert victim.read_text() == "written by a SavedModel"  # what --unsafe means
