"""The model a run trains: its preset, the baseline or ablation asked for, the weights it starts
from (a new head where the classes differ), a frozen backbone, and the teacher of a
distillation."""

import dataclasses

import keras

from keras_convit.job.scale import model_building
from keras_convit.models.variants import from_preset
from keras_convit.presets import BASELINES, DEIT_TWIN_SUFFIX

# What a linear probe trains (`freeze_backbone`): the classifiers, DeiT's two included.
HEAD_LAYERS = ("head", "heads")


def build_model(config, num_classes, weights=None):
    """The model of `config` (resolved): its preset with `config.model_args` on top; with
    `config.baseline` "deit" its DeiT twin (the `*_deit` preset's layout), with "in_place"
    the in-place ablation (`keras_convit.presets.BASELINES`); with `config.teacher`, with a
    distillation token and head.

    `weights` ("imagenet" or a weight file, see `keras_convit.weights.load_weights`) are
    loaded, the position embedding resampled to `config.image_size` and the head new where
    the classes differ. With `config.freeze_backbone` only the head trains (a linear probe).
    The model has `config.dtype_policy`, and with `config.remat` its blocks are rematerialized
    (`keras_convit.job.scale.model_building`).

    Example:
    >>> config = keras_convit.job.TrainConfig(baseline="deit").resolved()
    >>> model = keras_convit.job.build_model(config, 10)
    >>> model.name, model.output_shape, model.get_layer("blocks_0").use_gpsa
    ('convit_digits_deit', (None, 10), False)
    """
    arguments = dict(config.model_args)
    name = config.model
    if config.baseline:
        arguments.update(BASELINES[config.baseline])
        name += DEIT_TWIN_SUFFIX if config.baseline == "deit" else f"_{config.baseline}"
    if config.teacher:
        arguments["distillation"] = True
    with model_building(config):
        model = from_preset(
            config.model,
            **arguments,
            drop_path_rate=config.drop_path_rate,
            input_shape=(config.image_size, config.image_size, 3),
            classes=num_classes,
            weights=weights,
            compile=False,
            dtype=config.dtype_policy,
            name=name,
        )
    if config.freeze_backbone:
        for layer in model.layers:
            layer.trainable = layer.name in HEAD_LAYERS
    return model


def shallow_model(config, num_classes):
    """`config`'s model with 2 blocks (one GPSA, one attention) and its widths: to check a
    plan that depends on the widths only, such as a model-parallel layout, without building
    every block."""
    arguments = {**config.model_args, "depth": 2, "local_up_to_layer": 1}
    return build_model(dataclasses.replace(config, model_args=arguments), num_classes)


def load_teacher(path):
    """The teacher of `--teacher`: a `.keras` classifier, loaded without its compile state."""
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise ValueError(f"Cannot load the teacher {path!r} as a .keras model: {error}") from error
