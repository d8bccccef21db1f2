import keras

from keras_convit.layers.attention import ATTENTION_ARGUMENTS, MultiHeadSelfAttention
from keras_convit.layers.composite import CompositeLayer
from keras_convit.layers.drop_path import DropPath
from keras_convit.layers.gpsa import GPSA_ARGUMENTS, GatedPositionalSelfAttention
from keras_convit.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="keras_convit")
class TransformerBlock(CompositeLayer):
    """A pre-norm transformer block with GPSA or plain multi-head self-attention.

    x = x + DropPath(attn(norm1(x))); x = x + DropPath(mlp(norm2(x))), with LayerNorm epsilon 1e-6
    and an exact-GELU MLP, as the reference `Block`.

    Args:
        hidden_dim: int, the total width C (all heads together, not per head).
        num_heads: int, must divide `hidden_dim`.
        use_gpsa: bool, `GatedPositionalSelfAttention` if True, else `MultiHeadSelfAttention`.
        mlp_ratio: float, MLP width as a multiple of `hidden_dim`.
        qkv_bias: bool, bias on the query/key/value projections.
        dropout_rate: float, dropout after the attention projection and in the MLP.
        attention_dropout_rate: float, dropout on the attention matrix.
        drop_path_rate: float, stochastic depth rate of both residual branches.
        layer_norm_epsilon: float.
        grid_size, locality_strength, use_conv_init, gating_init, trainable_gating: passed to
            `GatedPositionalSelfAttention` when `use_gpsa` is True, ignored otherwise.
        trainable_attention: bool, False freezes the attention sublayer (all of GPSA, gating
            included: the paper's Table 3 rows f and g); the norms and the MLP still train.

    Call arguments:
        inputs: (batch, N, hidden_dim).
        training: bool.
        return_attention_scores: bool. If True, returns `(outputs, scores)`, `scores` being the
            attention layer's dict of (batch, heads, N, N) matrices.
        gate_override: None or a float forced as GPSA's sigma(lambda) (GPSA blocks only).

    Example:
    >>> block = keras_convit.layers.TransformerBlock(32, 4, use_gpsa=True, grid_size=(2, 2))
    >>> tuple(block(np.random.rand(3, 4, 32).astype("float32")).shape)
    (3, 4, 32)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        use_gpsa=False,
        mlp_ratio=4.0,
        qkv_bias=False,
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        grid_size=None,
        locality_strength=1.0,
        use_conv_init=True,
        gating_init=1.0,
        trainable_gating=True,
        trainable_attention=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.use_gpsa = use_gpsa
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.dropout_rate = dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.grid_size = tuple(grid_size) if grid_size is not None else None
        self.locality_strength = locality_strength
        self.use_conv_init = use_conv_init
        self.gating_init = gating_init
        self.trainable_gating = trainable_gating
        self.trainable_attention = trainable_attention

    def build(self, input_shape):
        epsilon = self.layer_norm_epsilon
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=epsilon, dtype=self.sublayer_dtype("norm1"), name="norm1"
        )
        self.norm1.build(input_shape)
        attention = self.arguments(ATTENTION_ARGUMENTS)
        self.attn = self.attention_layer(**attention, dtype=self.dtype_policy, name="attn")
        self.attn.build(input_shape)
        self.attn.trainable = self.trainable_attention
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=epsilon, dtype=self.sublayer_dtype("norm2"), name="norm2"
        )
        self.norm2.build(input_shape)
        self.mlp = MLP(
            self.hidden_dim,
            int(self.hidden_dim * self.mlp_ratio),
            dropout_rate=self.dropout_rate,
            dtype=self.dtype_policy,
            name="mlp",
        )
        self.mlp.build(input_shape)
        self.drop_path = DropPath(
            self.drop_path_rate, dtype=self.sublayer_dtype("drop_path"), name="drop_path"
        )
        self.drop_path.build(input_shape)

    def attention_layer(self, **arguments):
        """The attention sublayer, built from the arguments every attention takes."""
        if self.use_gpsa:
            return GatedPositionalSelfAttention(**self.arguments(GPSA_ARGUMENTS), **arguments)
        return MultiHeadSelfAttention(**arguments)

    def call(self, inputs, training=None, return_attention_scores=False, gate_override=None):
        attention_kwargs = {"gate_override": gate_override} if gate_override is not None else {}
        if attention_kwargs and not self.use_gpsa:
            raise ValueError(
                f"`gate_override` applies to GPSA blocks only; {self.name} is not one."
            )
        attended = self.attn(
            self.norm1(inputs),
            training=training,
            return_attention_scores=return_attention_scores,
            **attention_kwargs,
        )
        if return_attention_scores:
            attended, scores = attended
        x = inputs + self.randomly_dropped(self.drop_path, attended, training)
        updated = self.mlp(self.norm2(x), training=training)
        x = x + self.randomly_dropped(self.drop_path, updated, training)
        if return_attention_scores:
            return x, scores
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        own = (
            "use_gpsa",
            "mlp_ratio",
            "drop_path_rate",
            "layer_norm_epsilon",
            "trainable_attention",
        )
        arguments = self.arguments((*ATTENTION_ARGUMENTS, *GPSA_ARGUMENTS, *own))
        return {**super().get_config(), **arguments}
