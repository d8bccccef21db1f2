"""What Keras keeps of a model and its layers without a public form: the nested layers, the
epoch `fit` starts at, a metric's direction, the layout of a `.weights.h5` file."""


def sublayers(layer):
    """Every layer nested in `layer` (not `layer` itself), at any depth, each once.

    Keras has no public recursive list of a layer's sublayers (3.15.1): `Model.quantize` walks
    the private `_flatten_layers()`, and the `keras.dtype_policies.DTypePolicyMap` docstring
    uses it to record quantized sublayers in `get_config`, as we do (layers/composite.py).
    """
    return layer._flatten_layers(include_self=False)


def set_initial_epoch(model, epoch):
    """Makes the running `fit` continue after `epoch` (0-based count of finished epochs).

    Called from a callback's `on_train_begin`: `fit` reads `model._initial_epoch` after it, as
    `keras.callbacks.BackupAndRestore` relies on; a callback has no public way to do this
    (3.15.1). A caller that knows the epoch before `fit` passes `initial_epoch=` instead.
    """
    model._initial_epoch = epoch


def declare_metric_direction(metric, direction):
    """Marks a metric as better "up" or "down", as Keras' own metrics are marked.

    `EarlyStopping` / `ModelCheckpoint(mode="auto")` read the private `_direction` of the
    compiled metrics and refuse a metric without one (3.15.1); there is no public setter.
    """
    if direction not in ("up", "down"):
        raise ValueError(f'`direction` must be "up" or "down", got {direction!r}.')
    metric._direction = direction
    return metric


def read_weights_file_layers(file):
    """[(layer path, [arrays in creation order])] of an open `.weights.h5` (an h5py.File).

    Keras reads such a file only into a built model; to find the architecture a file holds
    before building one, we read Keras' private HDF5 layout (`H5IOStore`, 3.15.1): each layer
    is a group whose `vars` child carries the layer name as an attribute and the layer's own
    variables as datasets "0", "1", ...; sublayers nest inside. Optimizer state is skipped.
    """
    import h5py
    import numpy as np

    layers = []

    def visit(group, prefix):
        for child in group.values():
            if not isinstance(child, h5py.Group) or "vars" not in child:
                continue
            name = str(child["vars"].attrs.get("name", ""))
            path = f"{prefix}/{name}" if prefix else name
            datasets = child["vars"]
            layers.append((path, [np.asarray(datasets[str(i)]) for i in range(len(datasets))]))
            visit(child, path)

    visit(file["layers"] if "layers" in file else file, "")
    return layers
