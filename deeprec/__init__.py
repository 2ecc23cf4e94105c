"""deeprec: DeepRec's features on stock TensorFlow 2.15.

`import deeprec as tf` gives the TF1 namespace (`tf.compat.v1`, graph mode)
plus DeepRec's additions, and `deeprec.X.Y` mirrors `tensorflow.X.Y` for every
module deeprec does not change.

Example:
  >>> import deeprec as tf
  >>> ev = tf.get_embedding_variable("init_doc", embedding_dim=2)
  >>> tf.executing_eagerly()
  False
"""

from deeprec._tf_check import check_tensorflow as _check_tensorflow

_check_tensorflow()

from deeprec._module_tree import install as _install_module_tree

_install_module_tree()

import tensorflow as _tf
from tensorflow.python.util import deprecation as _deprecation

with _deprecation.silence():
    _tf.compat.v1.disable_v2_behavior()

from tensorflow.compat.v1 import *

# The star import copies tf.compat.v1's __path__; deeprec's own submodules
# must still be found in this package.
__path__ = __spec__.submodule_search_locations

import importlib as _importlib

# The star import bound TF's `nn`, `train` and `feature_column`; replace
# them with deeprec's.
nn = _importlib.import_module("deeprec.nn")
train = _importlib.import_module("deeprec.train")
feature_column = _importlib.import_module("deeprec.feature_column")
contrib = _importlib.import_module("deeprec.contrib")
from deeprec.embedding import (
    CBFFilter,
    CounterFilter,
    EmbeddingVariable,
    EmbeddingVariableOption,
    GlobalStepEvict,
    InitializerOption,
    L2WeightEvict,
    MultiHashVariable,
    PartitionedEmbeddingVariable,
    get_embedding_variable,
    get_multihash_variable,
)
from deeprec.serving.export import _install_export_hook

_install_export_hook()


def __getattr__(name):
    return getattr(_tf.compat.v1, name)
