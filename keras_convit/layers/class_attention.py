import keras
from keras import ops

from keras_convit.layers.attention import MultiHeadSelfAttention
from keras_convit.layers.block import TransformerBlock
from keras_convit.layers.gpsa import GPSA_ARGUMENTS


@keras.saving.register_keras_serializable(package="keras_convit")
class ClassAttention(MultiHeadSelfAttention):
    """Class attention (CaiT, Touvron et al. 2021, "Going deeper with Image Transformers"): the
    first `num_query_tokens` tokens (the class token, and the distillation token if any)
    query; every token is a key and a value. The cost is O(N) in the sequence length instead
    of O(N^2).

    The weights are `MultiHeadSelfAttention`'s (one fused `qkv` projection, `proj`), so a
    self-attention block's weights load into a class-attention block.

    Args:
        hidden_dim, num_heads, qkv_bias, attention_dropout_rate, dropout_rate: as
            `MultiHeadSelfAttention`.
        num_query_tokens: int, how many leading tokens query (1: the class token).

    Call arguments:
        inputs: (batch, T, hidden_dim), the query tokens first.
        training: bool.
        return_attention_scores: bool. If True, returns `(outputs, scores)`, `scores` holding
            the float32 (batch, heads, num_query_tokens, T) matrix under "attention".

    Returns:
        (batch, num_query_tokens, hidden_dim): the attended query tokens only.

    Example:
    >>> attention = keras_convit.layers.ClassAttention(32, 4)
    >>> tuple(attention(np.random.rand(2, 5, 32).astype("float32")).shape)
    (2, 1, 32)
    """

    def __init__(self, hidden_dim, num_heads, num_query_tokens=1, **kwargs):
        super().__init__(hidden_dim, num_heads, **kwargs)
        if not isinstance(num_query_tokens, int) or num_query_tokens < 1:
            raise ValueError(
                f"`num_query_tokens` must be a positive integer, got {num_query_tokens!r}."
            )
        self.num_query_tokens = num_query_tokens

    def queries(self, query):
        return query[:, : self.num_query_tokens]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_query_tokens, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "num_query_tokens": self.num_query_tokens}


@keras.saving.register_keras_serializable(package="keras_convit")
class ClassAttentionBlock(TransformerBlock):
    """A CaiT class-attention block: the query tokens are updated, the patch tokens pass through.

    q = q + DropPath(CA(norm1(x))); q = q + DropPath(mlp(norm2(q))), where q are the first
    `num_query_tokens` tokens of x and CA is `ClassAttention` over all of x; the output is
    q followed by x's other tokens unchanged (Touvron et al. 2021, CaiT, without LayerScale,
    which ConViT does not use). The sublayers and weights are `TransformerBlock`'s.

    Args:
        hidden_dim, num_heads, mlp_ratio, qkv_bias, dropout_rate, attention_dropout_rate,
            drop_path_rate, layer_norm_epsilon: as `TransformerBlock`.
        num_query_tokens: int, the leading tokens that query and are updated (1: the class
            token; 2 with a distillation token).

    Call arguments:
        inputs: (batch, T, hidden_dim), the query tokens first.
        training: bool.
        return_attention_scores: bool. If True, returns `(outputs, scores)` as
            `ClassAttention` gives them.

    Example:
    >>> block = keras_convit.layers.ClassAttentionBlock(32, 4)
    >>> tokens = np.random.rand(3, 5, 32).astype("float32")
    >>> outputs = keras.ops.convert_to_numpy(block(tokens))
    >>> outputs.shape, bool(np.all(outputs[:, 1:] == tokens[:, 1:]))
    ((3, 5, 32), True)
    """

    def __init__(self, hidden_dim, num_heads, num_query_tokens=1, **kwargs):
        if kwargs.pop("use_gpsa", False):
            raise ValueError("A class-attention block cannot use GPSA.")
        super().__init__(hidden_dim, num_heads, use_gpsa=False, **kwargs)
        self.num_query_tokens = num_query_tokens

    def attention_layer(self, **arguments):
        return ClassAttention(num_query_tokens=self.num_query_tokens, **arguments)

    def call(self, inputs, training=None, return_attention_scores=False):
        queries = inputs[:, : self.num_query_tokens]
        attended = self.attn(
            self.norm1(inputs), training=training, return_attention_scores=return_attention_scores
        )
        if return_attention_scores:
            attended, scores = attended
        queries = queries + self.randomly_dropped(self.drop_path, attended, training)
        updated = self.mlp(self.norm2(queries), training=training)
        queries = queries + self.randomly_dropped(self.drop_path, updated, training)
        outputs = ops.concatenate([queries, inputs[:, self.num_query_tokens :]], axis=1)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def get_config(self):
        config = super().get_config()
        for unused in ("use_gpsa", *GPSA_ARGUMENTS):  # a class-attention block has no GPSA
            config.pop(unused, None)
        return {**config, "num_query_tokens": self.num_query_tokens}
