"""examples/fine_tuning_evidence.py without its training runs (an hour): the plan of runs, the
scratch rate read from a scratch twin's run.json, and the table and plot of the results."""

import json

import pytest
from examples_loader import load_example

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def evidence():
    return load_example("fine_tuning_evidence")


def test_every_method_fraction_and_seed_is_one_run_in_its_own_folder(evidence, tmp_path):
    args = evidence.parse_args(["--output-dir", str(tmp_path), "--fractions", "0.05", "1"])
    runs = evidence.planned_runs(args, "PRETRAINED")
    assert len(runs) == len(evidence.METHODS) * 2 * 3
    assert len({run_dir for run_dir, _, _ in runs}) == len(runs)
    probe = next(flags for run_dir, flags, _ in runs if run_dir.endswith("linear-probe-f1-s2"))
    assert probe[:3] == ["--weights", "PRETRAINED", "--freeze-backbone"]
    assert probe[probe.index("--fraction") + 1] == "1" and probe[probe.index("--seed") + 1] == "2"


def test_the_scratch_rate_is_read_from_the_scratch_twin(evidence, tmp_path):
    args = evidence.parse_args(["--output-dir", str(tmp_path)])
    runs = evidence.planned_runs(args, "PRETRAINED")
    run = next(run for run in runs if run[0].endswith("fine-tune-scratch-rate-f0.1-s1"))
    twin = tmp_path / "scratch-f0.1-s1"
    twin.mkdir()
    (twin / "run.json").write_text(json.dumps({"settings": {"learning_rate": 0.00125}}))
    flags = evidence._with_scratch_rate(run, args)
    assert flags[:4] == ["--weights", "PRETRAINED", "--learning-rate", "0.00125"]
    with pytest.raises(SystemExit, match="needs 'scratch'"):
        evidence.main(["--methods", "fine-tune, scratch rate", "--output-dir", str(tmp_path)])


def test_the_results_are_a_csv_a_table_of_mean_and_sd_and_a_plot(evidence, tmp_path):
    args = evidence.parse_args(
        ["--output-dir", str(tmp_path), "--methods", "scratch", "linear probe",
         "--fractions", "0.1", "1", "--seeds", "0", "1"]
    )  # fmt: skip
    accuracy = {("scratch", 0.1): (0.8, 0.9), ("scratch", 1.0): (0.9, 0.9)}
    accuracy |= {("linear probe", 0.1): (0.5, 0.6), ("linear probe", 1.0): (0.6, 0.7)}
    rows = [
        {"method": method, "fraction": fraction, "seed": seed, "test_accuracy": value,
         "train_size": int(fraction * 600), "train_seconds": 1.0}
        for (method, fraction), values in accuracy.items()
        for seed, value in enumerate(values)
    ]  # fmt: skip
    evidence.write_results(rows, args, pretrain_accuracy=0.97)
    table = (tmp_path / "table.md").read_text()
    assert "| method | 10% (60 images) | 100% (600 images) |" in table
    assert "| scratch | 85.0 ± 7.1 | 90.0 ± 0.0 |" in table
    assert "| linear probe | 55.0 ± 7.1 | 65.0 ± 7.1 |" in table
    assert "test accuracy 97.0%" in table
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 1 + 8
    assert (tmp_path / "fine_tuning.png").stat().st_size > 0
