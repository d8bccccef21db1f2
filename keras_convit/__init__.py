"""keras_convit: ConViT (d'Ascoli et al., ICML 2021) for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_convit import (
    analysis,
    data,
    deploy,
    distribution,
    job,
    layers,
    models,
    presets,
    training,
    weights,
)
from keras_convit.models import (
    ConViT,
    ConViTBase,
    ConViTBasePlus,
    ConViTSmall,
    ConViTSmallPlus,
    ConViTTiny,
    ConViTTinyPlus,
    feature_extractor,
    from_preset,
    save_to_preset,
    upload_preset,
)
from keras_convit.models.preprocessing import decode_predictions, preprocess_input
from keras_convit.presets import PRESETS
from keras_convit.version import __version__
from keras_convit.weights import export_reference_weights

__all__ = [
    "PRESETS",
    "ConViT",
    "ConViTBase",
    "ConViTBasePlus",
    "ConViTSmall",
    "ConViTSmallPlus",
    "ConViTTiny",
    "ConViTTinyPlus",
    "__version__",
    "analysis",
    "data",
    "decode_predictions",
    "deploy",
    "distribution",
    "export_reference_weights",
    "feature_extractor",
    "from_preset",
    "job",
    "layers",
    "models",
    "preprocess_input",
    "presets",
    "save_to_preset",
    "training",
    "upload_preset",
    "weights",
]
