"""The shared test harness, in the manner of keras-hub's `TestCase` (plain functions for plain
pytest tests): the one tiny ConViT of the unit tests, and the checks every layer and model gets.

- `TINY_CONVIT`, `tiny_convit(**overrides)`, `random_images(...)`: the tiny model and its input.
- `run_layer_test`: a layer builds, runs, keeps its output shape and dtype, and survives
  `get_config` / `from_config` and `serialize_keras_object` / `deserialize_keras_object`.
- `run_model_saving_test`: a model survives a `.keras` file and a `.weights.h5` file.
- `run_backbone_test`: `include_top=False` on a non-square input, the three pooling modes.
- `run_precision_test`: mixed precision, global or per layer; attention scores stay float32.
- `in_the_session_of(backend)`: a mark that runs a heavy test once, in that backend's session.

Each helper fails with an AssertionError that names what differs; `tests/layers/test_harness.py`
checks that it does, on layers broken on purpose.
"""

import inspect
import json
import os
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

import keras_convit
from keras_convit._keras_compat import sublayers
from keras_convit.layers import GatedPositionalSelfAttention, MultiHeadSelfAttention
from keras_convit.layers.relative_positions import relative_position_features

# The tiny ConViT of the unit tests: 32x32 images, 8x8 patches (a 4x4 grid), 2 GPSA blocks and
# 1 self-attention block, 32 wide, 4 heads. A test that needs another size overrides a few keys.
TINY_CONVIT = dict(
    hidden_dim=32,
    num_heads=4,
    depth=3,
    local_up_to_layer=2,
    patch_size=8,
    input_shape=(32, 32, 3),
    classes=5,
)
# Non-square, and a 2x5 grid of 8x8 patches: rows and columns cannot be swapped unnoticed.
NON_SQUARE_SHAPE = (16, 40, 3)
MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")
_BASE_LAYER_KEYS = {"name", "trainable", "dtype"}


def in_the_session_of(backend):
    """Marks a heavy test that starts real processes to run once, in `backend`'s pytest
    session: what it checks (the job's file handling, an example's orchestration of its runs)
    is the same on every backend, and the job it starts is tested on each elsewhere."""
    return pytest.mark.skipif(
        keras.backend.backend() != backend, reason=f"run once, in the {backend} session"
    )


def tiny_convit(**overrides):
    """`keras_convit.ConViT` on `TINY_CONVIT`, with `overrides` replacing or adding arguments."""
    return keras_convit.ConViT(**{**TINY_CONVIT, **overrides})


def random_images(rng=None, batch=2, shape=TINY_CONVIT["input_shape"]):
    """float32 (batch, *shape) images in [0, 255]; `rng` a numpy Generator (seed 0 if None)."""
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.uniform(0, 255, size=(batch, *shape)).astype("float32")


def to_numpy(outputs):
    """A tensor, or a nest of tensors, as a list of float64 numpy arrays (flattened nest)."""
    flat = keras.tree.flatten(outputs)
    return [ops.convert_to_numpy(ops.cast(t, "float32")).astype("float64") for t in flat]


def _dtype(tensor):
    return keras.backend.standardize_dtype(tensor.dtype)


def _plain(value):
    """`value` as a .keras file's JSON holds it (tuples become lists)."""
    return json.loads(json.dumps(value))


def _comparable(attribute):
    """An attribute in a form `==` compares by value: a function by its name (activations)."""
    if callable(attribute) and hasattr(attribute, "__name__"):
        return attribute.__name__
    try:
        return _plain(attribute)
    except TypeError:
        return repr(attribute)


