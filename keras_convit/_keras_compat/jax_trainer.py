"""The JAX trainer, made to leave a model usable when a step fails."""

import keras

# Keras' JAX trainer (keras/src/backend/jax/trainer.py, read at 3.15.1) moves the variables'
# values into its jitted step and sets each variable's private `_value` to None until the step
# returns ("purge", to hold one copy of the weights). `fit` puts them back in a `finally` from
# `self._jax_state`, which holds the last *finished* step: when the first step of a `fit` fails
# (a batch of the wrong size: the error is raised while tracing), that is None (the previous
# `fit` cleared it) and the values are never put back; `evaluate` and `predict` have no
# `finally` at all. Every later `predict`, `fit` or `get_weights` then raises "TypeError:
# 'NoneType' object is not callable" (the purged variable asks its spent initializer).
# TensorFlow and PyTorch keep the values in place. The guard below keeps a reference to every
# value before the call (JAX arrays are immutable: no copy) and, when the call raises, puts it
# back into each variable left empty; a variable that holds a value (a finished step's) keeps it.
_JAX_GUARDED = (
    "fit",
    "train_on_batch",
    "evaluate",
    "test_on_batch",
    "predict",
    "predict_on_batch",
)


def _trainer_variables(model):
    variables = [
        *model.trainable_variables,
        *model.non_trainable_variables,
        *model.metrics_variables,
    ]
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables.extend(optimizer.variables)
    return list({id(variable): variable for variable in variables}.values())


def _keep_variables_on_failure(method):
    import functools

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        saved = [(variable, variable._value) for variable in _trainer_variables(self)]
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            restore_purged_variables(self, saved)
            raise

    guarded._keras_convit_guard = True
    return guarded


def restore_purged_variables(model, saved):
    """Puts each of `saved` [(variable, value)] back into its variable when the JAX trainer left
    it empty (`_value` None) and the value still exists (a step that ran donated its inputs);
    returns the number restored. The trainer's pending state is dropped with it."""
    restored = 0
    for variable, value in saved:
        if variable._value is None and value is not None and not _is_deleted(value):
            variable._value = value
            restored += 1
    if restored:
        model._jax_state = None
        model._jax_state_synced = True
    return restored


def _is_deleted(value):
    is_deleted = getattr(value, "is_deleted", None)
    return bool(is_deleted()) if callable(is_deleted) else False


def guard_jax_trainer():
    """On the JAX backend, makes a failed `fit`/`train_on_batch`/`evaluate`/`predict` (and the
    `*_on_batch` forms) leave every Keras model usable (see the comment above); elsewhere, and
    when already done, nothing. Returns whether the guard is in place. Called on import."""
    if keras.backend.backend() != "jax":
        return False
    from keras.src.backend.jax.trainer import JAXTrainer

    for name in _JAX_GUARDED:
        method = getattr(JAXTrainer, name)
        if not getattr(method, "_keras_convit_guard", False):
            setattr(JAXTrainer, name, _keep_variables_on_failure(method))
    return True


guard_jax_trainer()
