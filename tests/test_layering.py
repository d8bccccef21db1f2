"""Imports point down: no module imports the package face or a layer above its own; private
Keras API is used only in `_keras_compat.py`; the command line lists every command."""

import ast
import pathlib
import subprocess
import sys

import keras
import pytest

from keras_convit.cli import COMMANDS

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_convit"
# Each package may not import these (besides the face, which none may).
FORBIDDEN = {
    "presets": ("keras_convit.",),
    "_keras_compat": ("keras_convit.",),
    "layers": ("keras_convit.models", "keras_convit.weights", "keras_convit.training",
               "keras_convit.data", "keras_convit.cli", "keras_convit.analysis"),
    "weights": ("keras_convit.models", "keras_convit.training", "keras_convit.cli",
                "keras_convit.analysis", "keras_convit.data"),
    "models": ("keras_convit.training", "keras_convit.cli", "keras_convit.analysis",
               "keras_convit.data"),
    "data": ("keras_convit.models", "keras_convit.training", "keras_convit.cli",
             "keras_convit.weights"),
    "analysis": ("keras_convit.training", "keras_convit.cli"),
    "training": ("keras_convit.cli",),
    "deploy": ("keras_convit.training", "keras_convit.cli", "keras_convit.analysis"),
}  # fmt: skip


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "keras_convit":
                yield from (f"keras_convit {alias.name}" for alias in node.names)
            else:
                yield node.module


def _modules():
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    room = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    imports = list(_imports(path))
    face = [name for name in imports if name == "keras_convit" or name.startswith("keras_convit ")]
    assert not face, f"imports the package face: {face}"
    bad = [name for name in imports if name.startswith(FORBIDDEN.get(room, ()))]
    assert not bad, f"{room}/ imports a room above it: {bad}"
    if path.name != "_keras_compat.py":
        assert not [name for name in imports if name.startswith("keras.src")]


def test_keras_version_is_the_one_the_compat_module_was_checked_with():
    # _keras_compat.py names the version it was read against; a new Keras needs a new read.
    checked = (PACKAGE / "_keras_compat.py").read_text()
    assert keras.__version__ in checked, (keras.__version__, "re-check _keras_compat.py")


def test_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "keras_convit", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for command in COMMANDS:
        assert f"    {command} " in result.stdout
