import math

import keras
import numpy as np
from keras import ops

from keras_convit.layers.attention import (
    ATTENTION_ARGUMENTS,
    build_dropouts,
    head_width,
    scaled_dot_product_attention,
)
from keras_convit.layers.composite import CompositeLayer
from keras_convit.layers.initializers import linear_kernel_initializer
from keras_convit.layers.linear import Linear
from keras_convit.layers.relative_positions import relative_position_features


def convolutional_pos_proj_kernel(num_heads):
    """The positional weights of the convolutional initialisation, Keras layout (3, heads).

    Head h is centred on the offset Delta_h = (h // k - c, h % k - c) of a k x k kernel,
    k = floor(sqrt(heads)), c = (k - 1) / 2 (half-integer for even k), so its score
    2 Delta.delta - ||delta||^2 = -||delta - Delta_h||^2 + const (paper Eq. 7, with alpha = 1).
    Heads past k^2, when `num_heads` is not a perfect square, are returned as NaN: they keep
    their random initialisation.
    """
    kernel_size = math.isqrt(num_heads)
    center = (kernel_size - 1) / 2
    kernel = np.full((3, num_heads), np.nan, dtype="float32")
    for row in range(kernel_size):
        for col in range(kernel_size):
            head = row + kernel_size * col
            kernel[:, head] = (2 * (col - center), 2 * (row - center), -1.0)
    return kernel


# GPSA's constructor arguments beyond those of every attention layer (`ATTENTION_ARGUMENTS`).
GPSA_ARGUMENTS = (
    "grid_size",
    "locality_strength",
    "use_conv_init",
    "gating_init",
    "trainable_gating",
)


@keras.saving.register_keras_serializable(package="keras_convit")
class PositionalProjection(keras.layers.Dense):
    """GPSA's positional weights v_pos: a `Dense` from the offsets (dx, dy, dx^2 + dy^2) to
    one logit per head, (3,) -> (heads,), that `quantize` leaves float.

    GPSA does not call this layer: it reads `kernel` and `bias` to build the positional
    attention from its row and column factors (paper Eq. 5, separable over the grid). A
    quantized kernel would hold int8 values without their scale; and at 3 x heads weights
    there is nothing to save. `model.quantize(mode)` thus leaves the positional attention of
    every mode exactly that of the float model.
    """

    def add_weight(self, *args, **kwargs):
        # Read as stored (float32) even inside a mixed policy's autocast scope: the positional
        # softmax (Eq. 5) is float32, and weights rounded to 16 bits would move it by ~1e-3.
        return super().add_weight(*args, **{**kwargs, "autocast": False})

    def quantize(self, mode=None, type_check=True, config=None):
        # Deliberately nothing: `Dense.quantize` would turn `kernel` into int8 values.
        return None


