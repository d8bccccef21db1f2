"""benchmarks/remat_memory.py measures a tiny config in this process and tables it; its figures
say nothing here (a tiny model on a shared machine), so nothing is compared or timed."""

import os

import keras
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks")
SPEC = {
    "model": "convit_digits", "model_args": {"depth": 2, "local_up_to_layer": 1},
    "image_size": 16, "batch_size": 2, "classes": 3, "dtype_policy": "float32", "device": "cpu",
}  # fmt: skip


@pytest.mark.slow
def test_remat_memory_measures_a_tiny_config_and_tables_it(monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import remat_memory

    measured = remat_memory.measure({**SPEC, "remat": True})
    assert measured["peak_mib"] >= 0 and measured["method"] == "process peak RSS"
    row = {"backend": keras.backend.backend(), "without": measured, "with": measured}
    row["method"] = measured["method"]
    table = remat_memory.markdown([{**SPEC, "rows": [row]}])
    assert f"| {keras.backend.backend()} | " in table and "convit_digits at 16x16" in table
