"""Scanning folder data sets (`scan_folder`) on real files: good, broken, cached, fingerprinted."""

import io
import os

import numpy as np
import pytest

from keras_convit.data import (
    default_cache_path,
    digits_source,
    folder_source,
    load_dataset,
    scan_folder,
)
from keras_convit.data import scan as scan_module

tf = pytest.importorskip("tensorflow")
Image = pytest.importorskip("PIL.Image")


def _save(path, mode="RGB", size=(12, 10), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype="uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.fixture
def messy(tmp_path):
    """3 classes: 12 good images (grey, RGBA and palette among them), 5 that cannot decode, a
    text file. Returns (root, names of the bad files)."""
    root = tmp_path / "messy"
    for index in range(3):
        _save(root / "ant" / f"{index}.jpg", seed=index)
        _save(root / "bee" / f"{index}.png", seed=10 + index)
        _save(root / "cat" / f"{index}.jpeg", seed=20 + index)
    _save(root / "ant" / "grey.png", mode="L")
    _save(root / "bee" / "rgba.png", mode="RGBA")
    _save(root / "bee" / "palette.png", mode="P")
    (root / "bee" / "garbage.jpg").write_bytes(os.urandom(600))
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 40, 3), "uint8")).save(
        buffer, "PNG"
    )
    (root / "cat" / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    jpeg = (root / "ant" / "0.jpg").read_bytes()
    (root / "ant" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    _save(root / "cat" / "one_bit.bmp", mode="1")  # PIL reads it; TensorFlow's decoder cannot
    os.symlink(root / "nowhere.png", root / "cat" / "dangling.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    bad = {"bee/garbage.jpg", "cat/cut.png", "ant/cut.jpg", "cat/one_bit.bmp", "cat/dangling.png"}
    return root, bad


def _relative(report, paths):
    return {os.path.relpath(path, report.root) for path in paths}


def test_scan_reports_the_files_that_do_not_decode(messy):
    root, bad = messy
    report = scan_folder(root)
    reasons = {os.path.relpath(path, root): reason for path, reason in report.unreadable}
    assert set(reasons) == bad
    assert "Unknown image file format" in reasons["bee/garbage.jpg"]
    assert "Invalid PNG data" in reasons["cat/cut.png"]
    assert "Invalid JPEG data" in reasons["ant/cut.jpg"]
    assert "channels" in reasons["cat/one_bit.bmp"]
    assert "FileNotFoundError" in reasons["cat/dangling.png"]
    assert report.class_names == ("ant", "bee", "cat")
    assert list(report.files) == ["train"] and report.test_folder is None
    kept = {name: _relative(report, paths) for name, paths in report.files["train"].items()}
    assert kept["ant"] == {"ant/0.jpg", "ant/1.jpg", "ant/2.jpg", "ant/grey.png"}
    assert {"bee/rgba.png", "bee/palette.png"} <= kept["bee"] and len(kept["bee"]) == 5
    assert len(kept["cat"]) == 3
    assert report.num_images == 12 and report.skipped == 1  # notes.txt
    assert "5 unreadable" in report.summary() and "cat/cut.png" in report.summary()


def test_folder_pipelines_run_to_the_end_without_the_bad_files(messy):
    root, bad = messy
    with pytest.warns(UserWarning, match="5 image files .* do not decode"):
        data = load_dataset(
            str(root), image_size=16, batch_size=2, augmentation="none", validation_fraction=0.3
        )
    assert data.validation is not None
    for pipeline in (data.train, data.validation, data.test):
        for images, labels in pipeline:
            assert images.shape[1:] == (16, 16, 3) and labels.shape[1:] == (3,)
    assert data.train_size + data.validation_size + data.test_size == 12
    with pytest.warns(UserWarning):
        source = folder_source(str(root))
    assert set(os.path.relpath(path, root) for path, _ in source.scan.unreadable) == bad
    assert sum(1 for _ in source.make("train")) + sum(1 for _ in source.make("test")) == 12
    assert digits_source().scan is None


def test_a_second_scan_of_an_unchanged_folder_decodes_nothing(messy):
    root, _ = messy
    first = scan_folder(root)
    assert first.decoded == 16  # every file with an image extension, less the dangling link
    assert first.cache_path == str(root / ".keras_convit_scan.json")
    assert os.path.isfile(first.cache_path)
    second = scan_folder(root)
    assert second.decoded == 0
    assert (second.files, second.unreadable, second.skipped, second.fingerprint) == (
        first.files,
        first.unreadable,
        first.skipped,
        first.fingerprint,
    )
    _save(root / "ant" / "1.jpg", seed=99, size=(14, 9))  # changed: decoded again, alone
    assert scan_folder(root).decoded == 1
    assert scan_folder(root, cache=False).decoded == 16


def test_an_unwritable_root_caches_under_the_keras_home(messy, tmp_path, monkeypatch):
    root, _ = messy
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    real_access = os.access
    monkeypatch.setattr(
        scan_module.os, "access", lambda path, mode: path != str(root) and real_access(path, mode)
    )
    path = default_cache_path(str(root))
    assert path.startswith(str(tmp_path / "keras_home" / "keras_convit" / "scans"))
    assert scan_folder(str(root)).cache_path == path and os.path.isfile(path)
    assert scan_folder(str(root)).decoded == 0
    assert not (root / ".keras_convit_scan.json").exists()


def test_the_fingerprint_follows_the_kept_files(messy):
    root, _ = messy
    original = scan_folder(root).fingerprint
    assert scan_folder(root, cache=False).fingerprint == original
    (root / "cat" / "more notes.txt").write_text("still not an image")
    (root / "cat" / "also_garbage.png").write_bytes(b"\x89PNG nothing more")
    assert scan_folder(root).fingerprint == original  # nothing that training reads changed
    added = _save(root / "cat" / "new.jpg", seed=7)
    with_new = scan_folder(root).fingerprint
    assert with_new != original
    added.unlink()
    assert scan_folder(root).fingerprint == original
    changed = root / "bee" / "0.png"
    _save(changed, seed=8)
    os.utime(changed, ns=(1, 1_000_000_000))  # a new mtime even where the clock is coarse
    assert scan_folder(root).fingerprint not in (original, with_new)


def test_train_and_test_folders(tmp_path):
    for split in ("train", "val"):
        for name in ("a", "b"):
            _save(tmp_path / split / name / "0.png")
    (tmp_path / "val" / "b" / "1.png").write_bytes(b"garbage")
    report = scan_folder(tmp_path, progress=False)
    assert report.test_folder == "val" and list(report.files) == ["train", "test"]
    assert [len(paths) for paths in report.files["test"].values()] == [1, 1]
    assert _relative(report, [path for path, _ in report.unreadable]) == {"val/b/1.png"}


def test_the_progress_bar_shows_when_asked(tmp_path, capsys):
    for name in ("a", "b"):
        _save(tmp_path / name / "0.png")
    scan_folder(tmp_path, cache=False, progress=True)
    assert "2/2" in capsys.readouterr().out
    scan_folder(tmp_path, cache=False)  # stdout is not a terminal here
    assert capsys.readouterr().out == ""


def test_invalid_arguments(tmp_path):
    _save(tmp_path / "a" / "0.png")
    with pytest.raises(ValueError, match="workers=0"):
        scan_folder(tmp_path, workers=0)
    with pytest.raises(ValueError, match="progress='yes'"):
        scan_folder(tmp_path, progress="yes")
    with pytest.raises(ValueError, match="cache=3"):
        scan_folder(tmp_path, cache=3)
    other = scan_folder(tmp_path)
    with pytest.raises(ValueError, match="scan is a report of"):
        folder_source(str(tmp_path / "a"), scan=other)
