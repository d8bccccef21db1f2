"""The settings of the main job and the defaults it takes per data set."""

import dataclasses
import inspect
import math
import os

from keras_convit.models.convit import ConViT
from keras_convit.presets import BASELINES, PRESETS, canonical_name, get_preset
from keras_convit.training import recipe

# Defaults per data set; a flag overrides each, and None image sizes take the model's preset.
# The digits get a job that runs in minutes on two CPU cores; every other data set gets the
# paper's recipe. 1,295 training digits need many small steps: batch 32 and a peak rate of 2e-3.
DIGITS_DEFAULTS = {
    "model": "convit_digits",
    "epochs": 50,
    "batch_size": 32,
    "base_lr": 0.032,
    "warmup_epochs": 3,
    "augmentation": "light",
}
PAPER_DEFAULTS = {
    "model": "convit_tiny",
    "epochs": recipe.EPOCHS,
    "batch_size": 128,
    "base_lr": recipe.BASE_LEARNING_RATE,
    "warmup_epochs": recipe.WARMUP_EPOCHS,
    "augmentation": "deit",
}
AUGMENTATIONS = ("deit", "light", "none")

# Below this many training images a folder or TFDS set is "small" and gets `small_data_defaults`
# instead of the ImageNet recipe, whose batch of 128, linear learning-rate rule and 300 epochs
# train nothing on a few hundred images (the rate of batch 16 is 1.6e-5).
SMALL_DATA_IMAGES = 50_000
SMALL_DATA_LEARNING_RATE = 1e-3  # AdamW's usual rate, the default compile's
SMALL_DATA_STEPS = 3_000
TINY_LEARNING_RATE = 5e-5  # AdamW from scratch barely moves below this (ImageNet: 5e-4)


