"""Per-block features of a ConViT as spatial maps, for dense tasks (timm's
`forward_intermediates`, keras-hub's `pyramid_outputs`)."""

import keras
from keras import ops

from keras_convit.layers import PatchEmbedding


@keras.saving.register_keras_serializable(package="keras_convit")
class TokenMap(keras.layers.Layer):
    """Lays a token sequence out on its patch grid: (B, prefix + h * w, C) -> (B, h, w, C).

    The first `num_prefix_tokens` tokens (the class token, and the distillation token) are
    dropped; patch token n sits at row n // w, column n % w (`PatchEmbedding`'s order).

    Args:
        grid_size: (h, w), the patch grid.
        num_prefix_tokens: int, tokens in front of the patch tokens.

    Example:
    >>> layer = keras_convit.models.TokenMap((2, 3), num_prefix_tokens=1)
    >>> tuple(layer(np.zeros((4, 7, 32), "float32")).shape)
    (4, 2, 3, 32)
    """

    def __init__(self, grid_size, num_prefix_tokens=0, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = tuple(grid_size)
        self.num_prefix_tokens = num_prefix_tokens

    def call(self, tokens):
        height, width = self.grid_size
        patches = tokens[:, self.num_prefix_tokens :]
        return ops.reshape(patches, (-1, height, width, tokens.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.grid_size, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "grid_size": self.grid_size,
            "num_prefix_tokens": self.num_prefix_tokens,
        }


def feature_extractor(model, blocks=None, name=None):
    """A Keras model from images to the outputs of a ConViT's blocks, as spatial maps.

    Each output is a block's output tokens (before the final norm) with the class token (and
    the distillation token) removed, laid out on the patch grid: `"blocks_i"` of shape
    (batch, h, w, hidden_dim), h and w the image height and width over the patch size (any
    input size the model was built at, non-square included). These are timm's
    `forward_intermediates(x)` (NCHW there, channels last here). The
    extractor shares its layers (and so its weights) with `model`; for another input size,
    build the model at that size (`weights=` resamples the position embedding).

    Args:
        model: a ConViT built by `keras_convit.ConViT`, a variant or `from_preset` (any head
            or pooling; a `.keras` file of one loaded back).
        blocks: which blocks, a sequence of indices (negative ones count from the end);
            None: every block.
        name: the extractor's name, default "<model name>_features".

    Returns:
        A `keras.Model` whose outputs are a dict {"blocks_i": (batch, h, w, hidden_dim)}.

    Example:
    >>> model = keras_convit.ConViT(32, 4, depth=3, local_up_to_layer=2, patch_size=8,
    ...                             input_shape=(16, 32, 3), classes=5)
    >>> features = keras_convit.feature_extractor(model, blocks=[0, -1])
    >>> maps = features.predict(np.zeros((2, 16, 32, 3)), verbose=0)
    >>> {key: value.shape for key, value in maps.items()}
    {'blocks_0': (2, 2, 4, 32), 'blocks_2': (2, 2, 4, 32)}
    """
    names = [layer.name for layer in getattr(model, "layers", ())]
    depth = sum(1 for layer_name in names if layer_name.startswith("blocks_"))
    patch_embed = [layer for layer in model.layers if isinstance(layer, PatchEmbedding)]
    if not depth or len(patch_embed) != 1 or not getattr(model, "inputs", None):
        raise ValueError(
            "feature_extractor needs a functional ConViT (as keras_convit.ConViT builds, with "
            f"layers patch_embed and blocks_0 ...); got {type(model).__name__} "
            f"{getattr(model, 'name', '')!r}."
        )
    indices = _block_indices(blocks, depth)
    grid_size = patch_embed[0].grid_size
    outputs = {}
    for index in indices:
        tokens = model.get_layer(f"blocks_{index}").output
        prefix = tokens.shape[1] - grid_size[0] * grid_size[1]
        outputs[f"blocks_{index}"] = TokenMap(
            grid_size, num_prefix_tokens=prefix, name=f"blocks_{index}_map"
        )(tokens)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=name or f"{model.name}_features")


def _block_indices(blocks, depth):
    if blocks is None:
        return list(range(depth))
    if isinstance(blocks, (int, str)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in blocks
    ):
        raise ValueError(
            f"`blocks` must be None or a sequence of block indices (e.g. [3] or range(4)), "
            f"got blocks={blocks!r}."
        )
    indices = []
    for index in blocks:
        if not -depth <= index < depth:
            raise ValueError(
                f"`blocks` holds {index}, but the model has {depth} blocks (indices "
                f"{-depth} to {depth - 1})."
            )
        if index % depth not in indices:
            indices.append(index % depth)
    if not indices:
        raise ValueError("`blocks` is empty: name at least one block, or None for all.")
    return indices
