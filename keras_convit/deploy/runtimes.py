"""Exported artefacts loaded in their own runtime: onnxruntime, the LiteRT interpreter,
TensorFlow's SavedModel loader, torch.export. None of them needs keras_convit or Keras.

Trust: an ONNX or LiteRT file is a graph of the runtime's own operators, which read their input
and write their output only, so any file is loaded. A SavedModel runs its own TensorFlow graph,
whose operators can read and write files (`tf.io.write_file`), and a `.pt2` program can hold
pickled Python objects: both are loaded only with `safe_mode=False` (`--unsafe`), for files you
made or trust as you would trust a program.

Every artefact takes float32 images (batch, height, width, channels) in [0, 255] (the model's
own input) and returns the model's outputs (batch, classes); the batch size is free.
"""

import os

import numpy as np

# format -> the file suffix of its artefact ("" for a SavedModel directory).
ARTIFACT_SUFFIXES = {"tf_saved_model": "", "onnx": ".onnx", "litert": ".tflite", "torch": ".pt2"}
# The formats that can run code of their author when loaded or run, and why.
UNSAFE_FORMATS = {
    "tf_saved_model": "a SavedModel runs its own TensorFlow graph, which can read and write "
    "files; load it with safe_mode=False (--unsafe) only if you made it or trust it as a program",
    "torch": "a .pt2 program can hold pickled Python objects, which run code when loaded; load "
    "it with safe_mode=False (--unsafe) only if you made it or trust it as a program",
}


class Artifact:
    """An exported model in its runtime. `format`, `image_shape` (height, width, channels)
    and `predict(images) -> (batch, classes)` numpy outputs."""

    format = None

    def __init__(self, path):
        self.path = os.fspath(path)

    def predict(self, images):
        """The model's outputs for float32 `images` (batch, *image_shape), as numpy."""
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
            expected = ", ".join(map(str, self.image_shape))
            raise ValueError(f"{self.path} takes images (batch, {expected}); got {images.shape}.")
        return np.asarray(self._run(images))

    def __repr__(self):
        return f"<{self.format} artefact {self.path!r}, images {self.image_shape}>"


class OnnxArtifact(Artifact):
    format = "onnx"

    def __init__(self, path):
        super().__init__(path)
        import onnxruntime

        self.session = onnxruntime.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        (model_input,) = self.session.get_inputs()
        self.input_name = model_input.name
        self.image_shape = tuple(model_input.shape[1:])

    def _run(self, images):
        return self.session.run(None, {self.input_name: images})[0]


class LiteRTArtifact(Artifact):
    format = "litert"

    def __init__(self, path):
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=self.path)
        (self.input_details,) = self.interpreter.get_input_details()
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.image_shape = tuple(int(side) for side in self.input_details["shape"][1:])

    def _run(self, images):
        # The batch is dynamic (-1 in the signature); the interpreter is sized per call.
        self.interpreter.resize_tensor_input(self.input_details["index"], images.shape)
        self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self.input_details["index"], images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)


class SavedModelArtifact(Artifact):
    format = "tf_saved_model"

    def __init__(self, path):
        super().__init__(path)
        import tensorflow as tf

        self.loaded = tf.saved_model.load(self.path)
        signature = self.loaded.signatures["serving_default"]
        ((self.input_name, spec),) = signature.structured_input_signature[1].items()
        self.signature = signature
        self.image_shape = tuple(spec.shape[1:])

    def _run(self, images):
        (outputs,) = self.signature(**{self.input_name: images}).values()
        return outputs.numpy()


class TorchArtifact(Artifact):
    format = "torch"

    def __init__(self, path):
        super().__init__(path)
        import torch

        program = torch.export.load(self.path)
        (image_input,) = [
            node
            for node in program.graph.nodes
            if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
        ]
        self.image_shape = tuple(int(side) for side in image_input.meta["val"].shape[1:])
        self.module = program.module()

    def _run(self, images):
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(images)).numpy()


_ARTIFACTS = {kind.format: kind for kind in Artifact.__subclasses__()}


def artifact_format(path):
    """The export format of the artefact at `path`, read from its suffix (a directory holding
    `saved_model.pb` is a SavedModel); a ValueError names the suffixes known.

    Example:
    >>> keras_convit.deploy.artifact_format("runs/demo/model.tflite")
    'litert'
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "tf_saved_model"
        raise ValueError(f"{path} is a directory without saved_model.pb: it is not a SavedModel.")
    for format, suffix in ARTIFACT_SUFFIXES.items():
        if suffix and path.endswith(suffix):
            return format
    known = ", ".join(suffix for suffix in ARTIFACT_SUFFIXES.values() if suffix)
    raise ValueError(f"{path} is no exported artefact: expected {known} or a SavedModel directory.")


def load_artifact(path, safe_mode=True):
    """Loads an exported model in its own runtime, by its suffix.

    Args:
        path: a `.onnx` or `.tflite` file, a SavedModel directory or a `.pt2` program.
        safe_mode: a SavedModel runs its own TensorFlow graph, which can read and write
            files, and a `.pt2` program can hold pickled Python objects, which run code when
            loaded: both are refused unless `safe_mode=False` (only for files you made or
            trust), as `keras.saving.load_model` refuses lambdas. ONNX and LiteRT files run
            only their runtime's operators and always load.

    Returns:
        An `Artifact`: `.format`, `.image_shape`, `.predict(images)`.

    Example (an export takes seconds, so the suite runs this in tests/deploy instead):
    >>> model = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(16, 16, 3), compile=False)
    >>> keras_convit.deploy.export_model(model, "tiny.onnx", format="onnx")  # doctest: +SKIP
    >>> artifact = keras_convit.deploy.load_artifact("tiny.onnx")  # doctest: +SKIP
    >>> artifact.predict(np.zeros((5, 16, 16, 3), "float32")).shape  # doctest: +SKIP
    (5, 1000)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No exported artefact at {path}.")
    format = artifact_format(path)
    if safe_mode and format in UNSAFE_FORMATS:
        raise ValueError(f"Refused to load {path}: {UNSAFE_FORMATS[format]}.")
    try:
        return _ARTIFACTS[format](path)
    except ImportError as error:
        raise ImportError(
            f"Reading a {format} artefact needs {error.name}: pip install 'keras-convit[export]'."
        ) from error
