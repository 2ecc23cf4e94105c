"""The examples in deeprec's public docstrings run and print what they show."""

import doctest
import importlib
import pkgutil

import pytest

import deeprec


def _modules():
    for info in pkgutil.walk_packages(deeprec.__path__, "deeprec."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
