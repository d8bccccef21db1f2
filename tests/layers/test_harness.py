"""The harness fails where it should: each of its checks against a layer broken on purpose."""

import keras
import numpy as np
import pytest
from harness import run_layer_test, run_model_saving_test, run_precision_test
from keras import ops

from keras_convit.layers import GatedPositionalSelfAttention, MultiHeadSelfAttention, TokenPooling


class ForgetsLocality(GatedPositionalSelfAttention):
    def get_config(self):
        config = super().get_config()
        del config["locality_strength"]
        return config


class MisstatesItsShape(TokenPooling):
    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="harness_test")
class UnfreezesTheGateInItsConfig(GatedPositionalSelfAttention):
    def get_config(self):
        return {**super().get_config(), "trainable_gating": True}


class SublayerWithoutThePolicy(keras.layers.Layer):
    def build(self, input_shape):
        self.dense = keras.layers.Dense(4, name="dense")  # no dtype=self.dtype_policy
        self.dense.build(input_shape)

    def call(self, inputs):
        return self.dense(inputs)


class ScoresRoundedTo16Bits(MultiHeadSelfAttention):
    def call(self, inputs, training=None, return_attention_scores=False):
        outputs = super().call(inputs, training, return_attention_scores)
        if not return_attention_scores:
            return outputs
        outputs, scores = outputs
        rounded = {
            k: ops.cast(ops.cast(v, self.compute_dtype), "float32") for k, v in scores.items()
        }
        return outputs, rounded


def test_a_config_without_a_constructor_argument_fails():
    with pytest.raises(AssertionError, match="locality_strength"):
        run_layer_test(
            ForgetsLocality, dict(hidden_dim=32, num_heads=4, locality_strength=2.0), (2, 16, 32)
        )


def test_a_wrong_compute_output_shape_fails():
    with pytest.raises(AssertionError, match="compute_output_shape"):
        run_layer_test(MisstatesItsShape, {}, (2, 6, 32), (2, 32))


def test_a_model_whose_file_unfreezes_a_weight_fails():
    inputs = keras.Input((16, 32))
    attention = UnfreezesTheGateInItsConfig(32, 4, trainable_gating=False)
    model = keras.Model(inputs, attention(inputs))
    x = np.random.default_rng(0).standard_normal((2, 16, 32)).astype("float32")
    with pytest.raises(AssertionError, match="trainable"):
        run_model_saving_test(model, x)


def test_a_sublayer_outside_the_policy_fails_and_the_global_policy_is_restored():
    x = np.random.default_rng(0).standard_normal((2, 6, 8)).astype("float32")
    with pytest.raises(AssertionError, match="float32"):
        run_precision_test(SublayerWithoutThePolicy, x, policies=("mixed_bfloat16",))
    with pytest.raises(AssertionError, match="float32"):
        run_precision_test(
            lambda: keras.Sequential([keras.Input((6, 8)), keras.layers.Dense(4, dtype="float32")]),
            x,
            policies=("mixed_bfloat16",),
            global_policy=True,
        )
    assert keras.config.dtype_policy().name == "float32"


def test_attention_scores_rounded_to_16_bits_fail():
    x = np.random.default_rng(0).standard_normal((2, 6, 32)).astype("float32")
    with pytest.raises(AssertionError, match="attention"):
        run_precision_test(
            ScoresRoundedTo16Bits, x, dict(hidden_dim=32, num_heads=4), policies=("mixed_bfloat16",)
        )
