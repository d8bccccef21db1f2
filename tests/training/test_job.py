"""The main job: run directories (never overwritten, explicit resume), the CLI, the outputs."""

import argparse
import json
import os

import numpy as np
import pytest

from keras_convit.cli import main
from keras_convit.cli.train import configure_parser
from keras_convit.job import (
    ConfigError,
    RunDirectoryError,
    TrainConfig,
    build_model,
    choose_run_directory,
    prepare_run_directory,
)


def _config(**settings):
    return TrainConfig(**settings).resolved()


def _fake_run(path, config, status, committed_epochs=1):
    os.makedirs(os.path.join(path, "checkpoint"), exist_ok=True)
    from dataclasses import asdict

    with open(os.path.join(path, "run.json"), "w") as file:
        json.dump({"status": status, "settings": asdict(config)}, file)
    if committed_epochs:
        with open(os.path.join(path, "checkpoint", "state.json"), "w") as file:
            json.dump({"epoch": committed_epochs}, file)


def test_defaults_are_the_digits_job_and_the_paper_elsewhere():
    digits = _config()
    assert (digits.dataset, digits.model, digits.image_size, digits.augmentation) == (
        "digits",
        "convit_digits",
        16,
        "light",
    )
    assert digits.learning_rate == pytest.approx(
        digits.base_learning_rate * digits.batch_size / 512
    )
    paper = _config(dataset="cifar10", model="ConViTTiny")
    assert (paper.model, paper.image_size, paper.epochs, paper.augmentation) == (
        "convit_tiny",
        224,
        300,
        "deit",
    )
    assert paper.learning_rate == pytest.approx(5e-4 * 128 / 512)
    assert paper.drop_path_rate == 0.1
    assert _config(fraction=0.1).full_length_epochs
    assert not _config(fraction=0.1, scale_epochs=False).full_length_epochs
    assert not _config().full_length_epochs
    with pytest.raises(ConfigError, match="baseline must be None or deit, in_place, got True"):
        _config(baseline=True)  # the flag's value before there were two baselines
    assert _config(baseline="in-place").baseline == "in_place"


@pytest.mark.parametrize(
    "settings, name",
    [({"fraction": 0.0}, "fraction"), ({"model": "resnet"}, "model"), ({"epochs": 0}, "epochs")],
)
def test_bad_settings(settings, name):
    with pytest.raises(ConfigError, match=name):
        _config(**settings)


def test_build_model_and_its_baselines():
    shallow = {"depth": 2, "local_up_to_layer": 1}
    model = build_model(_config(image_size=16, model_args=shallow), 10)
    deit = build_model(_config(image_size=16, baseline="deit", model_args=shallow), 10)
    in_place = build_model(_config(image_size=16, baseline="in-place", model_args=shallow), 10)
    assert type(model.get_layer("blocks_0").attn).__name__ == "GatedPositionalSelfAttention"
    for baseline in (deit, in_place):
        assert type(baseline.get_layer("blocks_0").attn).__name__ == "MultiHeadSelfAttention"
    names = [[layer.name for layer in m.layers] for m in (deit, in_place)]
    assert names[0].index("cls_token") == names[0].index("blocks_0") - 1  # DeiT's layout
    assert names[1].index("cls_token") == names[1].index("blocks_1") - 1  # still late
    assert (deit.name, in_place.name) == ("convit_digits_deit", "convit_digits_in_place")
    assert model.output_shape == deit.output_shape == in_place.output_shape == (None, 10)
    assert _config(baseline="deit").run_name == "digits-convit_digits-deit"


def test_new_and_empty_directories_start_a_run(tmp_path):
    config = _config()
    assert prepare_run_directory(config, tmp_path / "new") == (str(tmp_path / "new"), config, False)
    (tmp_path / "empty").mkdir()
    assert prepare_run_directory(config, tmp_path / "empty")[2] is False


def test_a_finished_run_is_never_overwritten(tmp_path):
    config = _config()
    _fake_run(tmp_path, config, "finished")
    with pytest.raises(RunDirectoryError, match="finished run.*--overwrite"):
        prepare_run_directory(config, tmp_path)
    with pytest.raises(RunDirectoryError, match="finished run"):
        prepare_run_directory(config, tmp_path, resume=True)
    assert prepare_run_directory(config, tmp_path, overwrite=True)[2] is False
    assert (tmp_path / "run.json").exists()  # deleted by the job once the new run can start


