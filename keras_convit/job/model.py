"""The model a run trains: its preset, the baseline or ablation asked for, and the teacher of a
distillation."""

import keras

from keras_convit.models.variants import from_preset
from keras_convit.presets import BASELINES, DEIT_TWIN_SUFFIX


def build_model(config, num_classes):
    """The model of `config` (resolved): its preset with `config.model_args` on top; with
    `config.baseline` "deit" its DeiT twin (the `*_deit` preset's layout), with "in_place"
    the in-place ablation (`keras_convit.presets.BASELINES`); with `config.teacher`, with a
    distillation token and head.

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
    return from_preset(
        config.model,
        **arguments,
        drop_path_rate=config.drop_path_rate,
        input_shape=(config.image_size, config.image_size, 3),
        classes=num_classes,
        compile=False,
        name=name,
    )


def load_teacher(path):
    """The teacher of `--teacher`: a `.keras` classifier, loaded without its compile state."""
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise ValueError(f"Cannot load the teacher {path!r} as a .keras model: {error}") from error
