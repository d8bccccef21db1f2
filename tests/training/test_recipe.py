"""The DeiT recipe: learning-rate scaling and schedule, weight-decay exclusions, loss."""

import keras
import numpy as np
import pytest

import keras_convit
from keras_convit.models import ClassifierCrossentropy, no_weight_decay_variables
from keras_convit.training import deit_recipe, learning_rate_schedule, scaled_learning_rate


def _tiny_model(**kwargs):
    return keras_convit.ConViT(
        hidden_dim=16,
        num_heads=2,
        depth=2,
        local_up_to_layer=1,
        patch_size=8,
        input_shape=(16, 16, 3),
        classes=10,
        compile=False,
        **kwargs,
    )


def test_scaled_learning_rate():
    assert scaled_learning_rate(512) == pytest.approx(5e-4)
    assert scaled_learning_rate(1024) == pytest.approx(1e-3)
    assert scaled_learning_rate(64, base_learning_rate=8e-3) == pytest.approx(1e-3)


def test_schedule_values_at_chosen_steps():
    # 5 warm-up epochs of 10 steps from 1e-6 to 1e-3, then cosine to 1e-5 at step 100.
    schedule = learning_rate_schedule(1e-3, total_steps=100, warmup_steps=50)
    expected = {
        0: 1e-6,
        25: 1e-6 + (1e-3 - 1e-6) * 0.5,
        50: 1e-3,
        75: 1e-5 + (1e-3 - 1e-5) * 0.5,  # half-way through the cosine
        100: 1e-5,
        150: 1e-5,  # held at the minimum
    }
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, rel=1e-5), step
    values = [float(schedule(step)) for step in range(50, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_schedule_without_warmup_starts_at_the_peak():
    schedule = learning_rate_schedule(2e-3, total_steps=10, warmup_steps=0)
    assert float(schedule(0)) == pytest.approx(2e-3)
    assert float(schedule(10)) == pytest.approx(1e-5, rel=1e-4)


def test_recipe_settings():
    model = _tiny_model()
    recipe = deit_recipe(model, batch_size=256, steps_per_epoch=10, epochs=20)
    optimizer = recipe["optimizer"]
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(0.05)
    assert optimizer.epsilon == pytest.approx(1e-8)
    assert optimizer.global_clipnorm is None and not optimizer.use_ema
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    assert float(schedule(50)) == pytest.approx(scaled_learning_rate(256))  # end of warm-up
    assert float(schedule(200)) == pytest.approx(1e-5, rel=1e-4)
    loss = recipe["loss"]
    assert isinstance(loss, ClassifierCrossentropy)
    assert loss.label_smoothing == pytest.approx(0.1)
    assert not loss.from_logits  # the default head ends in a softmax
    assert [metric.name for metric in recipe["metrics"]] == ["accuracy", "top5"]

    logits = deit_recipe(
        _tiny_model(classifier_activation=None), 64, 10, clipnorm=1.0, use_ema=True
    )
    assert logits["loss"].from_logits
    assert logits["optimizer"].global_clipnorm == 1.0 and logits["optimizer"].use_ema


def test_weight_decay_exclusions():
    """One step with zero gradients: only weight decay moves a variable."""
    model = _tiny_model()
    recipe = deit_recipe(model, 512, 1, 1, learning_rate=1.0, warmup_epochs=0)
    optimizer = recipe["optimizer"]
    excluded = {variable.path for variable in no_weight_decay_variables(model)}
    for variable in model.trainable_variables:
        variable.assign(np.ones(variable.shape, "float32"))
    optimizer.apply_gradients([(keras.ops.zeros(v.shape), v) for v in model.trainable_variables])
    # AdamW with lr 1 and decay 0.05 shrinks a decayed variable from 1 to 0.95.
    decayed = set()
    for variable in model.trainable_variables:
        value = keras.ops.convert_to_numpy(variable)
        assert np.allclose(value, 0.95) or np.allclose(value, 1.0), variable.path
        if np.allclose(value, 0.95):
            decayed.add(variable.path)
    before = {v.path: v for v in model.trainable_variables}
    assert decayed.isdisjoint(excluded)
    assert decayed | excluded == set(before)
    # The list: every 1-D variable plus the position embedding and the class token; the GPSA
    # pos_proj kernel is decayed, as in the reference.
    assert any(path.endswith("pos_embed/embedding") for path in excluded)
    assert any(path.endswith("cls_token/token") for path in excluded)
    assert any("gating" in path for path in excluded)
    assert all(
        len(before[path].shape) <= 1
        for path in excluded
        if not path.endswith(("pos_embed/embedding", "cls_token/token"))
    )
    assert any("pos_proj/kernel" in path for path in decayed)
    assert any(path.endswith("head/kernel") for path in decayed)
