"""Runs the `>>>` examples of every public docstring, so that documented examples stay runnable."""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest

import keras_convit


def _modules():
    for info in pkgutil.walk_packages(keras_convit.__path__, prefix="keras_convit."):
        if info.name.rsplit(".", 1)[-1].startswith("_") or info.name.endswith(("__main__",)):
            continue
        yield info.name


@pytest.mark.parametrize("module_name", sorted(_modules()))
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    extras = {"np": np, "keras": keras, "keras_convit": keras_convit}
    for test in finder.find(module, module_name, extraglobs=extras):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {module_name}"