def _constructor_parameters(layer_class):
    """The named parameters of `layer_class.__init__` itself (not those it forwards)."""
    return [
        name
        for name, parameter in inspect.signature(layer_class.__init__).parameters.items()
        if name != "self"
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def _assert_same_weights(revived, original, what):
    got = [(w.path, tuple(w.shape), w.trainable) for w in revived.weights]
    expected = [(w.path, tuple(w.shape), w.trainable) for w in original.weights]
    assert got == expected, f"{what}: weights (path, shape, trainable) differ:\n{got}\n{expected}"


def _assert_same_outputs(got, expected, atol, what):
    got, expected = to_numpy(got), to_numpy(expected)
    assert len(got) == len(expected), f"{what}: {len(got)} outputs instead of {len(expected)}"
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape, f"{what}: output {index} has shape {a.shape}, not {b.shape}"
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"{what}: output {index}")


def run_layer_test(
    layer_class,
    init_kwargs,
    input_shape=None,
    expected_output_shape=None,
    *,
    input_data=None,
    expected_output_dtype=None,
    atol=1e-6,
):
    """Builds `layer_class(**init_kwargs)`, calls it on `input_data` (default: standard normal
    float32 of `input_shape`, seeded) and checks:

    - the output shape is `expected_output_shape`, in eager calls and `compute_output_shape`;
      its dtype is `expected_output_dtype` (default: the layer's compute dtype);
    - `get_config()` is JSON, holds every constructor argument of the class and every one of
      `init_kwargs` with its value, and `from_config` of its JSON gives a layer with the same
      config, the same attributes of those names, the same weights (path, shape, trainable)
      and, given the same weight values, the same outputs within `atol`;
    - the same through `keras.saving.serialize_keras_object` / `deserialize_keras_object`, the
      class registered as `keras_convit>ClassName`.

    Returns the layer.
    """
    if input_data is None:
        input_data = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
    input_shape = tuple(input_data.shape)

    layer = layer_class(**init_kwargs)
    outputs = layer(input_data)
    assert layer.built, f"{layer_class.__name__} is not built after a call"
    if expected_output_shape is not None:
        assert tuple(outputs.shape) == tuple(expected_output_shape), (
            f"output shape {tuple(outputs.shape)}, expected {tuple(expected_output_shape)}"
        )
        computed = tuple(layer.compute_output_shape(input_shape))
        assert computed == tuple(expected_output_shape), (
            f"compute_output_shape{input_shape} = {computed}, expected "
            f"{tuple(expected_output_shape)}"
        )
    expected_dtype = expected_output_dtype or layer.compute_dtype
    assert _dtype(outputs) == expected_dtype, (
        f"output dtype {_dtype(outputs)}, not {expected_dtype}"
    )

    config = layer.get_config()
    stored = _plain(config)  # raises if the config is not JSON
    for name in _constructor_parameters(layer_class):
        assert name in config, f"get_config() lacks the constructor argument {name!r}"
    for name, value in init_kwargs.items():
        assert name in config, f"get_config() lacks {name!r}, given to the constructor"
        if name not in _BASE_LAYER_KEYS and value is not None:
            assert stored[name] == _plain(value), (
                f"get_config()[{name!r}] is {config[name]!r}, the constructor was given {value!r}"
            )

    def check_revived(revived, what):
        assert type(revived) is layer_class, f"{what} gives a {type(revived).__name__}"
        assert _plain(revived.get_config()) == stored, (
            f"{what}: the config changed:\n{revived.get_config()}\n{config}"
        )
        for name in init_kwargs:
            if hasattr(layer, name) and name not in _BASE_LAYER_KEYS:
                got, expected = getattr(revived, name), getattr(layer, name)
                assert _comparable(got) == _comparable(expected), (
                    f"{what}: attribute {name!r} is {got!r}, not {expected!r}"
                )
        revived(input_data)  # builds it
        _assert_same_weights(revived, layer, what)
        revived.set_weights(layer.get_weights())
        _assert_same_outputs(revived(input_data), outputs, atol, what)

    check_revived(layer_class.from_config(_plain(config)), "from_config(get_config())")

    serialized = _plain(keras.saving.serialize_keras_object(layer))
    if layer_class.__module__.startswith("keras_convit."):
        registered = f"keras_convit>{layer_class.__name__}"
        assert serialized.get("registered_name") == registered, (
            f"registered as {serialized.get('registered_name')!r}, not {registered!r}"
        )
    check_revived(keras.saving.deserialize_keras_object(serialized), "deserialize_keras_object")
    return layer


