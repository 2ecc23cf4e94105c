"""Loads deeprec's TensorFlow op library (built from csrc/ by setup.py)."""

import glob
import os

import tensorflow as tf

from deeprec import _build_info

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load():
    if tf.__version__ != _build_info.TF_VERSION:
        raise ImportError(
            f"deeprec's op library was built against TensorFlow "
            f"{_build_info.TF_VERSION} but TensorFlow {tf.__version__} is "
            f"installed; reinstall deeprec (pip install .) in this environment.")
    candidates = glob.glob(os.path.join(_HERE, "_ops*.so"))
    if not candidates:
        raise ImportError(
            f"deeprec's op library (_ops*.so) is missing from {_HERE}; "
            "build it with `pip install .` or `python setup.py build_ext --inplace`.")
    return tf.load_op_library(candidates[0])


ops = _load()
