"""Keras' optimizers: the fused AdamW update under PyTorch, per-variable rules, the index of a
variable."""

import keras


def optimizer_variable_index(optimizer, variable):
    """The index of `variable` among the variables `optimizer` was built with.

    `update_step` receives the backend's variable (a `tf.Variable` on TensorFlow, not the Keras
    variable with its path), so a per-variable rule is found by the index Keras' own Adam reads
    its moments with, through the private `_get_variable_index` (3.15.1).
    """
    return optimizer._get_variable_index(variable)


# Under PyTorch, `keras.optimizers.AdamW(...)` builds Keras' multi-tensor subclass (all variables
# in one `torch._foreach_*` call per step) only when the class is exactly AdamW: the swap is a
# lookup of `cls` in `TorchOptimizer.__new__` (keras/src/backend/torch/optimizers/
# torch_optimizer.py, read at 3.15.1). A subclass, as ConViTAdamW, falls back to one update per
# variable: 4.5% of a ConViT-Ti training step on 2 CPU cores (benchmarks/README.md, profile).
# That multi-tensor update (`Adam._parallel_update_step`, torch_adam.py, 3.15.1) still makes ten
# passes over the weights and five temporaries of their size: 56 ms per step for ConViT-Ti's 5.7M
# weights on 2 CPU cores, against 3.9 ms for PyTorch's fused Adam kernel, which `FusedAdamW` runs
# through its public functional form, `torch.optim.adam.adam(fused=True)`.
def adamw_base():
    """The AdamW class to subclass: under PyTorch Keras' multi-tensor one with PyTorch's fused
    Adam kernel as its update (`FusedAdamW`), else the public one."""
    if keras.backend.backend() == "torch":
        from keras.src.backend.torch.optimizers.torch_adamw import AdamW

        return _fused_update(AdamW)
    return keras.optimizers.AdamW


def _fused_update(keras_adamw):
    import math

    import torch
    from torch.optim.adam import adam

    class FusedAdamW(keras_adamw):
        """Keras' AdamW, its Adam update made by PyTorch's fused kernel (weight decay stays
        Keras' own, applied before it). Same formula: the kernel adds epsilon after the bias
        correction, Keras before it, so it is given epsilon / sqrt(1 - beta_2^t), which makes
        its update Keras' alpha_t m / (sqrt(v) + epsilon). The step t is read on the host: one
        synchronisation per step on a GPU."""

        def _parallel_update_step(self, grads, variables, learning_rate):
            if self.amsgrad:
                return super()._parallel_update_step(grads, variables, learning_rate)
            index = self._get_variable_index
            params = [variable.value for variable in variables]
            done = int(keras.ops.convert_to_numpy(self.iterations))  # t - 1
            # `adam` counts the step on each weight's own step tensor: one each, at t - 1.
            steps = torch.full((len(params),), float(done), device=params[0].device).unbind()
            adam(
                params,
                list(grads),
                [self._momentums[index(variable)].value for variable in variables],
                [self._velocities[index(variable)].value for variable in variables],
                [],
                list(steps),
                fused=True,
                amsgrad=False,
                beta1=float(self.beta_1),
                beta2=float(self.beta_2),
                lr=keras.ops.cast(learning_rate, "float32"),
                weight_decay=0.0,
                eps=self.epsilon / math.sqrt(1 - float(self.beta_2) ** (done + 1)),
                maximize=False,
            )

    return FusedAdamW


def per_variable_updates(optimizer_class):
    """`optimizer_class` whose `update_step` sees every variable on every backend: Keras'
    multi-tensor torch optimizers bypass it (their `_backend_update_step`, 3.15.1), so under
    PyTorch the subclass goes back to the base optimizer's loop. On TensorFlow, whose
    `_backend_update_step` serves `tf.distribute`, and on JAX, the class is returned as is."""
    if keras.backend.backend() != "torch":
        return optimizer_class
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    class PerVariableUpdates(optimizer_class):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            BaseOptimizer._backend_update_step(self, grads, trainable_variables, learning_rate)

    return PerVariableUpdates
