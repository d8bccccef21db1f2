"""Every user error of `keras-convit` is one line with exit status 2, and leaves nothing that
blocks the corrected command."""

import json

import pytest
from PIL import Image

from keras_convit.cli import main

TINY = json.dumps({"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1})


@pytest.fixture
def places(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("not a run")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "unreadable" / "cat").mkdir(parents=True)
    (tmp_path / "unreadable" / "cat" / "0.jpg").write_bytes(b"not a JPEG")
    for name in ("ant", "bee"):  # 8x8 PNGs, over a --max-image-pixels of 63
        (tmp_path / "small" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "small" / name / "0.png")
    return tmp_path


BAD = [
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--fraction", "2"], "fraction must be in (0, 1]"),
    (["--model", "resnet50"], "model must be one of"),
    (["--lr", "-1"], "learning_rate must be > 0"),
    (["--warmup-epochs", "-1"], "warmup_epochs must be >= 0"),
    (["--drop-path", "1.5"], "drop_path_rate must be in [0, 1)"),
    (["--label-smoothing", "1"], "label_smoothing must be in [0, 1)"),
    (["--validation-fraction", "1"], "validation_fraction must be in [0, 1)"),
    (["--repeats", "0"], "repeats must be >= 1"),
    (["--model-args", '{"nonsense": 1}'], "unknown keras_convit.ConViT arguments ['nonsense']"),
    (["--model-args", "[1]"], "model_args must be a JSON object"),
    (["--model-args", '{"depth": 2, "local_up_to_layer": 3}'], "local_up_to_layer"),
    (["--model-args", '{"hidden_dim": 30}'], "num_heads` must divide `hidden_dim`"),
    (["--image-size", "30"], "multiples of patch_size=4"),
    (["--batch-size", "5000"], "Only 1295 training images"),
    (["--dataset", "{tmp}/missing/folder"], "No folder at"),
    (["--dataset", "{tmp}/empty"], "has no class sub-folders"),
    (["--dataset", "{tmp}/unreadable"], "1 unreadable"),
    (["--dataset", "{tmp}/small", "--max-image-pixels", "63"], "over the limit of 63"),
    (["--max-image-pixels", "many"], "argument --max-image-pixels: expected a positive number"),
    (["--resume"], "--resume and --overwrite need an explicit --output-dir"),
    (["--resume", "--output-dir", "{tmp}/empty"], "no run to resume"),
    (["--output-dir", "{tmp}/notes"], "holds no keras-convit run"),
    (["--output-dir", "{tmp}/a_file"], "File exists"),
    (["--model-args", "not json"], "argument --model-args: invalid loads value"),
    (["--augmentation", "heavy"], "argument --augmentation: invalid choice"),
    (["--verbose", "5"], "argument --verbose: invalid choice"),
    (["--epoch", "3"], "unrecognized arguments: --epoch 3"),
    (["--baseline", "resnet"], "argument --baseline: invalid choice"),
    (["--model", "convit_digits_deit", "--baseline"], "baseline must be None for"),
    (["--teacher", "{tmp}/missing.keras"], "teacher must be an existing .keras file"),
    (["--teacher", "{tmp}/a_file"], "Cannot load the teacher"),
    (["--dtype-policy", "float16"], "dtype_policy must be float32, mixed_bfloat16 or mixed_float"),
    (["--steps-per-execution", "0"], "steps_per_execution must be >= 1, got 0"),
    (["--model-args", '{"dtype": "float16"}'], "model_args cannot set dtype: use --dtype-policy"),
]


@pytest.mark.parametrize("flags, expected", BAD, ids=[" ".join(flags) for flags, _ in BAD])
def test_a_bad_invocation_is_one_line_and_blocks_nothing(places, flags, expected, capsys):
    flags = [flag.replace("{tmp}", str(places)) for flag in flags]
    output_dir = places / "run"
    with_dir = [] if "--output-dir" in flags or "--resume" in flags[:1] else [
        "--output-dir", str(output_dir)
    ]  # fmt: skip
    try:
        status = main(["train", *flags, *with_dir])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(error) == 1 and error[0].startswith("keras-convit train: error: "), error
    assert expected in error[0]
    assert not output_dir.exists()  # nothing written: the corrected command starts cleanly
    assert sorted(p.name for p in (places / "notes").iterdir()) == ["mine.txt"]


def test_debug_shows_the_traceback(places):
    with pytest.raises(ValueError, match="multiples of patch_size"):
        main(["train", "--debug", "--image-size", "30", "--output-dir", str(places / "run")])


def test_convert_errors_are_one_line_too(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["convert", str(tmp_path / "notes.txt"), str(tmp_path / "out.weights.h5")]) == 2
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.weights.h5")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(
        line.startswith("keras-convit convert: error: ") for line in lines
    )
