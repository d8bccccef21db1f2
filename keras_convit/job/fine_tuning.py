"""Fine-tuning in the main job: the weights a run starts from (`--weights`) and the recipe that
starting from weights selects.

The recipe (every flag still overrides it), from the fine-tuning practice of DeiT and timm:
- the peak learning rate is a tenth of the rate the same data would get from scratch
  (`FINE_TUNING_RATE_FACTOR`): 5e-5 per 512 images on a large set, 1e-4 on a small one; a
  linear probe (`--freeze-backbone`) keeps the from-scratch rate, as its head is all new. DeiT
  fine-tunes at a new resolution with 5e-6 per 512 for 30 epochs; BEiT and MAE fine-tune with
  1e-3 per 512 under a layer-wise decay of 0.65 to 0.75 (`--layer-decay`);
- fewer epochs: 30 on a large set (DeiT's fine-tuning length), about `FINE_TUNING_STEPS` steps
  on a small one, in [10, 100];
- a short warm-up of one epoch (from scratch: 5);
- the augmentation, weight decay, label smoothing and drop path of the data set's recipe (the
  light augmentation on a small set, DeiT's on a large one).
"""

import contextlib
import dataclasses
import inspect
import math
import os
import tempfile
import zipfile

from keras_convit.models.convit import ConViT
from keras_convit.presets import PRESETS
from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.imagenet import file_sha256
from keras_convit.weights.loading import read_state_dict

IMAGENET = "imagenet"
RUN_MODEL_FILE = "model.keras"  # what a finished run directory holds (keras_convit.job.run)
FINE_TUNING_RATE_FACTOR = 0.1
FINE_TUNING_EPOCHS = 30
FINE_TUNING_STEPS = 1_000
FINE_TUNING_WARMUP_EPOCHS = 1
# The ConViT arguments a weight file decides; `model_args` of the run when no preset has them.
ARCHITECTURE_ARGUMENTS = (
    "hidden_dim",
    "num_heads",
    "depth",
    "local_up_to_layer",
    "patch_size",
    "mlp_ratio",
    "qkv_bias",
    "use_gpsa",
    "use_pos_embed",
)
_BUILDER_DEFAULTS = {
    name: parameter.default for name, parameter in inspect.signature(ConViT).parameters.items()
}


class WeightsSourceError(ValueError):
    """`--weights` names nothing a run can start from."""


@dataclasses.dataclass(frozen=True)
class SourceWeights:
    """The weights a run starts from, read once before it starts.

    Fields: `given` (as the user wrote it), `path` (absolute: the weight file or `.keras`
    model; "imagenet" as is), `sha256` (of that file; None for "imagenet", whose download is
    checked by `keras_convit.weights`), `architecture` (the `ConViT` arguments the file holds;
    None for "imagenet").
    """

    given: str
    path: str
    sha256: str = None
    architecture: dict = None

    def record(self):
        """What `run.json` keeps of it."""
        return {"weights": self.given, "path": self.path, "sha256": self.sha256}


def read_source_weights(given):
    """The `SourceWeights` of `--weights given`: "imagenet", a weight file (`.weights.h5`,
    `.safetensors`, `.pth`, `.bin`), a `.keras` model, or a run directory (its model.keras).

    Raises:
        WeightsSourceError: nothing there, or not ConViT weights (one line, naming the path).
    """
    if given == IMAGENET:
        return SourceWeights(given, IMAGENET)
    path = os.path.abspath(given)
    if os.path.isdir(path):
        path = os.path.join(path, RUN_MODEL_FILE)
        if not os.path.isfile(path):
            raise WeightsSourceError(
                f"--weights {given}: the directory holds no {RUN_MODEL_FILE} (only a finished "
                "run does); pass a finished run's directory or a weight file."
            )
    elif not os.path.isfile(path):
        raise WeightsSourceError(f"--weights {given}: no such file or directory.")
    try:
        with weight_file(path) as file:
            state_dict, grid = read_state_dict(file)
        architecture = infer_architecture(
            {key: value.shape for key, value in state_dict.items()}, grid_size=grid
        )
    except (OSError, ValueError, KeyError) as error:
        raise WeightsSourceError(f"--weights {given}: {error}") from error
    return SourceWeights(given, path, file_sha256(path), architecture)


@contextlib.contextmanager
def weight_file(path):
    """`path` as a file `keras_convit.weights` reads: a `.keras` model's weights are taken out
    of its archive into a temporary file, removed on exit."""
    if not zipfile.is_zipfile(path) or path.endswith((".safetensors", ".pth", ".bin")):
        yield path
        return
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
        if "model.weights.h5" not in archive.namelist():
            raise ValueError(f"{path} is a zip archive, not a .keras model (no model.weights.h5)")
        extracted = archive.extract("model.weights.h5", folder)
        try:
            yield extracted
        except ValueError as error:  # name the user's file, not the temporary one
            raise ValueError(str(error).replace(extracted, path)) from error


def model_of_weights(architecture, default_model):
    """(preset name, `model_args`) that rebuild `architecture`: the first preset that has it,
    else `default_model` with the file's architecture as `model_args`.

    Example:
    >>> architecture = dict(keras_convit.PRESETS["convit_digits"].architecture)
    >>> model_of_weights(architecture, "convit_tiny")
    ('convit_digits', {})
    >>> name, model_args = model_of_weights({**architecture, "depth": 2}, "convit_tiny")
    >>> name, model_args["hidden_dim"], model_args["depth"]
    ('convit_tiny', 64, 2)
    """
    wanted = _full_architecture(architecture)
    for name, preset in PRESETS.items():
        if _full_architecture(preset.architecture) == wanted:
            return name, {}
    return default_model, wanted


def with_model_of_weights(config, weights):
    """`config` (a `TrainConfig`) with the model `weights` (`SourceWeights`) hold when it names
    none (nor `model_args`): their preset, or the default model with their architecture, and
    then by default the image size they were trained at."""
    if weights.architecture is None or config.model is not None or config.model_args:
        return config
    name, model_args = model_of_weights(weights.architecture, config.model_name())
    image_size = config.image_size
    height, width, _ = weights.architecture["input_shape"]
    if model_args and image_size is None and height == width:
        image_size = height
    return dataclasses.replace(config, model=name, model_args=model_args, image_size=image_size)


def _full_architecture(arguments):
    return {name: arguments.get(name, _BUILDER_DEFAULTS[name]) for name in ARCHITECTURE_ARGUMENTS}


def fine_tuning_defaults(scratch_learning_rate, steps_per_epoch=None, linear_probe=False):
    """The settings that starting from weights changes (see the module's docstring).

    Args:
        scratch_learning_rate: the peak rate the same data set would get from scratch.
        steps_per_epoch: for a small data set only: the epochs then follow `FINE_TUNING_STEPS`.
        linear_probe: only the head trains: at `scratch_learning_rate`.

    Example:
    >>> keras_convit.job.fine_tuning_defaults(1e-3, steps_per_epoch=12)
    {'learning_rate': 0.0001, 'warmup_epochs': 1, 'epochs': 84}
    """
    settings = {
        "learning_rate": scratch_learning_rate * (1.0 if linear_probe else FINE_TUNING_RATE_FACTOR),
        "warmup_epochs": FINE_TUNING_WARMUP_EPOCHS,
        "epochs": FINE_TUNING_EPOCHS,
    }
    if steps_per_epoch:
        settings["epochs"] = min(100, max(10, math.ceil(FINE_TUNING_STEPS / steps_per_epoch)))
    return settings
