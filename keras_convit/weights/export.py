"""Writing Keras-trained ConViT weights in the reference layout, loadable by timm."""

import keras
import numpy as np

from keras_convit.weights.checkpoints import GRID_METADATA_KEY, write_reference_checkpoint
from keras_convit.weights.reference_names import reference_key, to_reference_layout


def reference_state_dict(model):
    """The model's weights as a reference state_dict: {key: float32 numpy array}, PyTorch layout.

    >>> import keras_convit
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), classes=3
    ... )
    >>> reference_state_dict(model)["blocks.0.attn.qk.weight"].shape
    (128, 64)
    """
    return {
        reference_key(variable.path): np.asarray(
            to_reference_layout(variable.path, keras.ops.convert_to_numpy(variable)),
            dtype=np.float32,
        )
        for variable in model.weights
    }


def export_reference_weights(model, path):
    """Writes `model`'s weights to a `.safetensors` file in timm's `ConVit` layout.

    `timm.create_model("convit_tiny", checkpoint_path=path)` (or `load_state_dict`) then gives
    the same outputs. The patch grid is stored in the file's metadata, so a non-square model's
    checkpoint loads back into other resolutions correctly. Needs the `safetensors` package.

    >>> import keras_convit, os, tempfile
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), classes=3
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "convit.safetensors")
    >>> export_reference_weights(model, path)
    >>> os.path.getsize(path) > 0
    True
    """
    metadata = {}
    try:
        metadata[GRID_METADATA_KEY] = ",".join(map(str, model.get_layer("patch_embed").grid_size))
    except ValueError:
        pass
    write_reference_checkpoint(reference_state_dict(model), path, metadata)
