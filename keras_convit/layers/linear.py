import keras
from keras import ops

_BACKEND = keras.backend.backend()


@keras.saving.register_keras_serializable(package="keras_convit")
class Linear(keras.layers.Dense):
    """`keras.layers.Dense`, the same weights and output, whose bias add is fused into the
    matrix product under PyTorch and whose product is taken over rows under JAX:
    (..., input_dim) -> (..., units).

    Keras' `Dense` adds its bias in a separate `add` after `matmul`, a second output-sized
    tensor per projection; `torch.nn.functional.linear` is one `addmm`, as timm's `nn.Linear`.
    Measured on ConViT-Ti, eager PyTorch, 2-core CPU, fused and unfused taking turns in one
    process: the forward pass at batch 32 4.5% less CPU time (one thread; 7% more images/s on
    two); the training step unchanged (1.00x). Its forward peak memory at batch 64 did not move
    beyond the measurement's spread (peak RSS, 308 to 455 MiB over three runs of each).

    Under JAX, (batch, N, input_dim) inputs are multiplied as (batch * N, input_dim) rows and
    reshaped back. Written on the 3-D tensor, the product's gradient makes XLA:CPU (jax
    0.10.2) copy each weight gradient's operand into a transposed (units, batch * N) layout
    before a slower product: ConViT-Ti's training step at batch 16 took 2.36-2.77 s per
    `train_on_batch` against 1.51-1.59 s over rows, forward pass unchanged, gradients within
    2e-11. TensorFlow's XLA showed no difference and keeps the 3-D product.

    A quantized layer (`quantized_call`) takes Keras' own path; on TensorFlow and JAX, XLA
    fuses the bias add already.

    Example:
    >>> layer = keras_convit.layers.Linear(4)
    >>> tuple(layer(np.ones((2, 3, 8), "float32")).shape)
    (2, 3, 4)
    """

    def call(self, inputs, training=None):
        if _BACKEND == "jax":
            return self._call_on_rows(inputs, training)
        if _BACKEND != "torch" or self.bias is None:
            return super().call(inputs, training=training)
        import torch  # only here: the torch backend is active

        inputs = ops.convert_to_tensor(inputs)
        kernel = ops.convert_to_tensor(self.kernel)
        bias = ops.convert_to_tensor(self.bias)
        if not inputs.dtype == kernel.dtype == bias.dtype:
            return super().call(inputs, training=training)
        x = torch.nn.functional.linear(inputs, kernel.T, bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def _call_on_rows(self, inputs, training):
        """`Dense.call` on (rows, input_dim): the inputs' leading axes flattened, then restored.
        Inputs whose inner axes are not static (only the first may be unknown) keep Dense's
        own call."""
        inner = tuple(inputs.shape[1:-1])
        if not inner or any(size is None for size in inner):
            return super().call(inputs, training=training)
        rows = ops.reshape(inputs, (-1, inputs.shape[-1]))
        outputs = super().call(rows, training=training)
        return ops.reshape(outputs, (-1, *inner, self.units))

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras' `Dense.quantize`: the quantized layer runs Dense's own `quantized_call`.

        `Dense.quantize` refuses subclasses (`type_check`), whose `call` it cannot know; this
        `call` computes Dense's output, so `model.quantize(mode)` quantizes it as a `Dense`."""
        super().quantize(mode, type_check=False, config=config)

    def get_config(self):
        # Keras' `Dense` takes these but leaves them out of its config (its base `Layer` keeps
        # the activity regularizer; LoRA's rank and alpha are written only once it is enabled).
        return {
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            **super().get_config(),
        }
