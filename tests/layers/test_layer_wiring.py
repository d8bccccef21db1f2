"""Wiring the maths tests miss (issue 26's hand mutations, each named in its test): drop path
on both residual branches, locality strength on every head, average pooling over the tokens
that are there."""

import keras
import numpy as np
from harness import tiny_convit
from keras import ops

from keras_convit.layers import GatedPositionalSelfAttention, TransformerBlock


def test_drop_path_drops_the_mlp_branch_too():
    """Mutation killed: `x = x + self.mlp(self.norm2(x))` in `TransformerBlock.call` (drop path
    left off the MLP branch; the attention branch still dropped). With rate 0.5 per branch, a
    quarter of the samples lose both branches and come out unchanged; with the mutation none
    does. The samples whose MLP branch alone was dropped are `x + attn / keep`."""
    block = TransformerBlock(16, 2, drop_path_rate=0.5)
    x = np.random.default_rng(0).normal(size=(64, 5, 16)).astype("float32")
    out = ops.convert_to_numpy(block(x, training=True))
    attended = x + ops.convert_to_numpy(block.attn(block.norm1(x))) / 0.5
    unchanged = np.all(out == x, axis=(1, 2))
    mlp_dropped = np.all(np.isclose(out, attended, atol=1e-5), axis=(1, 2))
    assert 5 <= unchanged.sum() <= 30 and 5 <= mlp_dropped.sum() <= 30


def test_locality_strength_multiplies_every_head():
    """Mutation killed: the locality strength applied to the convolutional heads only (as
    `np.where(np.isnan(conv), kernel, conv * locality_strength)`); the reference multiplies the
    whole `pos_proj` weight, the random heads past k^2 too (5 heads: head 4)."""

    def kernel(strength):
        keras.utils.set_random_seed(3)
        layer = GatedPositionalSelfAttention(30, 5, grid_size=(4, 4), locality_strength=strength)
        layer.build((None, 16, 30))
        return ops.convert_to_numpy(layer.pos_proj.kernel)

    once, thrice = kernel(1.0), kernel(3.0)
    assert np.all(np.abs(once[:, 4]) > 0)
    np.testing.assert_allclose(thrice, 3.0 * once, rtol=1e-6)


def test_average_pooling_averages_the_tokens_that_are_there():
    """Mutation killed: `num_prefix_tokens = 1 + distillation` (a class token skipped even when
    `local_up_to_layer == depth` inserts none, so `pooling="avg"` drops a patch token). The
    pooled features equal the mean of the pool's input over the patch tokens only."""
    for local_up_to_layer, prefix in ((2, 0), (1, 1)):
        model = tiny_convit(
            depth=2, local_up_to_layer=local_up_to_layer, pooling="avg", include_top=False
        )
        tokens = keras.Model(model.input, model.get_layer("pool").input)
        images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
        expected = ops.convert_to_numpy(tokens(images))[:, prefix:].mean(axis=1)
        np.testing.assert_allclose(ops.convert_to_numpy(model(images)), expected, atol=1e-5)