@keras.saving.register_keras_serializable(package="keras_convit")
class GatedPositionalSelfAttention(CompositeLayer):
    """Gated positional self-attention, GPSA (d'Ascoli et al. 2021, Eq. 6).

    Each head h mixes a content attention softmax(q k^T / sqrt(d)) with a positional attention
    softmax(v_pos^h . r_delta) over the relative offsets delta of the patch grid, through a gate
    sigma(lambda_h): A = (1 - sigma) content + sigma positional. The positional attention does not
    depend on the input, is separable over the grid's rows and columns, and is computed in
    float32.

    Two paths give the same output (within float rounding):
    - fast (default): content via `scaled_dot_product_attention` (fused kernels where the
      backend has them), output (1 - sigma) SDPA(q, k, v) + sigma (P v), with P v computed from
      the row and column factors of P: no N x N positional matrix is built. On TensorFlow,
      whose attention op is not a fused kernel, P is mixed into the content matrix instead;
    - explicit: builds the (batch, heads, N, N) matrices. Taken when `return_attention_scores`
      is set or attention dropout is active.

    Args:
        hidden_dim: int, the total width C (all heads together, not per head).
        num_heads: int, must divide `hidden_dim`. With the convolutional init the heads cover a
            floor(sqrt(heads))^2 kernel; the extra heads of a non-square count keep a random
            positional init.
        grid_size: (height, width) of the patch grid; N = height * width must equal the sequence
            length. None assumes a square grid.
        locality_strength: alpha, multiplies the whole positional weight at init: larger values
            make the initial positional attention more local.
        use_conv_init: bool, the convolutional init (v = identity, heads on a kernel). False keeps
            random weights (the paper's ablation).
        gating_init: float, the initial gating parameter lambda (1.0 in the paper).
        trainable_gating: bool, False freezes lambda.
        qkv_bias: bool, bias on the `qk` and `v` projections.
        attention_dropout_rate: float, dropout on the combined attention matrix.
        dropout_rate: float, dropout after the output projection.

    Call arguments:
        inputs: (batch, N, hidden_dim) patch tokens (no class token).
        training: bool.
        return_attention_scores: bool. If True, returns `(outputs, scores)` with `scores` a dict
            of float32 (batch, heads, N, N) tensors: "attention" (combined), "content" and
            "positional".
        gate_override: None, or a float in [0, 1] used as sigma(lambda) for every head instead
            of the learned gate (test-time masking, paper Table 6: 1 masks the content, 0 the
            position). The stored weights are not touched.

    Example:
    >>> gpsa = keras_convit.layers.GatedPositionalSelfAttention(32, 4, grid_size=(2, 3))
    >>> tokens = np.random.rand(2, 6, 32).astype("float32")
    >>> tuple(gpsa(tokens).shape)
    (2, 6, 32)
    >>> outputs, scores = gpsa(tokens, return_attention_scores=True)
    >>> tuple(scores["positional"].shape)
    (2, 4, 6, 6)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        grid_size=None,
        locality_strength=1.0,
        use_conv_init=True,
        gating_init=1.0,
        trainable_gating=True,
        qkv_bias=False,
        attention_dropout_rate=0.0,
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.head_dim = head_width(hidden_dim, num_heads)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.grid_size = tuple(grid_size) if grid_size is not None else None
        self.locality_strength = locality_strength
        self.use_conv_init = use_conv_init
        self.gating_init = gating_init
        self.trainable_gating = trainable_gating
        self.qkv_bias = qkv_bias
        self.attention_dropout_rate = attention_dropout_rate
        self.dropout_rate = dropout_rate
        self.scale = self.head_dim**-0.5

    def build(self, input_shape):
        num_patches = input_shape[1]
        self.grid_size = _resolve_grid(self.grid_size, num_patches)
        self.relative_features = relative_position_features(self.grid_size)

        init = linear_kernel_initializer()
        self.qk = Linear(
            2 * self.hidden_dim,
            use_bias=self.qkv_bias,
            kernel_initializer=init,
            dtype=self.sublayer_dtype("qk"),
            name="qk",
        )
        self.qk.build(input_shape)
        self.v = Linear(
            self.hidden_dim,
            use_bias=self.qkv_bias,
            kernel_initializer="identity" if self.use_conv_init else init,
            dtype=self.sublayer_dtype("v"),
            name="v",
        )
        self.v.build(input_shape)
        self.proj = Linear(
            self.hidden_dim, kernel_initializer=init, dtype=self.sublayer_dtype("proj"), name="proj"
        )
        self.proj.build(input_shape)
        self.pos_proj = PositionalProjection(
            self.num_heads,
            kernel_initializer=init,
            dtype=self.sublayer_dtype("pos_proj"),
            name="pos_proj",
        )
        self.pos_proj.build((None, 3))
        self._initialize_positional_weights()
        self.gating_param = self.add_weight(
            name="gating_param",
            shape=(self.num_heads,),
            initializer=keras.initializers.Constant(self.gating_init),
            trainable=self.trainable_gating,
            autocast=False,  # the gate sigma(lambda) is float32, as the positional attention
        )
        build_dropouts(self, input_shape)

    def _initialize_positional_weights(self):
        kernel = ops.convert_to_numpy(self.pos_proj.kernel)
        if self.use_conv_init:
            conv = convolutional_pos_proj_kernel(self.num_heads)
            kernel = np.where(np.isnan(conv), kernel, conv)
        self.pos_proj.kernel.assign(kernel * self.locality_strength)

    def positional_attention(self):
        """softmax over keys of v_pos^h . r_delta, float32, shape (heads, N, N)."""
        features = ops.convert_to_tensor(self.relative_features)
        kernel = ops.cast(self.pos_proj.kernel, "float32")
        bias = ops.cast(self.pos_proj.bias, "float32")
        logits = ops.matmul(features, kernel) + bias
        return ops.softmax(ops.transpose(logits, (2, 0, 1)), axis=-1)

    def _positional_factors(self):
        """`positional_attention()` as two factors, float32: rows (heads, height, height) and
        cols (heads, width, width), P[h, (r, c), (r', c')] = rows[h, r, r'] cols[h, c, c'].

        The logits v_pos . (dx, dy, dx^2 + dy^2) + b are a function of dy plus one of dx, so
        the softmax over the grid's keys is a softmax over its rows times one over its columns.
        """
        kernel = ops.cast(self.pos_proj.kernel, "float32")[:, :, None, None]
        bias = ops.cast(self.pos_proj.bias, "float32")[:, None, None]
        height, width = self.grid_size
        dy = ops.convert_to_tensor(_axis_offsets(height))
        dx = ops.convert_to_tensor(_axis_offsets(width))
        rows = kernel[1] * dy + kernel[2] * dy**2 + bias
        cols = kernel[0] * dx + kernel[2] * dx**2
        return ops.softmax(rows, axis=-1), ops.softmax(cols, axis=-1)

    def gate(self):
        """sigma(lambda) per head, float32, shape (heads,)."""
        return ops.sigmoid(ops.cast(self.gating_param, "float32"))

    def call(self, inputs, training=None, return_attention_scores=False, gate_override=None):
        num_patches = inputs.shape[1]
        qk = ops.reshape(self.qk(inputs), (-1, num_patches, 2, self.num_heads, self.head_dim))
        query, key = qk[:, :, 0], qk[:, :, 1]
        value = ops.reshape(self.v(inputs), (-1, num_patches, self.num_heads, self.head_dim))
        gate = self.gate()
        if gate_override is not None:
            gate = ops.full((self.num_heads,), gate_override, dtype="float32")
        dropout_active = bool(training) and self.attention_dropout_rate > 0
        if return_attention_scores or dropout_active:
            mixed, scores = self._explicit(query, key, value, gate, training)
        else:
            mixed, scores = self._fast(query, key, value, gate), None
        outputs = ops.reshape(mixed, (-1, num_patches, self.hidden_dim))
        outputs = self.randomly_dropped(self.proj_dropout, self.proj(outputs), training)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def _fast(self, query, key, value, gate):
        if keras.backend.backend() == "tensorflow":
            return self._fast_mixed_matrix(query, key, value, gate)
        return self._fast_factorized(query, key, value, gate)

    def _fast_factorized(self, query, key, value, gate):
        # A v = (1 - sigma) softmax(q k^T) v + sigma P v: both terms are linear in the attention,
        # and P = rows (x) cols (see `_positional_factors`), so P v costs two small products over
        # the grid's rows and columns instead of one N x N product, and the content term goes
        # through the backend's fused attention kernel. The mix runs in the
        # (batch, heads, N, head_dim) layout of the attention kernels.
        height, width = self.grid_size
        heads, head_dim = self.num_heads, self.head_dim
        content = ops.transpose(
            scaled_dot_product_attention(query, key, value, self.scale), (0, 2, 1, 3)
        )
        rows, cols = self._positional_factors()
        rows = ops.cast(rows * gate[:, None, None], value.dtype)
        grid = ops.reshape(ops.transpose(value, (0, 2, 1, 3)), (-1, heads, height, width, head_dim))
        grid = ops.matmul(ops.cast(cols, value.dtype)[:, None], grid)
        grid = ops.matmul(rows, ops.reshape(grid, (-1, heads, height, width * head_dim)))
        positional_values = ops.reshape(grid, (-1, heads, height * width, head_dim))
        content_weight = ops.cast(ops.reshape(1.0 - gate, (heads, 1, 1)), value.dtype)
        return ops.transpose(content_weight * content + positional_values, (0, 2, 1, 3))

    def _fast_mixed_matrix(self, query, key, value, gate):
        # Keras' TensorFlow `dot_product_attention` is einsum-softmax-einsum, not a fused kernel:
        # the N x N content matrix exists anyway, and mixing P (an elementwise product of its
        # factors, fused by XLA) into it costs less time and memory than the factorised P v
        # (ConViT-Ti forward at batch 64: 97 against 114 MiB peak, 6% less CPU time).
        num_patches = self.grid_size[0] * self.grid_size[1]
        rows, cols = self._positional_factors()
        positional = ops.reshape(
            rows[:, :, None, :, None] * cols[:, None, :, None, :],
            (self.num_heads, num_patches, num_patches),
        )
        attention = self._mixed_attention(query, key, gate, positional)[1]
        return ops.einsum("bhnm,bmhd->bnhd", ops.cast(attention, value.dtype), value)

    def _mixed_attention(self, query, key, gate, positional):
        """Content softmax(q k^T / sqrt(d)) and (1 - sigma) content + sigma P (Eq. 6), both
        float32 (batch, heads, N, N)."""
        logits = ops.einsum("bnhd,bmhd->bhnm", query, key)
        content = ops.softmax(ops.cast(logits, "float32") * self.scale, axis=-1)
        gate = ops.reshape(gate, (1, self.num_heads, 1, 1))
        return content, (1.0 - gate) * content + gate * positional[None]

    def _explicit(self, query, key, value, gate, training):
        positional = self.positional_attention()
        content, attention = self._mixed_attention(query, key, gate, positional)
        # Mathematically a no-op (a convex mix of two distributions); kept for bit-level parity.
        attention = attention / ops.sum(attention, axis=-1, keepdims=True)
        dropped = self.attention_dropout(ops.cast(attention, value.dtype), training=training)
        mixed = ops.einsum("bhnm,bmhd->bnhd", dropped, value)
        scores = {
            "attention": attention,
            "content": content,
            "positional": ops.broadcast_to(positional[None], ops.shape(content)),
        }
        return mixed, scores

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        arguments = self.arguments((*ATTENTION_ARGUMENTS, *GPSA_ARGUMENTS))
        return {**super().get_config(), **arguments}


def _axis_offsets(length):
    """(length, length) float32 offsets key - query along one axis of the grid."""
    positions = np.arange(length, dtype="float32")
    return positions[None, :] - positions[:, None]


def _resolve_grid(grid_size, num_patches):
    if grid_size is None:
        side = math.isqrt(num_patches or 0)
        if num_patches is None or side * side != num_patches:
            raise ValueError(
                f"GPSA needs a static sequence length that is a square, or an explicit "
                f"`grid_size=(height, width)`; got a sequence length of {num_patches}."
            )
        return (side, side)
    height, width = grid_size
    if height * width != num_patches:
        raise ValueError(
            f"`grid_size={tuple(grid_size)}` gives {height * width} patches but the input "
            f"sequence has {num_patches} tokens."
        )
    return (height, width)
