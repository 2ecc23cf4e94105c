"""`deeprec.python`: mirrors `tensorflow.python`; its subpackages with files here are ours.

Every `deeprec.python.X` without a file in this package is TensorFlow's
`tensorflow.python.X` (see deeprec/_module_tree.py).
"""

import importlib as _importlib


def submodule_getattr(package):
    """A module `__getattr__` that imports `package.<name>` on first access.

    `tensorflow.python.X` is reachable as an attribute once imported; importing
    on first access makes `deeprec.python.X` behave at least as well.
    """

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return _importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from err

    return __getattr__


__getattr__ = submodule_getattr(__name__)
