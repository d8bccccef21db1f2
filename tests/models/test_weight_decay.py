"""ConViTAdamW: Keras' AdamW update on every backend (under PyTorch, made by PyTorch's fused
kernel), and the reference's weight-decay exclusions through a `.keras` round trip and a rebuilt
optimizer."""

import keras
import numpy as np
from harness import random_images, run_model_saving_test, tiny_convit

from keras_convit.models import ConViTAdamW, no_weight_decay_variables
from keras_convit.training import deit_recipe

UNDECAYED = ("gating_param", "norm1/gamma", "norm/gamma", "pos_embed/embedding", "cls_token/token")


def tiny():
    return tiny_convit(depth=2, local_up_to_layer=1, classes=3)


def values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}


def test_a_saved_and_loaded_model_trains_on_with_the_same_exclusions(rng):
    model = tiny()
    # Values far from 0, so that a decay step (lr x 0.05 x value) would show on each of them.
    model.get_layer("pos_embed").embedding.assign(np.ones((1, 16, 32), "float32"))
    images = random_images(rng, batch=4)
    loaded = run_model_saving_test(model, images)
    assert isinstance(loaded.optimizer, ConViTAdamW)

    labels = np.array([0, 1, 2, 0])
    before = values(model)
    model.train_on_batch(images, labels)  # the step before saving
    loaded.train_on_batch(images, labels)  # the same step after loading
    trained, reloaded = values(model), values(loaded)
    excluded = {v.path for v in loaded.optimizer.excluded_variables(loaded.trainable_variables)}
    assert excluded == {v.path for v in no_weight_decay_variables(model)}
    assert len(excluded) == 22
    for path in trained:
        np.testing.assert_allclose(reloaded[path], trained[path], atol=1e-6, err_msg=path)
    checked = [path for path in trained if path.endswith(UNDECAYED) or "gating" in path]
    assert len(checked) >= 6
    for path in checked:
        assert path in excluded
        assert not np.allclose(trained[path], before[path]), f"{path} did not train"


def test_the_recipe_optimizer_keeps_its_schedule_and_exclusions_through_a_file():
    model = tiny()
    model.compile(**deit_recipe(model, 4, 10, 3))
    loaded = run_model_saving_test(model, random_images())
    assert isinstance(loaded.optimizer, ConViTAdamW)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert len(loaded.optimizer.excluded_variables(loaded.trainable_variables)) == 22
    assert loaded.loss.get_config() == model.loss.get_config()


def test_three_steps_equal_keras_adamw_formula_with_the_exclusions():
    """Keras' AdamW, written out: decay w -= lr wd w (not for the exclusions), then
    w -= alpha_t m / (sqrt(v) + epsilon), alpha_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t).
    The epsilon is large, so that where it is added counts: under PyTorch, the mutations "the
    fused kernel given epsilon unscaled" (it adds epsilon after the bias correction) and "its
    step count off by one" fail here."""
    model = tiny()
    variables = model.trainable_variables
    learning_rate, weight_decay, beta_1, beta_2, epsilon = 0.01, 0.5, 0.9, 0.999, 1e-3
    optimizer = ConViTAdamW(learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon)
    optimizer.build(variables)
    excluded = {id(v) for v in optimizer.excluded_variables(variables)}
    expected = {id(v): keras.ops.convert_to_numpy(v).astype("float64") for v in variables}
    moments = {id(v): (np.zeros(v.shape), np.zeros(v.shape)) for v in variables}
    rng = np.random.default_rng(0)
    for t in (1, 2, 3):
        gradients = [rng.normal(size=v.shape).astype("float32") for v in variables]
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in gradients], variables)
        alpha = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for v, g in zip(variables, gradients, strict=True):
            w, (m, s) = expected[id(v)], moments[id(v)]
            if id(v) not in excluded:
                w = w - learning_rate * weight_decay * w
            m, s = (
                beta_1 * m + (1 - beta_1) * g,
                beta_2 * s + (1 - beta_2) * g.astype("float64") ** 2,
            )
            expected[id(v)], moments[id(v)] = w - alpha * m / (np.sqrt(s) + epsilon), (m, s)
    assert 0 < len(excluded) < len(variables)
    for v in variables:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(v), expected[id(v)], rtol=1e-5, atol=1e-6, err_msg=v.path
        )
