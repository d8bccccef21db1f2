import json

import numpy as np
import pytest
from analysis_helpers import build

from keras_convit import analysis

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 2000


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real two-epoch fit with three loggers: every epoch, every 2 epochs, and with the
    initial state (one fit for the module: it is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    model = build()
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 5, 16)
    loggers = [
        analysis.AnalysisLogger(tmp_path, images[:3]),
        analysis.AnalysisLogger(tmp_path, images[:3], every=2, filename="every2.jsonl"),
        analysis.AnalysisLogger(tmp_path / "nested", images[:3], log_initial=True),
    ]
    model.fit(images, labels, epochs=2, batch_size=8, callbacks=loggers, verbose=0)
    return model, images, tmp_path


def test_one_record_per_epoch(trained_run):
    model, images, run_dir = trained_run
    records = read_lines(run_dir / "analysis.jsonl")
    assert [record["epoch"] for record in records] == [1, 2]
    last = records[-1]
    assert last["layers"] == ["blocks_0", "blocks_1", "blocks_2"]
    assert last["gpsa_layers"] == ["blocks_0", "blocks_1"]
    assert np.array(last["nonlocality"]).shape == (3, 4)
    assert np.array(last["gating"]).shape == (2, 4)
    assert np.array(last["centers"]).shape == (2, 4, 2)
    assert np.array(last["spans"]).shape == (2, 4)
    assert {"loss", "accuracy"} <= set(last["logs"])
    # The record is the trained model's state at the end of the epoch.
    np.testing.assert_allclose(last["gating"], analysis.gating(model), rtol=1e-4)
    np.testing.assert_allclose(
        last["nonlocality"], analysis.nonlocality(model, images[:3]), rtol=1e-4, atol=1e-5
    )
    assert [r["epoch"] for r in read_lines(run_dir / "every2.jsonl")] == [2]
    initial = read_lines(run_dir / "nested" / "analysis.jsonl")
    assert [record["epoch"] for record in initial] == [0, 1, 2]
    np.testing.assert_allclose(initial[0]["gating"], 0.7311, atol=1e-4)


def test_plots_from_the_log(trained_run):
    model, images, run_dir = trained_run
    analysis.plot_nonlocality(run_dir, path=run_dir / "figures" / "nonlocality.png")
    analysis.plot_nonlocality(
        run_dir / "nested" / "analysis.jsonl", path=run_dir / "nonlocality_heads.png", per_head=True
    )
    figure = analysis.plot_gating(run_dir / "analysis.jsonl", path=run_dir / "gating.png")
    assert [axis.get_title() for axis in figure.axes] == ["blocks_0", "blocks_1"]
    figure = analysis.plot_attention_grid(model, images[0], path=run_dir / "attention.png", query=5)
    assert len(figure.axes) == 3 * 4
    analysis.plot_attention_grid(
        model, images[0], path=run_dir / "positional.png", part="positional", gate_override=1.0
    )
    for name in (
        "figures/nonlocality.png",
        "nonlocality_heads.png",
        "gating.png",
        "attention.png",
        "positional.png",
    ):
        assert_png(run_dir / name)


def test_logger_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="every"):
        analysis.AnalysisLogger(tmp_path, np.zeros((1, 32, 32, 3)), every=0)
    with pytest.raises(ValueError, match="images"):
        analysis.AnalysisLogger(tmp_path, np.zeros((32, 32, 3)))
    # An iterable of (images, labels) batches, as a validation data set: its first images.
    batches = ((np.full((4, 32, 32, 3), i, "float32"), np.zeros(4)) for i in range(5))
    logger = analysis.AnalysisLogger(tmp_path, batches, num_images=6)
    assert logger.images.shape == (6, 32, 32, 3)
    assert logger.images[:, 0, 0, 0].tolist() == [0, 0, 0, 0, 1, 1]
    model = build()
    with pytest.raises(ValueError, match="outside"):
        analysis.plot_attention_grid(model, np.zeros((32, 32, 3)), query=(4, 0))
