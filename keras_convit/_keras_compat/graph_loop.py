"""The functional models' graph loop, freeing each output after its last use."""

import keras

# A functional model runs its graph in `Function._run_through_graph` (keras/src/ops/function.py,
# read at 3.15.1), which keeps every layer's output in one dict until the whole pass ends. Traced
# (XLA on TensorFlow and JAX) that costs nothing when the model runs; eager PyTorch holds them all
# at once: a ConViT-Ti forward pass at batch 64 keeps the normalised images and the output of
# every block (benchmarks/README.md). The loop below is Keras' own with one change: after each
# node, the outputs no later node reads, and that the model does not return, leave the dict, so
# each tensor is freed after its last use, as in a PyTorch module. The schedule is read from the
# graph on every call (a few dozen nodes). Installed on import for the Keras versions it mirrors.
_MIRRORED_RUN_THROUGH_GRAPH = ("3.15.",)


def _run_through_graph_releasing(self, inputs, operation_fn=lambda op: op, call_fn=None):
    from keras import tree

    tensor_dict = {id(x): y for x, y in zip(self.inputs, tree.flatten(inputs), strict=False)}
    nodes = [node for depth in sorted(self._nodes_by_depth, reverse=True)
             for node in self._nodes_by_depth[depth]]  # fmt: skip
    releases = _release_schedule(nodes, returned={id(x) for x in self.outputs})
    for position, node in enumerate(nodes):
        runnable = node.operation and not node.is_input
        if runnable and all(id(x) in tensor_dict for x in node.input_tensors):
            args, kwargs = node.arguments.fill_in(tensor_dict)
            if call_fn is not None:
                outputs = call_fn(operation_fn(node.operation), *args, **kwargs)
            else:
                outputs = operation_fn(self._get_operation_for_node(node))(*args, **kwargs)
            for x, y in zip(node.outputs, tree.flatten(outputs), strict=False):
                tensor_dict[id(x)] = y
            del args, kwargs, outputs
        for tensor_id in releases.get(position, ()):
            tensor_dict.pop(tensor_id, None)  # absent when its node could not run

    output_tensors = []
    for i, x in enumerate(self.outputs):
        if id(x) not in tensor_dict:
            path = tree.flatten_with_path(self._outputs_struct)[i][0]
            path = ".".join(str(p) for p in path)
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`")
        output_tensors.append(tensor_dict[id(x)])
    return tree.pack_sequence_as(self._outputs_struct, output_tensors)


def _release_schedule(nodes, returned):
    """{position: ids of the tensors to drop after the node at that position runs}: each tensor
    a node reads, after the last node that reads it, unless the graph returns it."""
    last_reader = {}
    for position, node in enumerate(nodes):
        if node.operation and not node.is_input:
            for x in node.input_tensors:
                last_reader[id(x)] = position
    releases = {}
    for tensor_id, position in last_reader.items():
        if tensor_id not in returned:
            releases.setdefault(position, []).append(tensor_id)
    return releases


def release_graph_intermediates():
    """Makes every functional model free each layer's output after its last use in a forward
    pass (see the comment above), on the Keras versions that loop mirrors; elsewhere Keras' own
    loop stays. Returns whether it is in place. Called on import."""
    from keras.src.ops.function import Function

    if not keras.__version__.startswith(_MIRRORED_RUN_THROUGH_GRAPH):
        return False
    Function._run_through_graph = _run_through_graph_releasing
    return True


release_graph_intermediates()
