"""`--dtype-policy mixed_float16`: loss scaling around the job's optimizers (layer decay and
EMA included), a checkpoint that resumes the scaled optimizer exactly, and a saved model and
preset that load and predict; on JAX without a GPU, one line saying why not."""

import keras
import numpy as np
import pytest

from keras_convit.job import ConfigError, TrainConfig, build_model
from keras_convit.models.default_compile import compile_portably
from keras_convit.models.preset_files import load_preset, save_to_preset
from keras_convit.training import RunCheckpoint, deit_recipe

TINY = {"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1}
IMAGES = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
LABELS = np.arange(8) % 10


def _config():
    return TrainConfig(
        image_size=8, model_args=TINY, dtype_policy="mixed_float16", epochs=2, batch_size=4,
        use_ema=True, layer_decay=0.75, augmentation="none",
    ).resolved()  # fmt: skip


def _compiled(config):
    model = build_model(config, 10)
    arguments = config.compile_arguments(model, steps_per_epoch=2)
    compile_portably(model, **{**arguments, "jit_compile": False})  # XLA: 20 s more on TF
    return model


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def test_float16_scales_the_loss_and_resumes_the_scaled_optimizer(tmp_path):
    """Mutations killed: the recipe's `LossScaleOptimizer` wrapping gone for a distiller
    (`HardDistillation` has the default policy, so `compile` does not wrap it); the loss
    scale's variables not restored on resume (a weights file without the optimizer); the
    top-5 metric on float16 outputs (TensorFlow's InTopKV2 takes float32 only)."""
    if keras.backend.backend() == "jax" and keras.distribution.list_devices()[0].startswith("cpu"):
        with pytest.raises(ConfigError, match="mixed_float16 needs a GPU or TPU on JAX"):
            _config()
        return
    config = _config()
    model = _compiled(config)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert type(optimizer.inner_optimizer).__name__ == "LayerDecayAdamW"
    assert optimizer.inner_optimizer.use_ema
    from keras_convit.training import HardDistillation

    student = build_model(TrainConfig(**{**vars(config), "teacher": "x"}), 10)
    teacher = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    distiller = HardDistillation(student, teacher)
    assert isinstance(
        deit_recipe(distiller, 4, 2)["optimizer"], keras.optimizers.LossScaleOptimizer
    )

    model.fit(IMAGES, LABELS, batch_size=4, epochs=1, verbose=0,
              callbacks=[RunCheckpoint(tmp_path, monitor="loss", mode="min")])  # fmt: skip
    saved = _values(model.optimizer.variables)
    resumed, seen = _compiled(config), []
    probe = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.extend(_values(resumed.optimizer.variables))
    )
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    resumed.fit(IMAGES, LABELS, batch_size=4, epochs=2, verbose=0, callbacks=[checkpoint, probe])
    assert len(seen) == len(saved)
    for expected, actual in zip(saved, seen, strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert np.isfinite(checkpoint.history["loss"]).all() and checkpoint.epoch == 2

    predicted = resumed.predict(IMAGES, verbose=0)
    resumed.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    save_to_preset(resumed, tmp_path / "preset")
    for other in (loaded, load_preset(tmp_path / "preset")):
        assert other.get_layer("head").dtype_policy.name == "mixed_float16"
        np.testing.assert_allclose(other.predict(IMAGES, verbose=0), predicted, atol=1e-3)
