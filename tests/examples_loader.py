"""Imports a script of `examples/` as a module, so tests call its `main(argv)` in process."""

import importlib.util
import pathlib

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


def load_example(name):
    """The module of `examples/<name>.py`."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
