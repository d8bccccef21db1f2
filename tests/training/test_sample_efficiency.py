"""examples/sample_efficiency.py in a tiny setting."""

import csv

import pytest
from examples_loader import load_example
from harness import in_the_session_of

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")


@pytest.mark.slow
@in_the_session_of("torch")
def test_sample_efficiency_writes_a_table_and_a_plot(tmp_path, capsys):
    example = load_example("sample_efficiency")
    argv = [
        "--fractions", "0.5", "0.25", "--epochs", "1", "--no-scale-epochs",
        "--image-size", "8", "--batch-size", "32", "--augmentation", "none",
        "--model-args", '{"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1}',
        "--output-dir", str(tmp_path), "--verbose", "0",
    ]  # fmt: skip
    rows = example.main(argv)
    assert [row["fraction"] for row in rows] == [0.25, 0.5]
    assert rows[0]["train_size"] < rows[1]["train_size"]
    with open(tmp_path / "results.csv") as file:
        table = list(csv.DictReader(file))
    assert len(table) == 2 and 0.0 <= float(table[0]["convit_test_accuracy"]) <= 1.0
    assert "| 0.25 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "sample_efficiency.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "convit-f0.25",
        "convit-f0.5",
        "deit-f0.25",
        "deit-f0.5",
    ]
    # Finished runs are read back, not trained again (nor overwritten).
    capsys.readouterr()
    assert example.main(argv) == rows
    assert capsys.readouterr().out.count("Reusing the finished run") == 4
