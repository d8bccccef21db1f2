"""A tiny image classifier written as an ONNX graph by hand (no exporter, no TensorFlow): the
mean colour of (batch, 16, 16, 3) images times a 3x3 matrix plus a bias, as logits."""

import numpy as np


def write_tiny_onnx(path, weight=None, bias=(0.0, 0.0, 0.0)):
    """Writes the graph to `path`; `weight` (3, 3) defaults to a fixed scaling of the colours."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.diag([0.02, 0.01, -0.01]) if weight is None else weight
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["mean", "weight"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 16, 16, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            numpy_helper.from_array(np.asarray(weight, "float32"), "weight"),
            numpy_helper.from_array(np.asarray(bias, "float32"), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_onnx_logits(images, weight=None, bias=(0.0, 0.0, 0.0)):
    """What the graph computes, in numpy."""
    weight = np.diag([0.02, 0.01, -0.01]) if weight is None else weight
    return np.asarray(images, "float64").mean(axis=(1, 2)) @ weight + np.asarray(bias)