def small_data_defaults(train_size, batch_size=None, epochs=None):
    """The defaults of a small data set of `train_size` training images (the rule the README
    states); {} at `SMALL_DATA_IMAGES` or more, where the paper's recipe applies.

    - batch size: the largest power of two at most `train_size / 8`, in [8, 128] (8 steps or
      more per epoch);
    - peak learning rate 1e-3, whatever the batch;
    - epochs: enough for about 3,000 steps, in [30, 300];
    - warm-up: a tenth of the epochs, at most the paper's 5;
    - the light augmentation (crop and MixUp): DeiT's full set needs more steps than a small
      set gives.

    Example:
    >>> keras_convit.training.small_data_defaults(400)
    {'batch_size': 32, 'lr': 0.001, 'epochs': 250, 'warmup_epochs': 5, 'augmentation': 'light'}
    """
    if train_size >= SMALL_DATA_IMAGES:
        return {}
    if batch_size is None:
        batch_size = min(128, max(8, 2 ** int(math.log2(max(train_size // 8, 1)))))
    if epochs is None:
        steps_per_epoch = max(train_size // batch_size, 1)
        epochs = min(300, max(30, math.ceil(SMALL_DATA_STEPS / steps_per_epoch)))
    return {
        "batch_size": batch_size,
        "lr": SMALL_DATA_LEARNING_RATE,
        "epochs": epochs,
        "warmup_epochs": min(recipe.WARMUP_EPOCHS, round(epochs / 10, 1)),
        "augmentation": "light",
    }


# What `model_args` may set: the builder's arguments that the job does not set itself.
MODEL_ARGUMENTS = tuple(
    name
    for name in inspect.signature(ConViT).parameters
    if name not in ("input_tensor", "input_shape", "classes", "compile", "name", "weights")
)


class ConfigError(ValueError):
    """A setting of the main job is out of range or unknown."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of the main job; None means "the data set's default" (see `resolved`).

    Example:
    >>> config = keras_convit.training.TrainConfig(dataset="cifar10", batch_size=256).resolved()
    >>> config.model, config.image_size, config.epochs, config.lr
    ('convit_tiny', 224, 300, 0.00025)
    """

    dataset: str = "digits"
    data_dir: str = None
    model: str = None
    model_args: dict = dataclasses.field(default_factory=dict)
    baseline: str = None
    teacher: str = None
    image_size: int = None
    epochs: int = None
    batch_size: int = None
    lr: float = None
    base_lr: float = None
    min_lr: float = recipe.MIN_LEARNING_RATE
    warmup_epochs: float = None
    weight_decay: float = recipe.WEIGHT_DECAY
    label_smoothing: float = recipe.LABEL_SMOOTHING
    drop_path: float = recipe.DROP_PATH_RATE
    augmentation: str = None
    repeats: int = None
    fraction: float = 1.0
    scale_epochs: bool = True
    validation_fraction: float = 0.1
    split_seed: int = 0
    use_ema: bool = False
    ema_momentum: float = recipe.EMA_MOMENTUM
    clip_norm: float = None
    analysis_every: int = 0
    seed: int = 0

    def resolved(self, train_size=None):
        """A copy with the data set's defaults filled in and the learning rate computed.

        `train_size`, the number of training images when known, makes a small folder or TFDS
        set take `small_data_defaults` for the settings left None.
        """
        defaults = DIGITS_DEFAULTS if self.dataset == "digits" else PAPER_DEFAULTS
        if self.dataset != "digits" and train_size is not None:
            small = small_data_defaults(train_size, self.batch_size, self.epochs)
            if self.base_lr is not None:
                small.pop("lr", None)  # a given --base-lr keeps the linear scaling rule
            defaults = {**defaults, **small}
        values = dataclasses.asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        values["model"] = canonical_name(values["model"]) or values["model"]
        # The flag of earlier versions: True meant the baseline, which is now DeiT's layout.
        baseline = {True: "deit", False: None}.get(values["baseline"], values["baseline"])
        values["baseline"] = str(baseline).replace("-", "_") if baseline else None
        if values["model"] not in PRESETS:
            raise ConfigError(
                f"model must be one of {', '.join(PRESETS)}, got {values['model']!r}."
            )
        if values["image_size"] is None:
            values["image_size"] = get_preset(values["model"]).input_size[0]
        if values["lr"] is None:
            values["lr"] = recipe.scaled_learning_rate(values["batch_size"], values["base_lr"])
        config = TrainConfig(**values)
        config.validate()
        return config

    def validate(self):
        """Raises `ConfigError` naming the first setting out of range (on a resolved config)."""
        checks = [
            ("model", self.model in PRESETS, f"one of {', '.join(PRESETS)}"),
            ("model_args", isinstance(self.model_args, dict), 'a JSON object, e.g. {"depth": 6}'),
            ("baseline", self.baseline in (None, *BASELINES), f"None or {', '.join(BASELINES)}"),
            (
                "baseline",
                not (self.baseline and self.model in PRESETS and PRESETS[self.model].baseline_of),
                f"None for {self.model}, a baseline already",
            ),
            (
                "teacher",
                self.teacher is None or os.path.isfile(self.teacher),
                "an existing .keras file",
            ),
            ("augmentation", self.augmentation in AUGMENTATIONS, " or ".join(AUGMENTATIONS)),
            ("fraction", 0.0 < self.fraction <= 1.0, "in (0, 1]"),
            ("validation_fraction", 0.0 <= self.validation_fraction < 1.0, "in [0, 1)"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("image_size", self.image_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("drop_path", 0.0 <= self.drop_path < 1.0, "in [0, 1)"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
            ("repeats", self.repeats is None or self.repeats >= 1, ">= 1"),
            ("analysis_every", self.analysis_every >= 0, ">= 0 (0: off)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}.")
        unknown = sorted(set(self.model_args) - set(MODEL_ARGUMENTS))
        if unknown:
            raise ConfigError(
                f"model_args has unknown keras_convit.ConViT arguments {unknown}; known: "
                f"{', '.join(MODEL_ARGUMENTS)}."
            )

    def warnings(self, steps_per_epoch):
        """Settings that will likely train nothing, one sentence each (on a resolved config)."""
        found = []
        if self.warmup_epochs >= self.epochs:
            found.append(
                f"the warm-up ({self.warmup_epochs:g} epochs) is at least the run "
                f"({self.epochs} epochs): the learning rate never reaches its peak; "
                "lower --warmup-epochs or raise --epochs."
            )
        if self.lr < TINY_LEARNING_RATE:
            found.append(
                f"the peak learning rate {self.lr:.3g} is tiny (under {TINY_LEARNING_RATE:g}): "
                "raise --lr or --base-lr."
            )
        patch_size = {**get_preset(self.model).architecture, **self.model_args}["patch_size"]
        grid = self.image_size // patch_size
        if grid < 2:
            found.append(
                f"--image-size {self.image_size} with {patch_size}x{patch_size} patches gives a "
                f"{grid}x{grid} patch grid: GPSA needs at least 2x2 patches to be local; raise "
                "--image-size or choose a model with smaller patches."
            )
        if steps_per_epoch * self.epochs < 10:
            found.append(
                f"only {steps_per_epoch * self.epochs} training steps in all: lower "
                "--batch-size or raise --epochs."
            )
        return found

    @property
    def full_length_epochs(self):
        """Whether an epoch is as long as one over the whole training set (the paper's
        protocol, `scale_epochs` with `fraction` < 1; see `load_dataset(full_length_epochs)`).

        The run then sees as many images as at fraction 1 (`epochs / fraction` passes over the
        subset), validates and checkpoints `epochs` times, and its warm-up of `warmup_epochs`
        spans the same steps as at fraction 1. Otherwise an epoch is one pass over the subset.
        """
        return self.scale_epochs and self.fraction < 1.0

    def compile_arguments(self, model, steps_per_epoch):
        """`deit_recipe(...)` with these settings, over `epochs` of `steps_per_epoch`:
        `model.compile(**config.compile_arguments(model, steps_per_epoch))`."""
        return recipe.deit_recipe(
            model,
            self.batch_size,
            steps_per_epoch,
            self.epochs,
            learning_rate=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            min_learning_rate=self.min_lr,
            label_smoothing=self.label_smoothing,
            clipnorm=self.clip_norm,
            use_ema=self.use_ema,
            ema_momentum=self.ema_momentum,
        )

    @property
    def run_name(self):
        name = f"{_slug(self.dataset)}-{self.model}"
        if self.baseline:
            name += f"-{self.baseline.replace('_', '-')}"
        if self.teacher:
            name += "-distilled"
        if self.fraction < 1.0:
            name += f"-f{self.fraction:g}"
        return name


def _slug(dataset):
    return os.path.basename(os.path.normpath(dataset)).replace("/", "_").replace(":", "_")
