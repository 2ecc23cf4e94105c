"""`deeprec.python.feature_column`: `tensorflow.python.feature_column` with DeepRec's v2 module.

`feature_column_v2` is deeprec's (it adds `categorical_column_with_multihash`);
the other modules are TensorFlow's.
"""

import importlib as _importlib


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return _importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from err
