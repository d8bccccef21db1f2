"""ConViT layers. Each is registered as `keras_convit>ClassName` for `.keras` files."""

from keras_convit.layers.attention import MultiHeadSelfAttention
from keras_convit.layers.block import TransformerBlock
from keras_convit.layers.class_attention import ClassAttention, ClassAttentionBlock
from keras_convit.layers.class_token import ClassTokenInsertion
from keras_convit.layers.distillation_heads import DistillationHeads
from keras_convit.layers.drop_path import DropPath
from keras_convit.layers.embedding import PatchEmbedding, PositionEmbedding
from keras_convit.layers.gpsa import GatedPositionalSelfAttention
from keras_convit.layers.input_check import ImageInputCheck
from keras_convit.layers.linear import Linear
from keras_convit.layers.mlp import MLP
from keras_convit.layers.pooling import TokenPooling

__all__ = [
    "ClassAttention",
    "ClassAttentionBlock",
    "ClassTokenInsertion",
    "DistillationHeads",
    "DropPath",
    "GatedPositionalSelfAttention",
    "ImageInputCheck",
    "Linear",
    "MLP",
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "PositionEmbedding",
    "TokenPooling",
    "TransformerBlock",
]
