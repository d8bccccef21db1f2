"""keras_convit: ConViT (d'Ascoli et al., ICML 2021) for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_convit import analysis, data, layers
from keras_convit.models import (
    CONFIGS,
    ConViT,
    ConViTBase,
    ConViTBasePlus,
    ConViTSmall,
    ConViTSmallPlus,
    ConViTTiny,
    ConViTTinyPlus,
)
from keras_convit.version import __version__

__all__ = [
    "CONFIGS",
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
    "layers",
]
