"""The house rules, read from the imports alone: the library below (`layers` ... `distribution`),
the programs above (`job`, then `cli`); a room imports only rooms below it or itself, none
imports the package face, no two modules import each other, even through others; private Keras
API only in `_keras_compat/`; the command line lists every command."""

import ast
import pathlib
import subprocess
import sys

import keras
import pytest

from keras_convit.cli import COMMANDS

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_convit"
# The rooms from the ground up. The ground floor imports nothing of the package; a room may
# import any room before it in this list, and itself. Rooms of one floor import none of each other.
FLOORS = (
    ("presets", "_keras_compat", "_files", "_timm_import", "version"),
    ("layers",),
    ("weights",),
    ("models",),
    ("data", "analysis"),
    ("training",),
    ("deploy", "distribution"),
    ("job",),  # the programs: the main job ...
    ("cli",),  # ... and the commands
    ("__main__",),
)
RANK = {room: floor for floor, rooms in enumerate(FLOORS) for room in rooms}
LIBRARY = {room for room, floor in RANK.items() if floor < RANK["job"]}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _room(module):
    return module.split(".")[1].removesuffix(".py")


def _imports(path):
    """The package modules `path` imports, at any depth of its code (function bodies too):
    `from a.b import c` is the module a.b.c where that is a module, else a.b."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] == "keras_convit")


GRAPH = {module: set(_imports(path)) for module, path in MODULES.items()}


def test_the_rooms_are_the_package():
    rooms = {_room(module) for module in MODULES if module != "keras_convit"}
    assert rooms == set(RANK), f"a room without a floor, or a floor without a room: {rooms}"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "keras_convit"])
def test_imports_point_down(module):
    room = _room(module)
    imported = GRAPH[module]
    assert "keras_convit" not in imported, "imports the package face"
    for name in imported:
        other = _room(name)
        if other == room:
            continue
        assert RANK[other] < RANK[room], f"{room}/ imports {name}, on its floor or above it"
    if room in LIBRARY:
        programs = [name for name in imported if _room(name) not in LIBRARY]
        assert not programs, f"the library imports the programs: {programs}"
    if room != "_keras_compat":
        source = MODULES[module].read_text()
        assert "keras.src" not in source, "private Keras API outside _keras_compat/"


def test_no_module_imports_itself_through_others():
    cycles = []
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for name in sorted(GRAPH.get(module, ())):
            if state.get(name) == "open":
                cycles.append(path[path.index(name) :] + [name])
            elif name not in state:
                visit(name, [*path, name])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_is_a_house_of_its_own():
    # One concept per file: past 350 lines a module holds two. GPSA's fast and explicit paths,
    # tested equal, are one concept written twice on purpose.
    long = {
        module: lines
        for module, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > 350
        and module != "keras_convit.layers.gpsa"
    }
    assert not long, long


def test_keras_version_is_the_one_the_compat_module_was_checked_with():
    # _keras_compat/ names the version it was read against; a new Keras needs a new read.
    checked = (PACKAGE / "_keras_compat" / "__init__.py").read_text()
    assert keras.__version__ in checked, (keras.__version__, "re-check _keras_compat/")


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