def run_model_saving_test(model, inputs, *, atol=1e-6):
    """Saves `model` to a `.keras` file and to a `.weights.h5` file, and checks:

    - `keras.saving.load_model` gives a model of the same class, with the same weights (path,
      shape, trainable, exact values), the same optimizer class when it was compiled, and the
      same outputs on `inputs` (inference) within `atol` (0: bit for bit);
    - `load_weights` into the model rebuilt from its config, whose weights were moved off the
      saved values first, restores every value exactly and the same outputs.

    Returns the loaded model, for the test's own checks.
    """
    expected = model(inputs, training=False)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model), f"load_model gives a {type(loaded).__name__}"
        _assert_same_weights(loaded, model, ".keras file")
        _assert_same_values(loaded, model, ".keras file")
        if getattr(model, "optimizer", None) is not None:
            assert type(loaded.optimizer) is type(model.optimizer), (
                f".keras file: optimizer {type(loaded.optimizer).__name__}, not "
                f"{type(model.optimizer).__name__}"
            )
        _assert_same_outputs(loaded(inputs, training=False), expected, atol, ".keras file")

        weights_path = os.path.join(directory, "model.weights.h5")
        model.save_weights(weights_path)
        rebuilt = type(model).from_config(model.get_config())
        rebuilt.set_weights([_moved(w, 0.5) for w in model.get_weights()])
        rebuilt.load_weights(weights_path)
        _assert_same_weights(rebuilt, model, ".weights.h5 file")
        _assert_same_values(rebuilt, model, ".weights.h5 file")
        _assert_same_outputs(rebuilt(inputs, training=False), expected, atol, ".weights.h5 file")
    return loaded


def _moved(value, offset):
    """A float weight plus `offset`; other weights (a seed generator's state) unchanged."""
    if np.issubdtype(value.dtype, np.floating):
        return (value + offset).astype(value.dtype)
    return value


def _assert_same_values(got, expected, what):
    for a, b in zip(got.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(a), ops.convert_to_numpy(b), err_msg=f"{what}: {b.path}"
        )


