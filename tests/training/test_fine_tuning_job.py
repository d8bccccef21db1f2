"""Fine-tuning in the main job: `--weights` (a run directory, a weight file), the recipe it
selects, `--freeze-backbone` and `--layer-decay`, and what run.json records."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest

from keras_convit.cli import main
from keras_convit.job import TrainConfig, run_training
from keras_convit.job.fine_tuning import FINE_TUNING_EPOCHS, FINE_TUNING_RATE_FACTOR
from keras_convit.training import LayerDecayAdamW

# A tiny model on the 8x8 digits: one GPSA block and one attention block.
TINY = {"hidden_dim": 16, "num_heads": 4, "depth": 2, "local_up_to_layer": 1, "patch_size": 4}
TINY_FLAGS = ["--model-args", json.dumps(TINY), "--image-size", "8", "--epochs", "1"]
TINY_FLAGS += ["--fraction", "0.3", "--no-scale-epochs", "--augmentation", "none"]
TINY_FLAGS += ["--verbose", "0"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A finished tiny run on the digits: what later runs start from."""
    path = str(tmp_path_factory.mktemp("pretrained"))
    config = TrainConfig(
        image_size=8, epochs=1, fraction=0.3, scale_epochs=False, augmentation="none",
        model_args=TINY,
    )  # fmt: skip
    run_training(config, output_dir=path, verbose=0)
    return path


def test_a_finished_run_is_a_preset_with_its_metrics_on_the_card(pretrained):
    from keras_convit import from_preset

    with open(os.path.join(pretrained, "metrics.json")) as file:
        accuracy = json.load(file)["test_accuracy"]
    with open(os.path.join(pretrained, "preset", "README.md")) as file:
        assert f"| test_accuracy | {accuracy:.4f} |" in file.read()
    model = keras.saving.load_model(os.path.join(pretrained, "model.keras"))
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        from_preset(os.path.join(pretrained, "preset")).predict(images, verbose=0),
        model.predict(images, verbose=0),
        atol=1e-6,
    )


def _weights(path):
    model = keras.saving.load_model(os.path.join(path, "model.keras"), compile=False)
    return {v.path: np.asarray(v) for v in model.weights}


def test_the_recipe_of_a_start_from_weights():
    scratch = TrainConfig(dataset="cifar10").resolved()
    tuned = TrainConfig(dataset="cifar10", weights="imagenet").resolved()
    assert tuned.learning_rate == pytest.approx(scratch.learning_rate * FINE_TUNING_RATE_FACTOR)
    assert (tuned.epochs, tuned.warmup_epochs) == (FINE_TUNING_EPOCHS, 1)
    assert tuned.augmentation == scratch.augmentation == "deit"
    # A small set: about 1,000 steps, a tenth of its from-scratch rate of 1e-3.
    small = TrainConfig(dataset="photos", weights="imagenet").resolved(train_size=400)
    assert (small.learning_rate, small.batch_size, small.epochs) == (pytest.approx(1e-4), 32, 84)
    probe = TrainConfig(dataset="photos", weights="x", freeze_backbone=True)
    assert probe.resolved(train_size=400).learning_rate == pytest.approx(1e-3)
    # Every flag still overrides it; a base rate keeps the linear scaling rule.
    given = TrainConfig(dataset="cifar10", weights="imagenet", epochs=3, learning_rate=0.01)
    assert (given.resolved().epochs, given.resolved().learning_rate) == (3, 0.01)
    based = TrainConfig(dataset="cifar10", weights="imagenet", base_learning_rate=1e-3)
    assert based.resolved().learning_rate == pytest.approx(1e-3 * 128 / 512)
    assert tuned.run_name.endswith("-finetuned")


def test_a_linear_probe_trains_the_head_only_and_records_its_source(pretrained, tmp_path):
    output = str(tmp_path / "probe")
    status = main(["train", "--weights", pretrained, "--freeze-backbone", "--output-dir", output]
                  + TINY_FLAGS)  # fmt: skip
    assert status == 0
    before, after = _weights(pretrained), _weights(output)
    assert before.keys() == after.keys()
    for path, value in before.items():
        if path.startswith("head/"):
            assert not np.allclose(value, after[path]), path
        else:
            np.testing.assert_array_equal(value, after[path], err_msg=path)
    with open(os.path.join(output, "run.json")) as file:
        record = json.load(file)
    model_file = os.path.join(pretrained, "model.keras")
    with open(model_file, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    assert record["source_weights"] == {
        "weights": pretrained,
        "path": os.path.abspath(model_file),
        "sha256": digest,
    }
    assert record["settings"]["learning_rate"] == pytest.approx(
        TrainConfig(model_args=TINY).resolved().learning_rate  # a probe: the scratch rate
    )


def test_layer_decay_from_a_weight_file_keeps_its_optimizer(pretrained, tmp_path):
    weights = os.path.join(pretrained, "best.weights.h5")
    output = str(tmp_path / "decayed")
    status = main(["train", "--weights", weights, "--layer-decay", "0.5", "--output-dir", output]
                  + TINY_FLAGS)  # fmt: skip
    assert status == 0
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert isinstance(model.optimizer, LayerDecayAdamW)
    assert (model.optimizer.layer_decay, model.optimizer.depth) == (0.5, 2)
    changed = {
        p for p, v in _weights(pretrained).items() if not np.allclose(v, _weights(output)[p])
    }
    assert "patch_embed/proj/kernel" in changed and "head/kernel" in changed


@pytest.mark.parametrize(
    "weights, message",
    [
        ("missing.safetensors", "no such file or directory"),
        (".", "holds no model.keras"),
    ],
)
def test_weights_that_are_not_there_are_one_line(weights, message, tmp_path, capsys):
    status = main(["train", "--weights", weights, "--output-dir", str(tmp_path / "x")])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not os.path.exists(tmp_path / "x")


def test_weights_of_another_width_are_one_line_naming_the_first_mismatches(
    pretrained, tmp_path, capsys
):
    wider = json.dumps({**TINY, "hidden_dim": 32})
    output = tmp_path / "wider"
    flags = ["--weights", pretrained, "--output-dir", str(output), "--image-size", "8"]
    assert main(["train", *flags, "--model-args", wider]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert os.path.join(pretrained, "model.keras") in error  # the user's file, not a temporary
    assert "patch_embed.proj.weight: file (16, 3, 4, 4) vs model (32, 3, 4, 4)" in error
    assert "more" in error and not output.exists()
