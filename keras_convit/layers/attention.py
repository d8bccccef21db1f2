import keras
from keras import ops

from keras_convit.layers.composite import CompositeLayer
from keras_convit.layers.initializers import linear_kernel_initializer
from keras_convit.layers.linear import Linear

# The constructor arguments every attention layer takes (and a block passes on to it).
ATTENTION_ARGUMENTS = (
    "hidden_dim",
    "num_heads",
    "qkv_bias",
    "attention_dropout_rate",
    "dropout_rate",
)


@keras.saving.register_keras_serializable(package="keras_convit")
class MultiHeadSelfAttention(CompositeLayer):
    """Multi-head self-attention with one fused `qkv` projection (the reference's `MHSA`).

    The fast path uses `scaled_dot_product_attention` (Keras' fused kernels where the backend
    has them); the explicit path builds the attention matrix, taken when
    `return_attention_scores` is set or attention dropout is active.

    Args:
        hidden_dim: int, the total width C (all heads together, not per head).
        num_heads: int, must divide `hidden_dim`.
        qkv_bias: bool, bias on the `qkv` projection.
        attention_dropout_rate: float, dropout on the attention matrix.
        dropout_rate: float, dropout after the output projection.

    Call arguments:
        inputs: (batch, N, hidden_dim).
        training: bool.
        return_attention_scores: bool. If True, returns `(outputs, scores)` with `scores` a dict
            holding the float32 (batch, heads, N, N) matrix under "attention".

    Example:
    >>> attention = keras_convit.layers.MultiHeadSelfAttention(32, 4)
    >>> tuple(attention(np.random.rand(2, 5, 32).astype("float32")).shape)
    (2, 5, 32)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        qkv_bias=False,
        attention_dropout_rate=0.0,
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.head_dim = head_width(hidden_dim, num_heads)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.qkv_bias = qkv_bias
        self.attention_dropout_rate = attention_dropout_rate
        self.dropout_rate = dropout_rate
        self.scale = self.head_dim**-0.5

    def build(self, input_shape):
        init = linear_kernel_initializer()
        self.qkv = Linear(
            3 * self.hidden_dim,
            use_bias=self.qkv_bias,
            kernel_initializer=init,
            dtype=self.sublayer_dtype("qkv"),
            name="qkv",
        )
        self.qkv.build(input_shape)
        self.proj = Linear(
            self.hidden_dim, kernel_initializer=init, dtype=self.sublayer_dtype("proj"), name="proj"
        )
        self.proj.build(input_shape)
        build_dropouts(self, input_shape)

    def queries(self, query):
        """The query tokens of (batch, T, heads, head_dim) queries: all of them."""
        return query

    def call(self, inputs, training=None, return_attention_scores=False):
        length = inputs.shape[1]
        qkv = ops.reshape(self.qkv(inputs), (-1, length, 3, self.num_heads, self.head_dim))
        query, key, value = self.queries(qkv[:, :, 0]), qkv[:, :, 1], qkv[:, :, 2]
        dropout_active = bool(training) and self.attention_dropout_rate > 0
        scores = None
        if return_attention_scores or dropout_active:
            logits = ops.einsum("bnhd,bmhd->bhnm", query, key)
            attention = ops.softmax(ops.cast(logits, "float32") * self.scale, axis=-1)
            dropped = self.attention_dropout(ops.cast(attention, value.dtype), training=training)
            mixed = ops.einsum("bhnm,bmhd->bnhd", dropped, value)
            scores = {"attention": attention}
        else:
            mixed = scaled_dot_product_attention(query, key, value, self.scale)
        outputs = ops.reshape(mixed, (-1, query.shape[1], self.hidden_dim))
        outputs = self.randomly_dropped(self.proj_dropout, self.proj(outputs), training)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self.arguments(ATTENTION_ARGUMENTS)}


def scaled_dot_product_attention(query, key, value, scale):
    """softmax(q k^T * scale) v per head: (batch, T, heads, head_dim) queries, (batch, S, heads,
    head_dim) keys and values -> (batch, T, heads, head_dim), the softmax in float32.

    `keras.ops.dot_product_attention`, except under JAX on a CPU, where Keras' op (einsums over
    the (batch, T, heads, head_dim) layout, no fused kernel) is slower than batched products
    over (batch, heads): at ConViT-S's (16, 196, 9, 48), forward 38-44 against 17-21 ms and
    gradient 94-114 against 54-73 ms (jax 0.10.2, 2-core CPU); ConViT-S's forward pass at
    batch 32, 2.80 -> 2.55 s. On GPUs and TPUs Keras' op reaches the fused kernels.

    Example:
    >>> from keras_convit.layers.attention import scaled_dot_product_attention
    >>> tokens = np.random.rand(2, 5, 4, 8).astype("float32")
    >>> tuple(scaled_dot_product_attention(tokens, tokens, tokens, 0.35).shape)
    (2, 5, 4, 8)
    """
    if not _jax_on_cpu():
        return ops.dot_product_attention(query, key, value, scale=scale)
    query, key, value = (ops.transpose(tensor, (0, 2, 1, 3)) for tensor in (query, key, value))
    logits = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
    weights = ops.softmax(ops.cast(logits, "float32") * scale, axis=-1)
    return ops.transpose(ops.matmul(ops.cast(weights, value.dtype), value), (0, 2, 1, 3))


def _jax_on_cpu():
    if keras.backend.backend() != "jax":
        return False
    import jax  # only here: the JAX backend is active

    return jax.devices()[0].platform == "cpu"  # the device Keras' own op checks


def head_width(hidden_dim, num_heads):
    """The width of one head, `hidden_dim // num_heads`; a ValueError when it does not divide."""
    if hidden_dim % num_heads:
        raise ValueError(
            f"`num_heads` must divide `hidden_dim`, got hidden_dim={hidden_dim} and "
            f"num_heads={num_heads}."
        )
    return hidden_dim // num_heads


def build_dropouts(layer, input_shape):
    """Builds the two dropouts of an attention `layer` (its `attention_dropout_rate` on the
    attention weights, its `dropout_rate` after the output projection) as its `attn_drop` and
    `proj_drop`, the reference's names, for (batch, tokens, channels) inputs."""
    layer.attention_dropout = keras.layers.Dropout(
        layer.attention_dropout_rate, dtype=layer.sublayer_dtype("attn_drop"), name="attn_drop"
    )
    layer.proj_dropout = keras.layers.Dropout(
        layer.dropout_rate, dtype=layer.sublayer_dtype("proj_drop"), name="proj_drop"
    )
    tokens = input_shape[1]
    layer.attention_dropout.build((None, layer.num_heads, tokens, tokens))
    layer.proj_dropout.build(input_shape)