def run_backbone_test(input_shape=NON_SQUARE_SHAPE, batch=2, **overrides):
    """`tiny_convit(include_top=False, input_shape=input_shape, **overrides)` with pooling None,
    "token" and "avg" (the same weights), on a non-square input by default. Checks:

    - pooling=None gives the (batch, prefix + h * w, hidden_dim) tokens, h x w the patch grid
      and prefix the class (and distillation) token; every GPSA block has the h x w grid;
    - "token" gives the class token of that sequence (within 1e-6), "avg" the mean of its patch
      tokens (within 1e-5), (batch, hidden_dim); without a class token (every block GPSA),
      "token" is refused;
    - there is no classification head and the model is not compiled.

    Returns {pooling: model}.
    """
    arguments = {**TINY_CONVIT, **overrides, "input_shape": input_shape, "include_top": False}
    hidden_dim, patch_size = arguments["hidden_dim"], arguments["patch_size"]
    depth, local = arguments["depth"], arguments["local_up_to_layer"]
    grid = (input_shape[0] // patch_size, input_shape[1] // patch_size)
    prefix = (1 + bool(arguments.get("distillation"))) * int(local < depth)
    images = random_images(batch=batch, shape=input_shape)

    sequence = keras_convit.ConViT(**arguments, pooling=None)
    assert sequence.output_shape == (None, prefix + grid[0] * grid[1], hidden_dim)
    tokens = to_numpy(sequence(images))[0]
    assert tokens.shape == (batch, prefix + grid[0] * grid[1], hidden_dim)
    gpsa = [
        layer for layer in sublayers(sequence) if isinstance(layer, GatedPositionalSelfAttention)
    ]
    assert len(gpsa) == (local if arguments.get("use_gpsa", True) else 0)
    assert all(layer.grid_size == grid for layer in gpsa), [layer.grid_size for layer in gpsa]
    models = {None: sequence}
    for pooling, expected, atol in (
        ("token", tokens[:, 0], 1e-6),
        ("avg", tokens[:, prefix:].mean(1), 1e-5),
    ):
        if pooling == "token" and prefix == 0:
            try:
                keras_convit.ConViT(**arguments, pooling=pooling)
            except ValueError:
                continue
            raise AssertionError('pooling="token" accepted without a class token')
        model = keras_convit.ConViT(**arguments, pooling=pooling)
        model.set_weights(sequence.get_weights())
        assert model.output_shape == (None, hidden_dim), (pooling, model.output_shape)
        pooled = to_numpy(model(images))[0]
        np.testing.assert_allclose(pooled, expected, atol=atol, err_msg=f"pooling={pooling!r}")
        models[pooling] = model
    for model in models.values():
        names = {layer.name for layer in model.layers}
        assert not names & {"head", "heads", "head_drop"}, names & {"head", "heads"}
        assert getattr(model, "optimizer", None) is None, "a model without a head is compiled"
    return models


def run_precision_test(
    build,
    input_data,
    init_kwargs=None,
    *,
    policies=MIXED_POLICIES,
    global_policy=False,
    atol=0.05,
    atol_of_max=0.1,
):
    """Builds the model or layer under each mixed policy and checks it computes in it:

    - `global_policy=False`: `build(**init_kwargs, dtype=policy)` (a layer class);
      `global_policy=True`: `build(**init_kwargs)` (`tiny_convit`) under
      `keras.config.set_dtype_policy(policy)`, the previous global policy restored after;
    - its outputs are finite, of the dtype of its symbolic outputs and of the policy's compute
      dtype, and within atol + atol_of_max * max|y| of the float32
      build with the same weights;
    - every float variable is float32 (the policy's variable dtype), every layer inside it
      computes in the policy's compute dtype (sublayers built with `dtype=self.dtype_policy`);
    - every attention inside it (GPSA, self- and class attention) keeps what
      `layers/gpsa.py` and `layers/attention.py` promise: the scores of
      `return_attention_scores` are float32 distributions (rows sum to 1 within 1e-5, which a
      softmax in 16 bits misses), GPSA's `gate()` and `positional_attention()` are float32,
      the latter the float64 softmax of its float32 weights within 1e-6, and so the positional
      scores of `call` (its weights are not autocast).

    The float32 build's weights are moved off their initial values first, then copied.

    Returns {policy: (built object, outputs)}.
    """
    init_kwargs = init_kwargs or {}
    results = {}
    previous = keras.config.dtype_policy()
    try:
        reference = _build_under(build, init_kwargs, "float32", global_policy)
        if not reference.built:
            reference(input_data)
        # Off their initial values (GPSA's convolutional init is exact in 16 bits).
        rng = np.random.default_rng(2)
        reference.set_weights(
            [_moved(w, rng.normal(0, 0.05, w.shape)) for w in reference.get_weights()]
        )
        reference_outputs = to_numpy(reference(input_data))
        for name in policies:
            policy = keras.dtype_policies.get(name)
            built = _build_under(build, init_kwargs, name, global_policy)
            if not built.built:
                built(input_data)
            built.set_weights(reference.get_weights())
            outputs = built(input_data)
            _check_policy(built, policy, input_data, outputs)
            for low, high in zip(to_numpy(outputs), reference_outputs, strict=True):
                assert np.all(np.isfinite(low)), f"{name}: outputs not finite"
                limit = atol + atol_of_max * np.abs(high).max()
                np.testing.assert_allclose(low, high, rtol=0, atol=limit, err_msg=name)
            results[name] = (built, outputs)
    finally:
        keras.config.set_dtype_policy(previous)
    return results


def _build_under(build, init_kwargs, policy, global_policy):
    if global_policy:
        keras.config.set_dtype_policy(policy)
        return build(**init_kwargs)
    return build(**init_kwargs, dtype=policy)


def _check_policy(built, policy, input_data, outputs):
    name = policy.name
    if isinstance(built, keras.Model):
        symbolic = built.outputs
    else:
        symbolic = built.compute_output_spec(
            keras.KerasTensor(input_data.shape, _dtype(input_data))
        )
    flat = keras.tree.flatten(outputs)
    for tensor, spec in zip(flat, keras.tree.flatten(symbolic), strict=True):
        assert _dtype(tensor) == spec.dtype, (
            f"{name}: output dtype {_dtype(tensor)}, the symbolic output says {spec.dtype}"
        )
    for tensor in flat:
        assert _dtype(tensor) == policy.compute_dtype, f"{name}: output dtype {_dtype(tensor)}"
    for weight in built.weights:
        if keras.backend.is_float_dtype(weight.dtype):
            assert weight.dtype == policy.variable_dtype, (name, weight.path, weight.dtype)
    layers = [built, *sublayers(built)]
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        assert layer.compute_dtype == policy.compute_dtype, (
            f"{name}: {layer.path or layer.name} ({type(layer).__name__}) computes in "
            f"{layer.compute_dtype}"
        )
    for layer in layers:
        if isinstance(layer, (GatedPositionalSelfAttention, MultiHeadSelfAttention)):
            _check_attention_precision(layer, name)


def _check_attention_precision(layer, policy_name):
    what = f"{policy_name}: {layer.path or layer.name}"
    if isinstance(layer, GatedPositionalSelfAttention):
        length = layer.grid_size[0] * layer.grid_size[1]
    else:
        length = 6
    tokens = np.random.default_rng(1).standard_normal((2, length, layer.hidden_dim))
    outputs, scores = layer(tokens.astype("float32"), return_attention_scores=True)
    assert _dtype(outputs) == layer.compute_dtype, f"{what}: outputs in {_dtype(outputs)}"
    for key, matrix in scores.items():
        assert _dtype(matrix) == "float32", f"{what}: scores[{key!r}] in {_dtype(matrix)}"
        values = ops.convert_to_numpy(matrix).astype("float64")
        assert np.all(np.isfinite(values)), f"{what}: scores[{key!r}] not finite"
        np.testing.assert_allclose(values.sum(-1), 1.0, rtol=0, atol=1e-5, err_msg=f"{what}: {key}")
    if isinstance(layer, GatedPositionalSelfAttention):
        assert _dtype(layer.gate()) == "float32", f"{what}: gate() in {_dtype(layer.gate())}"
        positional = layer.positional_attention()
        assert _dtype(positional) == "float32", f"{what}: positional in {_dtype(positional)}"
        expected = float64_positional_attention(layer)
        np.testing.assert_allclose(
            ops.convert_to_numpy(positional), expected, rtol=0, atol=1e-6, err_msg=what
        )
        assert_positional_scores_are_float32(layer, scores, what)


def float64_positional_attention(layer):
    """GPSA's positional attention (heads, N, N) in float64, from its stored float32 weights."""
    kernel = np.asarray(ops.convert_to_numpy(layer.pos_proj.kernel), "float64")
    bias = np.asarray(ops.convert_to_numpy(layer.pos_proj.bias), "float64")
    logits = (relative_position_features(layer.grid_size) @ kernel + bias).transpose(2, 0, 1)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    return expected / expected.sum(-1, keepdims=True)


def assert_positional_scores_are_float32(layer, scores, what=""):
    """The positional attention that `call` returned (`scores["positional"]`) is the float64
    softmax of the layer's float32 weights within 1e-6, under any policy."""
    np.testing.assert_allclose(
        ops.convert_to_numpy(scores["positional"])[0],
        float64_positional_attention(layer),
        rtol=0,
        atol=1e-6,
        err_msg=f"{what}: the positional attention of call",
    )
