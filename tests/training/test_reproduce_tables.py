"""examples/reproduce_tables.py in a tiny setting: real `keras-convit train` processes."""

import csv

import pytest
from examples_loader import load_example

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

TINY = '{"hidden_dim": 16, "num_heads": 4, "depth": 2, "local_up_to_layer": 1}'


@pytest.mark.slow
def test_the_reproduction_trains_each_row_in_its_process_and_reuses_finished_runs(tmp_path, capsys):
    example = load_example("reproduce_tables")
    argv = [
        "--seeds", "0", "--rows", "a", "e", "--fractions", "0.5", "--epochs", "1",
        "--image-size", "8", "--no-distillation", "--output-dir", str(tmp_path),
        "--model-args", TINY,  # passed through to every run
    ]  # fmt: skip
    results = example.main(argv)
    assert sorted(r["row"] for r in results) == ["a", "e"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["epochs"] == 1 for r in results)
    assert results[0]["passes_per_epoch"] >= 2  # an epoch as long as one over the whole set
    markdown = (tmp_path / "tables.md").read_text()
    assert "| 0.5 |" in markdown and "| e | DeiT twin |" in markdown
    with open(tmp_path / "runs.csv") as file:
        assert len(list(csv.DictReader(file))) == 2
    assert (tmp_path / "tables.png").stat().st_size > 0
    assert example.main(argv) == results  # read back from the run folders, not trained again


def test_the_tables_give_mean_and_spread_over_seeds_beside_the_paper(tmp_path):
    example = load_example("reproduce_tables")
    results = [
        {"row": row, "fraction": fraction, "seed": seed, "distilled": distilled,
         "test_accuracy": accuracy + 0.01 * seed, "epochs": 50, "train_size": 100,
         "val_accuracy_last_quarter_start": 0.9, "val_accuracy_last_quarter_end": 0.91}
        for row, fraction, distilled, accuracy in [
            ("a", 0.1, False, 0.80), ("e", 0.1, False, 0.70), ("a", 1.0, False, 0.95),
            ("e", 1.0, False, 0.93), ("a", 1.0, True, 0.96), ("e", 1.0, True, 0.94),
        ]
        for seed in (0, 1, 2)
    ]  # fmt: skip
    markdown = example.write_tables(results, str(tmp_path), teacher_accuracy=0.99)
    # Seeds 0, 1, 2 add 0, 1, 2 points: mean + 1, standard deviation 1.
    assert "| 0.1 | 100 | 71.0 ± 1.0 | 81.0 ± 1.0 | +10.0 | 48.0 | 59.6 |" in markdown
    assert "| a | ConViT | 81.0 ± 1.0 | 96.0 ± 1.0 | 82.2 | 59.7 |" in markdown
    assert "| DeiT twin | 94.0 ± 1.0 | 95.0 ± 1.0 | 79.8 | 80.9 |" in markdown
    assert "CNN teacher: 99.0% test accuracy" in markdown
    assert "3 seed(s)" in markdown
    assert (
        "| a ConViT | 90.0 | 91.0 |" in markdown
        and "| e DeiT twin, distilled | 90.0 | 91.0 |" in markdown
    )
