"""examples/distributed/: each script's --smoke mode in its own process, on simulated CPU devices.

Each script needs one backend, so its smoke test runs in that backend's pytest session only (the
Makefile runs the suite once per backend): every smoke runs exactly once across the three.
"""

import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples" / "distributed"
# script -> (backend it needs, data replicas of its smoke, sharded variables expected)
SMOKES = {
    "jax_model_parallel.py": ("jax", 2, 14),
    "tf_mirrored.py": ("tensorflow", 2, None),
}
TIMEOUT = 600


def _run(script, backend, *args, timeout=TIMEOUT):
    env = {**os.environ, "KERAS_BACKEND": backend, "OMP_WAIT_POLICY": "PASSIVE"}
    for name in ("XLA_FLAGS", "JAX_PLATFORMS", "RANK", "WORLD_SIZE", "LOCAL_RANK", "TF_CONFIG"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _summary(output):
    """The fields of the script's one-line summary."""
    lines = [line for line in output.splitlines() if line.startswith("DISTRIBUTED ")]
    assert len(lines) == 1, output[-4000:]
    status, *fields = lines[0].split()[1:]
    return status, dict(field.split("=", 1) for field in fields)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKES))
def test_smoke_trains_with_identical_replicas(script):
    needed, replicas, sharded = SMOKES[script]
    if keras.backend.backend() != needed:
        pytest.skip(f"{script} needs {needed}: it runs once, in the KERAS_BACKEND={needed} session")
    result = _run(script, needed, "--smoke", "--verbose", "2")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    status, fields = _summary(result.stdout)
    assert status == "OK", output[-6000:]
    assert math.isfinite(float(fields["loss"])) and fields["finite_loss"] == "True"
    assert fields["replicas_identical"] == "True" and fields["weights_updated"] == "True"
    assert int(fields["steps"]) == 3
    # Every variable (and optimizer slot) was compared on every device that holds it.
    checked, copies = int(fields["checked"]), int(fields["copies"])
    if sharded is None:
        assert copies == checked * replicas, fields
    else:  # 2 x 2 mesh: each shard of a sharded variable sits on the 2 data replicas
        assert int(fields["sharded_variables"]) == sharded
        assert copies > 2 * checked, fields


@pytest.mark.parametrize("script", sorted(SMOKES))
def test_wrong_backend_says_which_one_is_needed(script):
    needed = SMOKES[script][0]
    wrong = "torch"
    result = _run(script, wrong, "--smoke", timeout=120)
    assert result.returncode != 0
    assert f"needs the {needed} backend" in result.stderr, result.stderr[-2000:]
    assert f"KERAS_BACKEND={needed}" in result.stderr


def test_smoke_rejects_real_cluster_settings():
    result = _run("tf_mirrored.py", "tensorflow", "--smoke", "--strategy", "tpu", timeout=120)
    assert result.returncode == 2 and "--smoke simulates MirroredStrategy" in result.stderr


def _common():
    spec = importlib.util.spec_from_file_location("distributed_common", EXAMPLES / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replica_comparison_and_summary_fail_on_disagreement_or_a_bad_loss(capsys):
    common = _common()
    same = [("a", [np.ones(3), np.ones(3)]), ("b", [np.zeros(2)] * 4)]
    assert common.compare_replicas(same) == (2, 6, [])
    drifted = same + [("c", [np.ones(2), np.array([1.0, 1.0 + 1e-7])])]
    assert common.compare_replicas(drifted)[2] == ["c"]

    assert common.finish("test", 0.5, []) == 0
    assert "DISTRIBUTED OK engine=test" in capsys.readouterr().out
    assert common.finish("test", 0.5, ["c"]) == common.EXIT_FAILED
    assert common.finish("test", float("nan"), []) == common.EXIT_FAILED
    assert common.finish("test", 0.5, [], updated=False) == common.EXIT_FAILED
    assert "replicas_identical=False" in capsys.readouterr().out
