"""Every export format of the backend in use, each artefact reloaded in its own runtime: the same
outputs as `model.predict` for a batch size no exporter traced with, and nothing half-written."""

import os

import keras
import numpy as np
import pytest

import keras_convit
from keras_convit.deploy import (
    ExportMismatchError,
    artifact_format,
    export_formats,
    export_model,
    load_artifact,
)
from keras_convit.deploy.runtimes import ARTIFACT_SUFFIXES

# Two blocks: one GPSA block, then the class token and one attention block (every layer kind).
TINY = dict(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1, patch_size=8, classes=3)


def tiny_convit(**overrides):
    return keras_convit.ConViT(
        **TINY,
        input_shape=(16, 16, 3),
        compile=False,
        **{"classifier_activation": None, **overrides},
    )


def perturbed(model):
    rng = np.random.default_rng(1)
    model.set_weights(
        [w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def artefact_path(tmp_path, format):
    return tmp_path / f"tiny{ARTIFACT_SUFFIXES[format]}"


@pytest.mark.parametrize("format", ["tf_saved_model", "onnx", "litert", "torch"])
def test_each_format_of_the_backend_reloads_in_its_runtime_with_the_same_outputs(format, tmp_path):
    if format not in export_formats():
        pytest.skip(f"Keras offers no {format} export for a {keras.backend.backend()} model")
    model = perturbed(tiny_convit())
    report = export_model(model, artefact_path(tmp_path, format), format=format)
    assert report.max_abs_difference <= 1e-5
    artifact = load_artifact(report.path, safe_mode=False)
    assert (artifact.format, artifact.image_shape) == (format, (16, 16, 3))
    for batch in (1, 5):  # neither the check's 3 nor the exporters' traced 1 or 2 alone
        images = np.random.default_rng(batch).uniform(0, 255, (batch, 16, 16, 3))
        images = images.astype("float32")
        expected = model.predict(images, verbose=0)
        np.testing.assert_allclose(artifact.predict(images), expected, rtol=0, atol=1e-5)
    assert os.listdir(tmp_path) == [os.path.basename(report.path)]  # no scratch left behind
    if format == "onnx":
        assert fused_gelus(report.path, tmp_path / "optimized.onnx") == TINY["depth"]


def fused_gelus(path, optimized_path):
    """The GELU kernels onnxruntime runs after its graph fusions (one per block at best)."""
    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(optimized_path)
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(optimized_path)).graph.node
    assert not [node for node in nodes if node.op_type == "Erf"], "an unfused GELU is left"
    return sum(node.op_type in ("Gelu", "BiasGelu") for node in nodes)


def test_a_failed_check_leaves_the_destination_as_it_was(tmp_path):
    format = export_formats()[-1]
    path = artefact_path(tmp_path, format)
    if ARTIFACT_SUFFIXES[format]:
        path.write_bytes(b"the previous artefact")
    model = tiny_convit()
    with pytest.raises(ExportMismatchError, match="nothing was written"):
        export_model(model, path, format=format, tolerance=-1.0)
    if ARTIFACT_SUFFIXES[format]:
        assert path.read_bytes() == b"the previous artefact"
    assert sorted(os.listdir(tmp_path)) == ([path.name] if ARTIFACT_SUFFIXES[format] else [])


def test_bad_requests_are_refused_before_anything_is_written(tmp_path):
    model = tiny_convit()
    offered = export_formats()
    with pytest.raises(ValueError, match="not offered"):
        export_model(model, tmp_path / "m.bin", format="openvino")
    with pytest.raises(ValueError, match=r"is a \.onnx file"):
        export_model(model, tmp_path / "m.tflite", format="onnx")
    if "tf_saved_model" in offered:
        with pytest.raises(ValueError, match="is a directory"):
            export_model(model, tmp_path / "m.onnx", format="tf_saved_model")
    keras.config.set_dtype_policy("mixed_float16")
    half = tiny_convit()
    keras.config.set_dtype_policy("float32")
    with pytest.raises(ValueError, match="float32"):
        export_model(half, tmp_path / "m.onnx", format="onnx")
    with pytest.raises(ValueError, match="one image input"):
        export_model(object(), tmp_path / "m.onnx", format="onnx")
    assert os.listdir(tmp_path) == []


def test_artefacts_are_recognised_by_their_suffix_and_pt2_needs_trust(tmp_path):
    assert artifact_format("a/model.onnx") == "onnx"
    assert artifact_format("model.tflite") == "litert"
    (tmp_path / "saved").mkdir()
    with pytest.raises(ValueError, match="without saved_model.pb"):
        artifact_format(tmp_path / "saved")
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"")
    assert artifact_format(tmp_path / "saved") == "tf_saved_model"
    with pytest.raises(ValueError, match="no exported artefact"):
        artifact_format("model.keras")
    (tmp_path / "program.pt2").write_bytes(b"")
    with pytest.raises(ValueError, match="pickled"):
        load_artifact(tmp_path / "program.pt2")
    with pytest.raises(FileNotFoundError):
        load_artifact(tmp_path / "missing.onnx")
