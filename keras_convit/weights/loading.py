import os

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def validate_weights_argument(weights):
    """Raises a ValueError unless `weights` is None or the path of an existing file."""
    if weights is None:
        return
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        return
    raise ValueError(
        "`weights` must be None (random initialisation) or the path to an existing "
        f"Keras weights file (.weights.h5); got weights={weights!r}."
    )


def load_weights(model, path):
    """Loads a Keras `.weights.h5` file (recognised by its content) into `model`.

    Raises:
        ValueError: the file is not a Keras weights file or does not fit the model (the message
            names the model's input shape, since a channel count mismatch is the usual cause).
    """
    with open(path, "rb") as file:
        signature = file.read(len(HDF5_SIGNATURE))
    if signature != HDF5_SIGNATURE:
        raise ValueError(
            f"weights={os.fspath(path)!r} is not a Keras weights file (.weights.h5, HDF5)."
        )
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(
            f"weights={os.fspath(path)!r} do not fit {model.name!r} with input shape "
            f"{tuple(model.input_shape[1:])} (check the channel count and the architecture): "
            f"{error}"
        ) from error
