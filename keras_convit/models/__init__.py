"""ConViT models: the builder, the six paper variants, named presets, and what a classifier is
compiled with (the label contract, the logits rule, the weight-decay exclusions)."""

from keras_convit.models.conversion import (
    convert_weights,
    describe_architecture,
    model_from_weights,
)
from keras_convit.models.convit import ConViT
from keras_convit.models.default_compile import (
    compile_classifier,
    compile_portably,
    default_jit_compile,
)
from keras_convit.models.features import TokenMap, feature_extractor
from keras_convit.models.hub import from_preset, preset_folder, upload_preset
from keras_convit.models.labels import (
    ClassifierAccuracy,
    ClassifierCrossentropy,
    ClassifierTopKAccuracy,
    outputs_logits,
)
from keras_convit.models.model_arguments import convit_arguments
from keras_convit.models.preset_files import load_preset, save_to_preset
from keras_convit.models.variants import (
    ConViTBase,
    ConViTBasePlus,
    ConViTSmall,
    ConViTSmallPlus,
    ConViTTiny,
    ConViTTinyPlus,
)
from keras_convit.models.weight_decay import ConViTAdamW, no_weight_decay_variables

__all__ = [
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
    "TokenMap",
    "compile_classifier",
    "compile_portably",
    "convit_arguments",
    "convert_weights",
    "default_jit_compile",
    "describe_architecture",
    "feature_extractor",
    "from_preset",
    "load_preset",
    "model_from_weights",
    "no_weight_decay_variables",
    "outputs_logits",
    "preset_folder",
    "save_to_preset",
    "upload_preset",
]
