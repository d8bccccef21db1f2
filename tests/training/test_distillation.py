"""Hard distillation (DeiT; the paper's Table 4): the distillation head learns the teacher."""

import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_convit
from keras_convit.job import TrainConfig
from keras_convit.training import HardDistillation, cnn_teacher, deit_recipe
from keras_convit.weights import export_reference_weights, load_weights

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

STUDENT = dict(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1, patch_size=4)


def student(**kwargs):
    return keras_convit.ConViT(
        **STUDENT, input_shape=(16, 16, 3), classes=10, distillation=True, **kwargs
    )


@pytest.fixture(scope="module")
def digits():
    return keras_convit.data.load_dataset(
        "digits", image_size=16, batch_size=32, augmentation="none"
    )


def _top_classes(predictions):
    return np.argmax(ops.convert_to_numpy(predictions), axis=-1)


@pytest.mark.slow
def test_the_distillation_head_learns_the_teacher_and_the_class_head_the_labels(digits):
    import tensorflow as tf

    # A CNN trained on shifted labels (c -> c + 1 mod 10): a teacher that disagrees with the
    # labels on every image it has learnt, so each head's target is unambiguous.
    shifted = digits.train.map(lambda images, labels: (images, tf.roll(labels, 1, axis=-1)))
    teacher = cnn_teacher((16, 16, 3), 10)
    teacher.fit(shifted, epochs=8, verbose=0, shuffle=False)
    model = student()
    distiller = HardDistillation(model, teacher)
    recipe = deit_recipe(
        distiller, 32, digits.steps_per_epoch, 8, learning_rate=2e-3, label_smoothing=0.0
    )
    distiller.compile(**recipe)
    distiller.fit(digits.train, epochs=8, verbose=0, shuffle=False)

    images = np.concatenate([batch for batch, _ in digits.test])
    labels = np.concatenate([_top_classes(batch) for _, batch in digits.test])
    teacher_labels = _top_classes(teacher.predict(images, verbose=0))
    assert np.mean(teacher_labels == labels) < 0.2
    tokens = keras.Model(model.input, model.get_layer("heads").input).predict(images, verbose=0)
    class_head, distillation_head = map(_top_classes, model.get_layer("heads").logits(tokens))
    assert np.mean(distillation_head == teacher_labels) > 0.6
    assert np.mean(distillation_head == labels) < 0.2
    assert np.mean(class_head == labels) > 0.6
    assert np.mean(class_head == teacher_labels) < 0.2


def test_a_checkpoint_loads_with_and_without_the_distillation_token(tmp_path):
    plain = keras_convit.ConViT(**STUDENT, input_shape=(16, 16, 3), classes=10)
    export_reference_weights(plain, str(tmp_path / "plain.safetensors"))
    distilled = student()
    load_weights(distilled, str(tmp_path / "plain.safetensors"))
    # The token and the head start as copies of the class token and head.
    for copy, source in (("dist_token", "cls_token"), ("heads/head_dist", "heads/head")):
        copies = zip(_weights(distilled, copy), _weights(distilled, source), strict=True)
        for weight, original in copies:
            np.testing.assert_array_equal(weight, original)
    np.testing.assert_array_equal(_weights(distilled, "cls_token"), _weights(plain, "cls_token"))

    keras.utils.set_random_seed(1)
    trained = student()
    trained.save_weights(str(tmp_path / "distilled.weights.h5"))
    export_reference_weights(trained, str(tmp_path / "distilled.safetensors"))
    kept = {v.path.removeprefix("heads/"): ops.convert_to_numpy(v) for v in trained.weights}
    for path in ("distilled.weights.h5", "distilled.safetensors"):
        alone = keras_convit.ConViT(**STUDENT, input_shape=(16, 16, 3), classes=10)
        load_weights(alone, str(tmp_path / path))
        # Everything but the distillation token and head, the class head included.
        for variable in alone.weights:
            np.testing.assert_array_equal(ops.convert_to_numpy(variable), kept[variable.path])


def _weights(model, prefix):
    return [ops.convert_to_numpy(v) for v in model.weights if v.path.startswith(prefix + "/")]


def test_a_student_and_teacher_that_do_not_fit_are_refused():
    teacher = cnn_teacher((16, 16, 3), 10)
    plain = keras_convit.ConViT(**STUDENT, input_shape=(16, 16, 3), classes=10)
    with pytest.raises(ValueError, match="distillation=True"):
        HardDistillation(plain, teacher)
    with pytest.raises(ValueError, match="same images and classes"):
        HardDistillation(student(), cnn_teacher((16, 16, 3), 3))
    with pytest.raises(ValueError, match="same images and classes"):
        HardDistillation(student(), cnn_teacher((32, 32, 3), 10))


@pytest.mark.slow
def test_the_job_distils_from_a_teacher_file_and_saves_the_student(tmp_path):
    teacher = cnn_teacher((8, 8, 3), 10)
    teacher.save(str(tmp_path / "teacher.keras"))
    config = TrainConfig(
        image_size=8, epochs=1, augmentation="none", teacher=str(tmp_path / "teacher.keras"),
        model_args={"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1},
    )  # fmt: skip
    assert config.resolved().run_name.endswith("-distilled")
    metrics = keras_convit.job.run_training(config, output_dir=str(tmp_path / "run"), verbose=0)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["settings"]["teacher"] == str(tmp_path / "teacher.keras")
    saved = keras.saving.load_model(str(tmp_path / "run" / "model.keras"), compile=False)
    assert saved.layers[-1].name == "heads" and saved.output_shape == (None, 10)
    settings = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert settings["teacher"] == str(tmp_path / "teacher.keras")
