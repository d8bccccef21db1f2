"""DeiT's hard distillation (Touvron et al. 2021, section 5), the ConViT paper's Table 4."""

import keras
from keras import ops

from keras_convit.layers.distillation_heads import DistillationHeads
from keras_convit.models.labels import ClassifierCrossentropy


class HardDistillation(keras.Model):
    """Trains a student built with `distillation=True` from a frozen teacher's hard labels.

    The class head learns the labels, the distillation head the teacher's top class (DeiT's
    hard distillation): loss = (L(class logits, y) + CE(distillation logits, argmax teacher(x)))
    / 2, where L is the compiled loss (the recipe's, with label smoothing) and CE plain
    cross-entropy, as DeiT. Metrics, validation and `evaluate` use the student's inference:
    the average of the two heads' logits. The teacher is any Keras model of the same images
    (in [0, 255]) and classes: a CNN, as in the paper. It runs in inference mode and is never
    trained; only the student's weights are the optimizer's.

    Compile it as the student: `distiller.compile(**deit_recipe(distiller, ...))`, or with
    any optimizer, a loss on logits and metrics. After `fit`, use the student (`.student`,
    the functional ConViT, whose output is the averaged heads) for prediction and saving.

    Args:
        student: a functional ConViT with `distillation=True` and a head (`include_top`).
        teacher: a `keras.Model` mapping the student's images to (batch, classes) scores
            (logits or probabilities: only the top class is read).

    Example:
    >>> student = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
    ...                               input_shape=(16, 16, 3), classes=3, distillation=True)
    >>> teacher = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
    ...                             keras.layers.Dense(3)])
    >>> distiller = keras_convit.training.HardDistillation(student, teacher)
    >>> distiller.compile(**keras_convit.training.deit_recipe(distiller, 8, 1, epochs=1))
    >>> images, labels = np.random.uniform(0, 255, (8, 16, 16, 3)), np.arange(8) % 3
    >>> sorted(distiller.fit(images, labels, verbose=0).history)
    ['accuracy', 'loss']
    """

    def __init__(self, student, teacher, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{student.name}_distillation"), **kwargs)
        heads = _distillation_heads(student)
        _check_teacher(student, teacher, heads.classes)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.heads = heads
        # The student up to its heads: the same layers and weights, read before the average.
        self.features = keras.Model(student.input, heads.input, name=f"{student.name}_tokens")
        self.distillation_loss = ClassifierCrossentropy(from_logits=True)

    @property
    def classes(self):
        return self.heads.classes

    def call(self, images, training=False):
        """{"class", "distillation", "teacher"}: (batch, classes) logits of the two heads and
        the teacher's scores."""
        class_logits, distillation_logits = self.heads.logits(
            self.features(images, training=training)
        )
        teacher_scores = ops.stop_gradient(self.teacher(images, training=False))
        return {
            "class": class_logits,
            "distillation": distillation_logits,
            "teacher": teacher_scores,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_labels = ops.argmax(y_pred["teacher"], axis=-1)
        class_loss = self._class_loss()(y, y_pred["class"], sample_weight)
        distillation_loss = self.distillation_loss(
            teacher_labels, y_pred["distillation"], sample_weight
        )
        return (class_loss + distillation_loss) / 2

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        averaged = (y_pred["class"] + y_pred["distillation"]) / 2
        return super().compute_metrics(x, y, averaged, sample_weight)

    def _class_loss(self):
        loss = getattr(self, "loss", None)
        if loss is None or isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                "Compile HardDistillation with one loss on logits for the class head, e.g. "
                "keras_convit.models.ClassifierCrossentropy(from_logits=True); got "
                f"loss={loss!r}."
            )
        return keras.losses.get(loss)


def _distillation_heads(student):
    layers = student.layers if isinstance(student, keras.Model) else ()
    heads = next((layer for layer in layers if isinstance(layer, DistillationHeads)), None)
    if heads is None:
        raise ValueError(
            f"The student {student.name!r} has no distillation head: build it with "
            "distillation=True (and include_top=True), e.g. "
            "keras_convit.ConViTTiny(distillation=True)."
        )
    return heads


def _check_teacher(student, teacher, classes):
    if not isinstance(teacher, keras.Model):
        raise ValueError(f"The teacher must be a keras.Model, got {type(teacher).__name__}.")
    teacher_shape = tuple(teacher.input_shape[1:])
    student_shape = tuple(student.input_shape[1:])
    fits = len(teacher_shape) == len(student_shape) and all(
        side in (None, own) for side, own in zip(teacher_shape, student_shape, strict=True)
    )
    teacher_classes = teacher.output_shape[-1]
    if not fits or teacher_classes != classes:
        raise ValueError(
            f"The teacher {teacher.name!r} takes images {teacher_shape} and gives "
            f"{teacher_classes} classes; the student {student.name!r} takes {student_shape} "
            f"and has {classes}: they must see the same images and classes."
        )
