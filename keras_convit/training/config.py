"""The settings of the main job and the defaults it takes per data set."""

import dataclasses
import os

from keras_convit.data.subsampling import scaled_epochs
from keras_convit.presets import PRESETS, canonical_name, get_preset
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
    baseline: bool = False
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
    use_ema: bool = False
    ema_momentum: float = recipe.EMA_MOMENTUM
    clip_norm: float = None
    analysis_every: int = 0
    seed: int = 0

    def resolved(self):
        """A copy with the data set's defaults filled in and the learning rate computed."""
        defaults = DIGITS_DEFAULTS if self.dataset == "digits" else PAPER_DEFAULTS
        values = dataclasses.asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        values["model"] = canonical_name(values["model"]) or values["model"]
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

    @property
    def total_epochs(self):
        """`epochs`, scaled by 1 / fraction when `scale_epochs` (the paper's protocol)."""
        if self.scale_epochs and self.fraction < 1.0:
            return scaled_epochs(self.epochs, self.fraction)
        return self.epochs

    def compile_arguments(self, model, steps_per_epoch):
        """`deit_recipe(...)` with these settings, over `total_epochs` of `steps_per_epoch`:
        `model.compile(**config.compile_arguments(model, steps_per_epoch))`."""
        return recipe.deit_recipe(
            model,
            self.batch_size,
            steps_per_epoch,
            self.total_epochs,
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
            name += "-deit"
        if self.fraction < 1.0:
            name += f"-f{self.fraction:g}"
        return name


def _slug(dataset):
    return os.path.basename(os.path.normpath(dataset)).replace("/", "_").replace(":", "_")
