"""examples/reproduce_tables.py in a tiny setting: real `keras-convit train` processes."""

import csv

import pytest
from examples_loader import load_example
from harness import in_the_session_of

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

TINY = '{"hidden_dim": 16, "num_heads": 4, "depth": 2, "local_up_to_layer": 1}'


@pytest.mark.slow
@in_the_session_of("torch")
def test_the_reproduction_trains_each_row_in_its_process_and_reuses_finished_runs(tmp_path, capsys):
    example = load_example("reproduce_tables")
    argv = [
        "--seeds", "0", "--rows", "a", "e", "--fractions", "0.5", "--epochs", "1",
        "--image-size", "8", "--no-distillation", "--output-dir", str(tmp_path),
        "--table2-fractions", "--sweeps",  # none of either
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
         "val_accuracy_last_quarter_start": 0.9, "val_accuracy_last_quarter_end": 0.91,
         "early_epoch": 5, "val_accuracy_early": 0.5}
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


def test_the_plan_covers_table_2_and_fig_8_sharing_the_runs_that_are_the_same_model():
    example = load_example("reproduce_tables")
    args, args.extra = example.parse_args(["--rows", "a", "e", "--no-distillation"])
    keys = [key for key, _ in example.planned_runs(args)]
    assert len(keys) == len(set(keys))
    at = {fraction for row, fraction, _, _ in keys if row == "a"}
    assert at == {0.05, 0.1, 0.3, 0.5, 1.0}  # the paper's Table 2 (there is no 25%)
    # alpha 1 is ConViT and all its GPSA blocks too, none the DeiT twin: those runs are shared.
    variants = {row for row, _, _, _ in keys}
    assert variants == {"a", "e", "in-place", "alpha0.01", "alpha0.1", "gpsa1", "gpsa2"}
    flags = dict(example.planned_runs(args))[("gpsa1", 0.1, 0, False)]
    assert flags[flags.index("--model-args") + 1] == '{"local_up_to_layer": 1}'


def test_the_sweep_tables_give_the_head_start_and_the_end(tmp_path):
    example = load_example("reproduce_tables")
    results = [
        {"row": row, "fraction": 0.1, "seed": seed, "distilled": False, "epochs": 50,
         "train_size": 100, "test_accuracy": final, "val_accuracy_early": early + 0.01 * seed,
         "early_epoch": 5, "val_accuracy_last_quarter_start": 0.9,
         "val_accuracy_last_quarter_end": 0.9}
        for row, early, final in [("a", 0.6, 0.9), ("e", 0.3, 0.8), ("gpsa1", 0.4, 0.85),
                                  ("alpha0.1", 0.5, 0.88), ("in-place", 0.2, 0.5)]
        for seed in (0, 1, 2)
    ]  # fmt: skip
    markdown = example.write_tables(results, str(tmp_path))
    assert "Fig. 8, GPSA blocks (fraction 0.1): validation accuracy at epoch 5" in markdown
    assert "| 0 | e | 31.0 ± 1.0 | 80.0 ± 0.0 |" in markdown
    assert "| 3 | a | 61.0 ± 1.0 | 90.0 ± 0.0 |" in markdown
    assert "| 0.1 | alpha0.1 | 51.0 ± 1.0 | 88.0 ± 0.0 |" in markdown
    assert "| in-place ablation | in-place | 21.0 ± 1.0 | 50.0 ± 0.0 |" in markdown
    assert (tmp_path / "sweeps.png").stat().st_size > 0
