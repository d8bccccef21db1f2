"""benchmarks/export_throughput.py runs on a tiny config and writes its files. Nothing here is
timed: the figures of a tiny config on a shared machine say nothing."""

import json
import os
import subprocess
import sys

import keras
import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = os.path.join(REPOSITORY, "benchmarks")
SCRIPT = os.path.join(BENCHMARKS, "export_throughput.py")
# ONNX only, keras_convit only: one export (the slow part), timed once, and profiled.
TINY = [
    "--formats", "onnx", "--no-timm", "--image-size", "32", "--depth", "2", "--batch-size", "2",
    "--rounds", "1", "--iters", "1", "--warmup", "0", "--pause", "0", "--profile",
    "--profile-runs", "1",
]  # fmt: skip


@pytest.mark.slow
def test_export_benchmark_runs_on_a_tiny_config_and_writes_its_files(tmp_path):
    pytest.importorskip("onnxruntime")
    backend = keras.backend.backend()
    completed = subprocess.run(
        [sys.executable, SCRIPT, *TINY, "--output-dir", str(tmp_path)],
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    stem = tmp_path / f"export-throughput-{backend}-cpu"
    report = json.loads(stem.with_suffix(".json").read_text())
    assert report["backend"] == backend and report["formats"] == ["onnx"]
    assert report["threads"]["onnxruntime"] == 2 and len(report["load_average"]["end"]) == 3
    (entry,) = report["results"].values()
    assert entry["runtime"] == "onnxruntime" and entry["images_per_s"] > 0
    assert entry["max_abs_difference_to_keras"] < 1e-5
    assert entry["profile"]["ops"]["optimized"] and entry["profile"]["kernel_ms_per_batch"] > 0
    markdown = stem.with_suffix(".md").read_text()
    assert f"exported from Keras' {backend} backend" in markdown
    assert "onnxruntime profile" in markdown


def test_markdown_gives_the_ratios_to_timm_and_the_targets(monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import export_throughput

    def entry(source, model, images_per_s):
        return dict(
            source=source,
            model=model,
            format="onnx",
            runtime="onnxruntime",
            exporter="some exporter",
            images_per_s=images_per_s,
            max_abs_logit_difference_to_timm=2e-6,
        )

    results = {
        "keras_convit_onnx": entry("keras_convit (jax)", "ConViT-Ti", 45.0),
        "timm_convit_onnx": entry("timm", "convit_tiny", 30.0),
        "timm_deit_onnx": entry("timm", "vit_tiny_patch16_224", 50.0),
    }
    timings = {label: {"images_per_s": value["images_per_s"]} for label, value in results.items()}
    report = {
        "backend": "jax",
        "model": "convit_tiny",
        "image_size": 224,
        "depth": None,
        "batch_size": 32,
        "commit": "abc1234",
        "machine": {"cpu": "Some CPU", "cores": 2, "memory_gib": 24.0},
        "versions": {"onnxruntime": "1.0"},
        "settings": {"threads": 2},
        "load_average": {"start": [0.5, 0.5, 0.5], "end": [0.9, 0.6, 0.5]},
        "results": results,
        "ratios": export_throughput.ratios(results, timings),
    }
    assert report["ratios"]["timm_convit"] == {"ratio": 1.5, "target": 1.0, "met": True}
    assert report["ratios"]["timm_deit"]["met"] is False
    markdown = export_throughput.markdown([report])
    assert "| keras_convit (jax) ConViT-Ti onnx | some exporter | onnxruntime | 45.0 " in markdown
    assert "| 1.50x | 0.90x | 2.0e-06 |" in markdown
    assert "timm deit ONNX: 0.90x (target 0.95x: missed)" in markdown
