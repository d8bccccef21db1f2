"""Keras' PyTorch train step, with its forward pass through a DDP module."""

import keras


def forward_through(model, module):
    """Makes `model.fit` (PyTorch) run its forward pass through `module`, a
    `torch.nn.parallel.DistributedDataParallel` of `model`, so that DDP averages the gradients
    in `backward()`: it averages only what went through its own forward.

    Keras' PyTorch `train_step` (3.15.1) calls `self(x)`; there is no public hook for the
    forward pass, so this sets `model.train_step` to that step with the one call changed. It
    reads what Keras' step reads: `_call_has_training_arg`, `_compute_loss`, `_loss_tracker`.
    """
    import torch

    def train_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = module(x, training=True) if model._call_has_training_arg else module(x)
        model.zero_grad()
        loss = model._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        batch = next(value for value in keras.tree.flatten(x) if value is not None).shape[0]
        model._loss_tracker.update_state(loss, sample_weight=batch)
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
        if model.trainable_weights:
            loss.backward()
            variables = model.trainable_weights[:]
            with torch.no_grad():
                model.optimizer.apply([v.value.grad for v in variables], variables)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    model.train_step = train_step
    model.train_function = None  # built from `train_step` at the next `fit`
