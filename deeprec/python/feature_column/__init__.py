"""`deeprec.python.feature_column`: `tensorflow.python.feature_column` with DeepRec's modules.

`feature_column_v2` (adds `categorical_column_with_multihash`) and
`sequence_feature_column` (adds `sequence_categorical_column_with_embedding`)
are deeprec's; the other modules are TensorFlow's.
"""

from deeprec.python import submodule_getattr

__getattr__ = submodule_getattr(__name__)
