"""Which classifier weights a checkpoint gives a model: none for a model without a head, DeiT's
distillation token and head added or left out, and a new head where the class count differs."""

from keras_convit.weights.reference_names import reference_shape

# DeiT's two classifiers, as reference key prefixes; both follow the same new-head rule.
CLASSIFIERS = ("head", "head_dist")


def fit_classifiers(arrays, variables, new_head=False):
    """`(arrays, variables, new heads)`: the checkpoint's {reference key: array} and the model's
    {reference key: variable} left to load, with the classifiers fitted.

    A model without a head takes none of the checkpoint's; a distillation token is added or
    left out (`_match_distillation_token`). With `new_head`, each classifier of the model whose
    class count differs from the checkpoint's (or that it lacks) is taken out of both, and the
    third item maps it to (the checkpoint's class count or None, the model's); otherwise {}.
    """
    if not any(key.startswith("head.") for key in variables):
        arrays = {key: value for key, value in arrays.items() if _module(key) not in CLASSIFIERS}
    arrays = _match_distillation_token(arrays, variables)
    new_heads = _new_heads(arrays, variables) if new_head else {}
    if new_heads:
        arrays = {key: value for key, value in arrays.items() if _module(key) not in new_heads}
        variables = {key: v for key, v in variables.items() if _module(key) not in new_heads}
    return arrays, variables, new_heads


def new_head_message(model_name, source, new_heads):
    """The one line that reports a new head (`new_heads` from `fit_classifiers`)."""
    file_classes, classes = next(iter(new_heads.values()))
    heads = " and ".join(new_heads)
    which = "which are" if len(new_heads) > 1 else "which is"
    if file_classes is None:
        why = f"the file has no head, the model's has {classes} classes"
    else:
        why = f"the file's head has {file_classes} classes, the model's {classes}"
    return (
        f"Loaded {source!r} into {model_name!r} but its {heads}, {which} new (freshly "
        f"initialised; train it): {why}."
    )


def _module(key):
    return key.split(".", 1)[0]


def _new_heads(arrays, variables):
    """{classifier: (the checkpoint's class count or None if it has none, the model's)} for each
    classifier of the model that gets a new head: the checkpoint's differs in its class count
    only, or is absent. A classifier of another width is left to the mismatch report."""
    heads = {}
    for name in CLASSIFIERS:
        weight_key, bias_key = f"{name}.weight", f"{name}.bias"
        if weight_key not in variables:
            continue
        classes, width = reference_shape(variables[weight_key].path, variables[weight_key].shape)
        weight, bias = arrays.get(weight_key), arrays.get(bias_key)
        if weight is None and bias is None:
            heads[name] = (None, classes)
        elif (
            weight is not None
            and bias is not None
            and weight.ndim == 2
            and weight.shape[1] == width
            and bias.shape == weight.shape[:1]
            and weight.shape[0] != classes
        ):
            heads[name] = (int(weight.shape[0]), classes)
    return heads


def _match_distillation_token(arrays, variables):
    """`arrays` with DeiT's distillation token and head added (copies of the class token and
    head) or left out, to match whether the model has them."""
    if "dist_token" in variables and "dist_token" not in arrays and "cls_token" in arrays:
        copies = {"dist_token": "cls_token", "head_dist.weight": "head.weight"}
        copies["head_dist.bias"] = "head.bias"
        return {
            **arrays,
            **{key: arrays[source] for key, source in copies.items() if source in arrays},
        }
    if "dist_token" in arrays and "dist_token" not in variables:
        return {
            key: value
            for key, value in arrays.items()
            if key != "dist_token" and not key.startswith("head_dist.")
        }
    return arrays
