"""The settings of the main job and the defaults it takes per data set."""

import dataclasses
import inspect
import math
import os

from keras_convit.data.augmentation import Augmentation
from keras_convit.job.fine_tuning import fine_tuning_defaults
from keras_convit.job.scale import scale_problem
from keras_convit.models.convit import ConViT
from keras_convit.models.default_compile import DEFAULT_LEARNING_RATE
from keras_convit.presets import BASELINES, PRESETS, canonical_name, get_preset
from keras_convit.training import recipe

# Defaults per data set; a flag overrides each, and None image sizes take the model's preset.
# The digits get a job that runs in minutes on two CPU cores; every other data set gets the
# paper's recipe. 1,295 training digits need many small steps: batch 32 and a peak rate of 2e-3.
DIGITS_DEFAULTS = {
    "model": "convit_digits",
    "epochs": 50,
    "batch_size": 32,
    "base_learning_rate": 0.032,
    "warmup_epochs": 3,
    "augmentation": "light",
}
PAPER_DEFAULTS = {
    "model": "convit_tiny",
    "epochs": recipe.EPOCHS,
    "batch_size": 128,
    "base_learning_rate": recipe.BASE_LEARNING_RATE,
    "warmup_epochs": recipe.WARMUP_EPOCHS,
    "augmentation": "deit",
}
AUGMENTATIONS = ("deit", "light", "none")

# Below this many training images a folder or TFDS set is "small" and gets `small_data_defaults`
# instead of the ImageNet recipe, whose batch of 128, linear learning-rate rule and 300 epochs
# train nothing on a few hundred images (the rate of batch 16 is 1.6e-5).
SMALL_DATA_IMAGES = 50_000
SMALL_DATA_LEARNING_RATE = DEFAULT_LEARNING_RATE  # AdamW's usual rate, the default compile's
SMALL_DATA_STEPS = 3_000
TINY_LEARNING_RATE = 5e-5  # AdamW from scratch barely moves below this (ImageNet: 5e-4)


