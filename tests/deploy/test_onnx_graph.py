"""`restore_erf_divisions` turns only a GELU's `Mul(x, 1/sqrt(2)) -> Erf` into a division, and
the graph computes the same values in onnxruntime."""

import numpy as np
import pytest

from keras_convit.deploy.onnx_graph import restore_erf_divisions

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper


SQRT_HALF = float(np.float32(1 / np.sqrt(2)))


def gelu_graph(scale=SQRT_HALF, second_reader=False):
    """x / 2 * (1 + erf(x * scale)), as tf2onnx writes it; optionally `s` read twice."""
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["s"], name="mul_scale"),
        helper.make_node("Erf", ["s"], ["e"]),
        helper.make_node("Add", ["one", "e"], ["a"]),
        helper.make_node("Mul", ["half", "x"], ["h"]),
        helper.make_node("Mul", ["h", "a"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 8])]
    if second_reader:
        nodes.append(helper.make_node("Neg", ["s"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [4, 8]))
    constants = {"scale": scale, "one": 1.0, "half": 0.5}
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 8])],
        outputs,
        initializer=[numpy_helper.from_array(np.float32(v), k) for k, v in constants.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def run(model, x):
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"x": x})[0]


def test_the_gelu_division_is_restored_and_the_values_kept():
    model = gelu_graph()
    x = np.random.default_rng(0).normal(0, 3, (4, 8)).astype("float32")
    before = run(model, x)
    assert restore_erf_divisions(model) == 1
    assert [node.op_type for node in model.graph.node] == ["Div", "Erf", "Add", "Mul", "Mul"]
    onnx.checker.check_model(model)
    assert "scale" not in {tensor.name for tensor in model.graph.initializer}  # no longer read
    np.testing.assert_allclose(run(model, x), before, rtol=1e-6, atol=1e-7)
    assert restore_erf_divisions(model) == 0  # nothing left to rewrite


@pytest.mark.parametrize("graph", [dict(scale=0.7), dict(second_reader=True)], ids=str)
def test_other_products_are_left_alone(graph):
    model = gelu_graph(**graph)
    assert restore_erf_divisions(model) == 0
    assert model.graph.node[0].op_type == "Mul"
