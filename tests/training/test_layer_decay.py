"""Layer-wise learning-rate decay: timm's layer numbering, and a step equal to PyTorch's AdamW
over timm's parameter groups."""

import keras
import numpy as np
import pytest
from harness import tiny_convit

from keras_convit.training import LayerDecayAdamW, deit_recipe
from keras_convit.training.layer_decay import layer_scale, model_depth
from keras_convit.weights.reference_names import reference_key

DECAY = 0.5  # far from 1, so a block off by one changes its rate by half


def _model():
    return tiny_convit(compile=False)  # timm: ConVit(img_size=32, patch_size=8, embed_dim=8, ...)


def test_scales_and_decay_match_timms_parameter_groups():
    from timm_reference import import_timm

    import_timm()
    from timm.models.convit import ConVit
    from timm.optim._param_groups import param_groups_layer_decay

    # timm's embed_dim is per head: 8 x 4 heads, the harness's 32 wide.
    reference = ConVit(
        img_size=32, patch_size=8, embed_dim=8, num_heads=4, depth=3, local_up_to_layer=2
    )
    groups = param_groups_layer_decay(
        reference, 0.05, reference.no_weight_decay(), layer_decay=DECAY
    )
    names = {id(parameter): name for name, parameter in reference.named_parameters()}
    timm_rules = {
        names[id(parameter)]: (group["lr_scale"], group["weight_decay"] > 0)
        for group in groups
        for parameter in group["params"]
    }
    model = _model()
    optimizer = LayerDecayAdamW(DECAY, model_depth(model), learning_rate=1e-3, weight_decay=0.05)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables} - {
        v.path for v in optimizer.excluded_variables(model.trainable_variables)
    }
    ours = {
        reference_key(v.path): (optimizer.scales[v.path], v.path in decayed)
        for v in model.trainable_variables
    }
    assert set(ours) == set(timm_rules)
    for key, (scale, decays) in timm_rules.items():
        assert ours[key][0] == pytest.approx(scale, rel=1e-12), key
        assert ours[key][1] == decays, key


def test_two_steps_equal_pytorch_adamw_over_the_same_groups():
    """The mutations "weight decay at the unscaled rate" (the stem's decay is 1/16 of the
    head's) and, under PyTorch, "`per_variable_updates` dropped" (Keras' multi-tensor AdamW
    then skips `update_step`: every layer at the head's rate) fail here."""
    torch = pytest.importorskip("torch")
    model = _model()
    rng = np.random.default_rng(0)
    variables = model.trainable_variables
    start = [np.asarray(v) for v in variables]
    optimizer = LayerDecayAdamW(
        DECAY, model_depth(model), learning_rate=0.01, weight_decay=0.5, epsilon=1e-12
    )
    optimizer.build(variables)
    excluded = {id(v) for v in optimizer.excluded_variables(variables)}
    gradients = [[rng.normal(size=v.shape).astype("float32") for v in variables] for _ in (0, 1)]
    for step in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in step], variables)

    parameters = [torch.nn.Parameter(torch.tensor(value)) for value in start]
    reference = torch.optim.AdamW(
        [
            {
                "params": [parameter],
                "lr": 0.01 * layer_scale(v.path, DECAY, 3),
                "weight_decay": 0.0 if id(v) in excluded else 0.5,
            }
            for parameter, v in zip(parameters, variables, strict=True)
        ],
        eps=1e-12,  # Keras adds epsilon before the bias correction, PyTorch after: keep it out
    )
    for step in gradients:
        for parameter, gradient in zip(parameters, step, strict=True):
            parameter.grad = torch.tensor(gradient)
        reference.step()
    for v, parameter in zip(variables, parameters, strict=True):
        np.testing.assert_allclose(
            np.asarray(v), parameter.detach().numpy(), atol=2e-6, err_msg=v.path
        )


def test_recipe_uses_it_and_a_saved_model_keeps_it(tmp_path):
    model = tiny_convit(compile=False)
    model.compile(**deit_recipe(model, 32, 10, epochs=2, layer_decay=0.75))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is LayerDecayAdamW
    assert (loaded.optimizer.layer_decay, loaded.optimizer.depth) == (0.75, 3)
    assert loaded.optimizer.scales["patch_embed/proj/kernel"] == pytest.approx(0.75**4)


@pytest.mark.parametrize(
    "arguments, message",
    [((0.0, 12), "layer_decay must be in"), ((0.8, 0), "depth must be"), ((1.5, 12), "(0, 1]")],
)
def test_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        LayerDecayAdamW(*arguments, learning_rate=1e-3)
