"""A training run's figures: learning curves and the confusion matrix say what was run."""

from keras_convit import analysis
from keras_convit.analysis import plots

HISTORY = {
    "loss": [2.2, 1.4, 1.0],
    "val_loss": [2.0, 1.1, 0.7],
    "accuracy": [0.3, 0.6, None],
    "val_accuracy": [0.4, 0.8, 0.9],
    "learning_rate": [1e-3, 5e-4, 1e-5],
}


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000


def note(figure):
    return figure.get_supxlabel()


def legend(axis):
    return axis.get_legend_handles_labels()[1]


def test_the_run_plots_are_importable_where_the_job_reads_them():
    assert plots.plot_learning_curves is analysis.plot_learning_curves
    assert plots.plot_confusion_matrix is analysis.plot_confusion_matrix


def test_learning_curves_keep_their_positional_call(tmp_path):
    figure = plots.plot_learning_curves(HISTORY, tmp_path / "out" / "curves.png")
    assert_png(tmp_path / "out" / "curves.png")
    assert figure.get_suptitle() == "" and note(figure) == ""
    assert legend(figure.axes[1]) == ["train", "validation"]
    # None entries are skipped: the last train accuracy is missing.
    assert list(figure.axes[1].lines[0].get_xdata()) == [1, 2]


def test_learning_curves_carry_the_title_and_why_train_sits_below_validation(tmp_path):
    figure = plots.plot_learning_curves(
        HISTORY,
        tmp_path / "curves.png",
        title="convit_digits on digits: test accuracy 0.953",
        augmented="augmented, MixUp-mixed",
    )
    assert_png(tmp_path / "curves.png")
    assert figure.get_suptitle() == "convit_digits on digits: test accuracy 0.953"
    assert legend(figure.axes[1]) == ["train (augmented)", "validation (clean)"]
    text = " ".join(note(figure).split())
    assert "augmented, MixUp-mixed batches" in text
    assert "validation on clean images" in text
    assert "train accuracy can sit below validation accuracy" in text
    assert "augmented batches" in note(plots.plot_learning_curves(HISTORY, augmented=True))


def test_no_note_without_augmentation_or_without_train_accuracy():
    assert note(plots.plot_learning_curves(HISTORY, augmented=False)) == ""
    losses = {"loss": [1.0, 0.5], "val_loss": [0.9, 0.4]}
    assert note(plots.plot_learning_curves(losses, augmented=True)) == ""


def test_confusion_matrix_keeps_its_positional_call_and_takes_a_title(tmp_path):
    matrix = [[5, 1, 0], [0, 4, 2], [1, 0, 6]]
    figure = plots.plot_confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "matrix.png")
    assert_png(tmp_path / "matrix.png")
    assert figure.axes[0].get_title() == ""
    figure = plots.plot_confusion_matrix(matrix, ["a", "b", "c"], title="test accuracy 0.79")
    assert figure.axes[0].get_title() == "test accuracy 0.79"
    counts = sorted(text.get_text() for text in figure.axes[0].texts)
    assert counts == sorted(str(count) for row in matrix for count in row)


def test_a_one_epoch_run_has_one_integer_epoch_tick():
    figure = plots.plot_learning_curves({"loss": [2.3], "val_loss": [2.2]})
    axis = figure.axes[0]
    low, high = axis.get_xlim()
    assert [tick for tick in axis.get_xticks() if low <= tick <= high] == [1]