def small_data_defaults(train_size, batch_size=None, epochs=None):
    """The defaults of a small data set of `train_size` training images (the rule
    docs/training.md states); {} at `SMALL_DATA_IMAGES` or more, where the paper's recipe applies.

    - batch size: the largest power of two at most `train_size / 8`, in [8, 128] (8 steps or
      more per epoch);
    - peak learning rate 1e-3, whatever the batch;
    - epochs: enough for about 3,000 steps, in [30, 300];
    - warm-up: a tenth of the epochs, at most the paper's 5;
    - the light augmentation (crop and MixUp): DeiT's full set needs more steps than a small
      set gives.

    Example:
    >>> defaults = keras_convit.job.small_data_defaults(400)
    >>> defaults["batch_size"], defaults["learning_rate"], defaults["epochs"]
    (32, 0.001, 250)
    >>> defaults["warmup_epochs"], defaults["augmentation"]
    (5, 'light')
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
        "learning_rate": SMALL_DATA_LEARNING_RATE,
        "epochs": epochs,
        "warmup_epochs": min(recipe.WARMUP_EPOCHS, round(epochs / 10, 1)),
        "augmentation": "light",
    }


# What `model_args` may set: the builder's arguments that the job does not set itself.
_SET_BY_THE_JOB = ("input_tensor", "input_shape", "classes", "compile", "name", "weights", "dtype")
MODEL_ARGUMENTS = tuple(
    name for name in inspect.signature(ConViT).parameters if name not in _SET_BY_THE_JOB
)


# The settings that `deit_recipe` takes as they are (the same names from flag to optimizer).
RECIPE_SETTINGS = (
    "learning_rate",
    "weight_decay",
    "warmup_epochs",
    "min_learning_rate",
    "label_smoothing",
    "clipnorm",
    "use_ema",
    "ema_momentum",
    "layer_decay",
)


class ConfigError(ValueError):
    """A setting of the main job is out of range or unknown."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of the main job; None means "the data set's default" (see `resolved`).

    Example:
    >>> config = keras_convit.job.TrainConfig(dataset="cifar10", batch_size=256).resolved()
    >>> config.model, config.image_size, config.epochs, config.learning_rate
    ('convit_tiny', 224, 300, 0.00025)
    """

    dataset: str = "digits"
    data_dir: str = None
    model: str = None
    model_args: dict = dataclasses.field(default_factory=dict)
    weights: str = None
    layer_decay: float = None
    freeze_backbone: bool = False
    baseline: str = None
    teacher: str = None
    image_size: int = None
    epochs: int = None
    batch_size: int = None
    learning_rate: float = None
    base_learning_rate: float = None
    min_learning_rate: float = recipe.MIN_LEARNING_RATE
    warmup_epochs: float = None
    weight_decay: float = recipe.WEIGHT_DECAY
    label_smoothing: float = recipe.LABEL_SMOOTHING
    drop_path_rate: float = recipe.DROP_PATH_RATE
    augmentation: str = None
    repeats: int = None
    fraction: float = 1.0
    scale_epochs: bool = True
    validation_fraction: float = 0.1
    split_seed: int = 0
    use_ema: bool = False
    ema_momentum: float = recipe.EMA_MOMENTUM
    clipnorm: float = None
    analysis_every: int = 0
    seed: int = 0
    dtype_policy: str = "float32"  # these four: keras_convit.job.scale
    remat: bool = False
    steps_per_execution: int = 1
    tensorboard: bool = False

    def resolved(self, train_size=None):
        """A copy with the data set's defaults filled in and the learning rate computed.

        `train_size`, the number of training images when known, makes a small folder or TFDS
        set take `small_data_defaults` for the settings left None. Starting from `weights`
        takes `fine_tuning_defaults` on top.
        """
        defaults = DIGITS_DEFAULTS if self.dataset == "digits" else PAPER_DEFAULTS
        if self.dataset != "digits" and train_size is not None:
            small = small_data_defaults(train_size, self.batch_size, self.epochs)
            defaults = {**defaults, **small}
        values = dataclasses.asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        if self.weights is not None:
            scratch = recipe.peak_learning_rate(
                values["batch_size"], values["learning_rate"], values["base_learning_rate"]
            )
            small = train_size is not None and train_size < SMALL_DATA_IMAGES
            steps = max(train_size // values["batch_size"], 1) if small else None
            for key, value in fine_tuning_defaults(scratch, steps, self.freeze_backbone).items():
                if getattr(self, key) is None:
                    values[key] = value
        if self.base_learning_rate is not None and self.learning_rate is None:
            values["learning_rate"] = None  # a given base rate keeps the linear scaling rule
        values["model"] = self.model_name()
        if isinstance(values["baseline"], str):
            values["baseline"] = values["baseline"].replace("-", "_")
        values["image_size"] = self.resolved_image_size()
        values["learning_rate"] = recipe.peak_learning_rate(
            values["batch_size"], values["learning_rate"], values["base_learning_rate"]
        )
        config = TrainConfig(**values)
        config.validate()
        return config

    def resolved_image_size(self):
        """`image_size`, or the input size of the model's preset: what the data is read at,
        known before the data set's size is."""
        if self.image_size is not None:
            return self.image_size
        return get_preset(self.model_name()).input_size[0]

    def model_name(self):
        """The canonical name of `model`, or of the data set's default model."""
        defaults = DIGITS_DEFAULTS if self.dataset == "digits" else PAPER_DEFAULTS
        name = self.model or defaults["model"]
        if canonical_name(name) is None:
            raise ConfigError(f"model must be one of {', '.join(PRESETS)}, got {name!r}.")
        return canonical_name(name)

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
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("drop_path_rate", 0.0 <= self.drop_path_rate < 1.0, "in [0, 1)"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
            ("repeats", self.repeats is None or self.repeats >= 1, ">= 1"),
            (
                "layer_decay",
                self.layer_decay is None or 0.0 < self.layer_decay <= 1.0,
                "None or in (0, 1]",
            ),
            ("analysis_every", self.analysis_every >= 0, ">= 0 (0: off)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}.")
        if scale_problem(self):
            raise ConfigError(scale_problem(self))
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
        if self.learning_rate < TINY_LEARNING_RATE:
            found.append(
                f"the peak learning rate {self.learning_rate:.3g} is tiny (under "
                f"{TINY_LEARNING_RATE:g}): raise --learning-rate or --base-learning-rate."
            )
        patch_size = {**get_preset(self.model).architecture, **self.model_args}["patch_size"]
        grid = self.image_size // patch_size
        if grid < 2:
            found.append(
                f"--image-size {self.image_size} with {patch_size}x{patch_size} patches gives a "
                f"{grid}x{grid} patch grid: GPSA needs at least 2x2 patches to be local; raise "
                "--image-size or choose a model with smaller patches."
            )
        if self.freeze_backbone and self.weights is None:
            found.append(
                "--freeze-backbone without --weights trains a linear probe of random features; "
                "pass --weights to probe pretrained ones."
            )
        if steps_per_epoch * self.epochs < 10:
            found.append(
                f"only {steps_per_epoch * self.epochs} training steps in all: lower "
                "--batch-size or raise --epochs."
            )
        return found

    def augmentation_settings(self):
        """The `keras_convit.data.Augmentation` of these settings (on a resolved config)."""
        overrides = {} if self.repeats is None else {"repeats": self.repeats}
        if self.augmentation == "deit":  # the mild transforms of small images evaluate whole
            overrides["crop_fraction"] = get_preset(self.model).crop_fraction
        return Augmentation.from_name(self.augmentation, **overrides)

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
        """`deit_recipe(...)` with these settings (each passed under its own name), over
        `epochs` of `steps_per_epoch`, and `steps_per_execution`:
        `compile_portably(model, **config.compile_arguments(model, n))`."""
        settings = {name: getattr(self, name) for name in RECIPE_SETTINGS}
        arguments = recipe.deit_recipe(
            model, self.batch_size, steps_per_epoch, self.epochs, **settings
        )
        return {**arguments, "steps_per_execution": self.steps_per_execution}

    @property
    def run_name(self):
        name = f"{_slug(self.dataset)}-{self.model}"
        if self.baseline:
            name += f"-{self.baseline.replace('_', '-')}"
        if self.weights:
            name += "-probe" if self.freeze_backbone else "-finetuned"
        if self.teacher:
            name += "-distilled"
        if self.fraction < 1.0:
            name += f"-f{self.fraction:g}"
        return name


def _slug(dataset):
    return os.path.basename(os.path.normpath(dataset)).replace("/", "_").replace(":", "_")
