"""ConViT models: the builder, the six paper variants, named presets, and what a classifier is
compiled with (the label contract, the logits rule, the weight-decay exclusions)."""

from keras_convit.models.conversion import convert_weights, describe_architecture
from keras_convit.models.convit import (
    VARIANTS,
    ConViT,
    ConViTBase,
    ConViTBasePlus,
    ConViTSmall,
    ConViTSmallPlus,
    ConViTTiny,
    ConViTTinyPlus,
    from_preset,
)
from keras_convit.models.labels import (
    ClassifierAccuracy,
    ClassifierCrossentropy,
    ClassifierTopKAccuracy,
    outputs_logits,
)
from keras_convit.models.training_defaults import compile_classifier
from keras_convit.models.weight_decay import ConViTAdamW, no_weight_decay_variables

__all__ = [
    "VARIANTS",
    "ClassifierAccuracy",
    "ClassifierCrossentropy",
    "ClassifierTopKAccuracy",
    "ConViT",
    "ConViTAdamW",
    "ConViTBase",
    "ConViTBasePlus",
    "ConViTSmall",
    "ConViTSmallPlus",
    "ConViTTiny",
    "ConViTTinyPlus",
    "compile_classifier",
    "convert_weights",
    "describe_architecture",
    "from_preset",
    "no_weight_decay_variables",
    "outputs_logits",
]
