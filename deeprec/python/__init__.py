"""`deeprec.python`: mirrors `tensorflow.python`; its subpackages with files here are ours.

Every `deeprec.python.X` without a file in this package is TensorFlow's
`tensorflow.python.X` (see deeprec/_module_tree.py).
"""

import importlib as _importlib


def __getattr__(name):
    # `tensorflow.python.X` is reachable as an attribute once imported; import
    # on first access so `deeprec.python.X` behaves at least as well.
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return _importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from err
