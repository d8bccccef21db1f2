"""The benchmark runs on a tiny config and writes its files. Nothing here is timed: the figures of
a tiny config on a shared machine say nothing, and benchmarks/throughput.py is not a test."""

import json
import os
import subprocess
import sys

import keras
import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = os.path.join(REPOSITORY, "benchmarks")
SCRIPT = os.path.join(BENCHMARKS, "throughput.py")
TINY = [
    "--models", "convit_tiny", "--image-size", "32", "--depth", "2", "--batch-size", "2",
    "--train-batch-size", "2", "--memory-batch-size", "2", "--rounds", "1", "--iters", "1",
    "--warmup", "0", "--pause", "0", "--memory-jobs", "3",
]  # fmt: skip


@pytest.fixture
def benchmarks(monkeypatch):
    """The benchmark's modules, imported as its scripts import each other."""
    monkeypatch.syspath_prepend(BENCHMARKS)
    import contestants
    import report

    return contestants, report


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_config_and_writes_its_files(tmp_path):
    environment = {
        **os.environ,
        "KERAS_BACKEND": keras.backend.backend(),
        # The memory subprocesses rebuild the parent's models: JAX reuses its compilations.
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    completed = subprocess.run(
        [sys.executable, SCRIPT, *TINY, "--no-timm", "--output-dir", str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    stem = tmp_path / f"throughput-{keras.backend.backend()}-cpu"
    report = json.loads(stem.with_suffix(".json").read_text())
    assert report["backend"] == keras.backend.backend()
    # keras_convit's default: XLA on TensorFlow and JAX, eager PyTorch.
    assert report["resolved_jit_compile"] is (keras.backend.backend() != "torch")
    assert report["machine"]["cores"] >= 1 and len(report["load_average"]["end"]) == 3
    rows = {row["mode"]: row for row in report["results"]}
    assert set(rows) == {"forward", "train", "memory"}
    for mode in ("forward", "train"):
        assert rows[mode]["timings"]["keras_convit"]["images_per_s"] > 0
    figures = rows["memory"]["figures"]
    assert set(figures["forward"]) == {"batch_size", "keras_convit", "keras_convit_explicit"}
    assert figures["train"]["keras_convit"]["peak_mib"] >= 0
    markdown = stem.with_suffix(".md").read_text()
    assert "| ConViT-Ti | " + keras.backend.backend() in markdown and "Peak memory" in markdown


def test_timm_references_run_on_a_tiny_config(benchmarks):
    contestants, _ = benchmarks
    try:
        contestants.import_timm()
    except ImportError:
        pytest.skip("timm is not installed")
    for name in contestants.timm_references("convit_tiny"):
        make = contestants.timm_steps(name, 32, "float32", "cpu", depth=2)
        for mode in ("forward", "train"):
            make(mode, 2)()


def test_markdown_gives_every_figure_its_ratios(benchmarks):
    _, report_module = benchmarks
    timings = {
        "keras_convit": {"images_per_s": 45.0},
        "timm_convit": {"images_per_s": 30.0},
        "timm_deit": {"images_per_s": 50.0},
    }
    report = {
        "backend": "jax",
        "jit_compile": "auto",
        "resolved_jit_compile": True,
        "image_size": 224,
        "machine": {"cpu": "Some CPU", "cores": 2, "memory_gib": 24.0},
        "versions": {},
        "load_average": {"start": [0.5, 0.5, 0.5], "end": [0.9, 0.6, 0.5]},
        "results": [
            {
                "model": "convit_tiny",
                "dtype": "float32",
                "mode": "forward",
                "batch_size": 32,
                "timings": timings,
            },
            {
                "model": "convit_tiny",
                "dtype": "float32",
                "mode": "memory",
                "figures": {
                    "forward": {
                        "batch_size": 64,
                        "keras_convit": {"peak_mib": 80.0},
                        "keras_convit_explicit": {"peak_mib": 200.0},
                    }
                },
            },
        ],
    }
    markdown = report_module.markdown_tables(
        [report, {**report, "backend": "torch", "resolved_jit_compile": False}]
    )
    assert "| ConViT-Ti | jax (XLA) | float32 | 45.0 | 30.0 | 50.0 | 1.50x | 0.90x |" in markdown
    assert "| ConViT-Ti | torch (eager) | float32 | 45.0 |" in markdown
    assert "| ConViT-Ti | jax (XLA) | float32 | forward | 80.0 | 200.0 | - | - |" in markdown
    assert "jax 0.5 / 0.9" in markdown
