"""Wiring the maths tests miss (issue 26's hand mutations, each named in its test): DeiT's
distillation token is excluded from weight decay, as the class token is."""

import keras
import numpy as np
from harness import tiny_convit

from keras_convit.models import ConViTAdamW


def test_the_distillation_token_is_never_decayed():
    """Mutation killed: "dist_token/token" dropped from `NO_WEIGHT_DECAY_PATHS`
    (models/weight_decay.py): the (1, 1, C) token is not 1-D, so only its path excludes it.
    A step with zero gradients moves a variable only by its decay."""
    model = tiny_convit(depth=2, local_up_to_layer=1, classes=3, distillation=True)
    variables = model.trainable_variables
    optimizer = ConViTAdamW(learning_rate=0.1, weight_decay=0.5)
    optimizer.build(variables)
    for variable in variables:  # far from 0, so that a decay step shows
        variable.assign(np.ones(variable.shape, "float32"))
    optimizer.apply([keras.ops.zeros(v.shape) for v in variables], variables)
    after = {v.path: keras.ops.convert_to_numpy(v) for v in variables}
    token = [path for path in after if path.endswith("dist_token/token")]
    assert len(token) == 1
    np.testing.assert_array_equal(after[token[0]], 1.0)
    kernel = next(path for path in after if path.endswith("head/kernel"))
    np.testing.assert_allclose(after[kernel], 1.0 - 0.1 * 0.5, rtol=1e-6)  # decayed
