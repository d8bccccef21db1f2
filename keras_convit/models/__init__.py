from keras_convit.models.convit import (
    CONFIGS,
    ConViT,
    ConViTBase,
    ConViTBasePlus,
    ConViTSmall,
    ConViTSmallPlus,
    ConViTTiny,
    ConViTTinyPlus,
)

__all__ = [
    "CONFIGS",
    "ConViT",
    "ConViTBase",
    "ConViTBasePlus",
    "ConViTSmall",
    "ConViTSmallPlus",
    "ConViTTiny",
    "ConViTTinyPlus",
]
