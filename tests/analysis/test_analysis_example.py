"""examples/visualize_attention.py as a real subprocess, on a tiny model."""

import json
import os
import subprocess
import sys

import keras
from analysis_helpers import TINY, build

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "visualize_attention.py")


def test_example_writes_the_figures(tmp_path):
    model = build()
    weights = tmp_path / "tiny.weights.h5"
    model.save_weights(weights)
    out = tmp_path / "figures"
    config = json.dumps({**TINY, "input_shape": list(TINY["input_shape"])})
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--weights",
            str(weights),
            "--config",
            config,
            "--query",
            "1",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nonlocality per layer" in result.stdout
    names = {"attention_grid.png", "positional_attention_grid.png", "nonlocality.png", "gating.png"}
    assert {path.name for path in out.iterdir()} == names
    for name in names:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000
