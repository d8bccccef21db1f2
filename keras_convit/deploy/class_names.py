"""Class names that travel with a model: a list file, a training run's `metrics.json`, or the
sidecar `keras-convit export` writes beside an artefact.

The sidecar of an artefact is `<artefact>.classes.json` (`model.onnx` -> `model.onnx.classes.json`,
a SavedModel folder `exported/` -> `exported.classes.json`): a JSON object with what the artefact
outputs (`"outputs"`: "logits" or "probabilities") and, when known, its `class_names` in output
order, so `--class-names` reads it too.
"""

import json
import os

from keras_convit._files import write_json_atomically

SIDECAR_SUFFIX = ".classes.json"
RUN_METRICS_FILE = "metrics.json"  # the training job writes `class_names` there


def sidecar_path(artifact):
    """The class-name file beside the artefact (a file or a folder) at `artifact`.

    >>> sidecar_path("exported/model.onnx"), sidecar_path("exported/saved_model/")
    ('exported/model.onnx.classes.json', 'exported/saved_model.classes.json')
    """
    return os.path.normpath(os.fspath(artifact)) + SIDECAR_SUFFIX


def write_sidecar(artifact, outputs_logits, class_names=None):
    """Writes the sidecar of `artifact`: whether it outputs logits, and its `class_names`
    (strings in output order, or None: unknown); returns its path.

    >>> import tempfile
    >>> artifact = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> path = write_sidecar(artifact, True, ["cat", "dog"])
    >>> os.path.basename(path), read_class_names(path), read_outputs_logits(artifact)
    ('model.onnx.classes.json', ('cat', 'dog'), True)
    """
    record = {"outputs": "logits" if outputs_logits else "probabilities"}
    if class_names is not None:
        record["class_names"] = list(_checked(class_names, "class_names"))
    path = sidecar_path(artifact)
    write_json_atomically(path, record, ensure_ascii=False)
    return path


def read_outputs_logits(artifact):
    """Whether the artefact at `artifact` outputs logits, as its sidecar records; None when it
    has no sidecar or the sidecar does not say (an artefact not written by `export`)."""
    path = sidecar_path(artifact)
    if not os.path.isfile(path):
        return None
    data = _read_json(path)
    outputs = data.get("outputs") if isinstance(data, dict) else None
    return {"logits": True, "probabilities": False}.get(outputs)


def read_class_names(path):
    """The class names in the file at `path`, as a tuple of strings.

    A `.json` file holds a list of names, or an object with a `class_names` list (a training
    run's `metrics.json`); any other file holds one name per line (blank lines are skipped).
    Raises OSError if the file cannot be read, ValueError if it holds no names.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "classes.txt")
    >>> _ = open(path, "w").write("cat\\ndog\\n\\n")
    >>> read_class_names(path)
    ('cat', 'dog')
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if not path.lower().endswith(".json"):
        return _checked([line.strip() for line in text.splitlines() if line.strip()], path)
    data = _read_json(path, text)
    if isinstance(data, dict):
        if "class_names" not in data:
            raise ValueError(f"{path!r} holds a JSON object without a 'class_names' list.")
        data = data["class_names"]
    return _checked(data, path)


def find_class_names(model_path):
    """The class names known for the model at `model_path`, or None: its sidecar (see
    `sidecar_path`), else, for a `.keras` file, the `metrics.json` of the training run beside
    it.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> find_class_names(os.path.join(folder, "model.keras")) is None
    True
    >>> with open(os.path.join(folder, "metrics.json"), "w") as file:
    ...     json.dump({"test_accuracy": 0.9, "class_names": ["cat", "dog"]}, file)
    >>> find_class_names(os.path.join(folder, "model.keras"))
    ('cat', 'dog')
    """
    model_path = os.fspath(model_path)
    candidates = [sidecar_path(model_path)]
    if model_path.endswith(".keras"):
        candidates.append(os.path.join(os.path.dirname(model_path), RUN_METRICS_FILE))
    for candidate in candidates:
        if os.path.isfile(candidate):
            data = _read_json(candidate)
            if isinstance(data, dict) and "class_names" not in data:
                continue  # a sidecar of an artefact whose names are unknown
            return read_class_names(candidate)
    return None


def _read_json(path, text=None):
    if text is None:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path!r} is not valid JSON: {error}") from error


def _checked(names, source):
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{source!r}: class names must be a list of strings.")
    if not names:
        raise ValueError(f"{source!r} holds no class names.")
    return tuple(names)