def test_a_directory_without_a_run_is_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(RunDirectoryError, match="holds no keras-convit run"):
            prepare_run_directory(_config(), tmp_path, **flags)
    assert (tmp_path / "notes.txt").exists()


def test_unfinished_runs_resume_with_the_same_settings_or_explicitly(tmp_path):
    config = _config()
    _fake_run(tmp_path, config, "running")
    assert prepare_run_directory(config, tmp_path) == (str(tmp_path), config, True)

    other = _config(epochs=7)
    with pytest.raises(RunDirectoryError, match="other settings \\(epochs: 50 -> 7\\).*--resume"):
        prepare_run_directory(other, tmp_path)
    # --resume takes the saved settings, changed only by the flags given.
    _, resumed, resuming = prepare_run_directory(
        _config(learning_rate=1e-4), tmp_path, resume=True, explicit=("learning_rate",)
    )
    assert resuming and resumed.learning_rate == 1e-4 and resumed.epochs == config.epochs
    with pytest.raises(RunDirectoryError, match="no run to resume"):
        prepare_run_directory(config, tmp_path / "nothing", resume=True)


def test_an_unfinished_run_without_a_committed_epoch_gives_way(tmp_path):
    _fake_run(tmp_path, _config(), "failed", committed_epochs=0)
    other = _config(epochs=7)
    assert prepare_run_directory(other, tmp_path) == (str(tmp_path), other, False)


def test_default_directories_count_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config()
    first = choose_run_directory(config)
    assert first == os.path.join("runs", "digits-convit_digits")
    _fake_run(first, config, "finished")
    assert choose_run_directory(config) == first + "-2"
    _fake_run(first + "-2", config, "running")
    assert choose_run_directory(config) == first + "-2"
    assert prepare_run_directory(config, first + "-2") == (first + "-2", config, True)


def test_cli_reports_directory_errors_without_training(tmp_path, capsys):
    _fake_run(tmp_path, _config(), "finished")
    assert main(["train", "--output-dir", str(tmp_path)]) == 2
    assert "keras-convit train: error: " in capsys.readouterr().err
    assert main(["train", "--output-dir", str(tmp_path / "x"), "--fraction", "2"]) == 2
    assert "fraction must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # a refused start leaves nothing behind
    parser = configure_parser(argparse.ArgumentParser())
    args = parser.parse_args(["--epochs", "3", "--model-args", '{"depth": 2}'])
    assert (args.epochs, args.model_args) == (3, {"depth": 2})
    assert not hasattr(args, "batch_size")  # absent flags take the data set's defaults


@pytest.mark.slow
def test_analysis_flag_logs_every_epoch_and_plots(tmp_path):
    from keras_convit.job import run_training

    args = configure_parser(argparse.ArgumentParser()).parse_args(["--analysis-every", "1"])
    assert args.analysis_every == 1
    config = TrainConfig(
        image_size=8,
        epochs=2,
        fraction=0.5,
        scale_epochs=False,
        augmentation="none",
        analysis_every=args.analysis_every,
        model_args={"hidden_dim": 16, "num_heads": 4, "depth": 2, "local_up_to_layer": 1},
    )
    run_training(config, output_dir=str(tmp_path), verbose=0)
    with open(tmp_path / "analysis.jsonl") as file:
        records = [json.loads(line) for line in file]
    assert [record["epoch"] for record in records] == [1, 2]
    for figure in ("nonlocality.png", "gating.png"):
        assert (tmp_path / figure).stat().st_size > 1000


def test_the_job_compiles_the_recipe_with_its_settings():
    config = _config(label_smoothing=0.2, weight_decay=0.01, model_args={"depth": 2,
                     "local_up_to_layer": 1})  # fmt: skip
    model = build_model(config, 10)
    arguments = config.compile_arguments(model, steps_per_epoch=40)
    assert arguments["loss"].label_smoothing == 0.2
    assert arguments["optimizer"].weight_decay == 0.01
    # The loss really smooths: a confident right answer still costs something.
    confident = np.array([[20.0] + [0.0] * 9], "float32")
    probabilities = np.array([[1.0 - 9e-7] + [1e-7] * 9], "float32")
    loss = arguments["loss"]
    value = float(loss(np.array([0]), confident if loss.from_logits else probabilities))
    assert value > 0.2
