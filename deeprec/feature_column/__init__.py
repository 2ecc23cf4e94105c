"""`deeprec.feature_column`: `tf.compat.v1.feature_column` plus DeepRec's columns.

`categorical_column_with_multihash` (user guide §3.5.3) is deeprec's, and
`embedding_column` is TensorFlow's extended to embed it with a Multi-Hash
Variable; every other name forwards to `tf.compat.v1.feature_column`.
"""

import tensorflow as _tf

_STOCK = _tf.compat.v1.feature_column
globals().update({k: getattr(_STOCK, k) for k in dir(_STOCK) if not k.startswith("_")})

from deeprec.feature_column.multihash_column import (
    categorical_column_with_multihash,
    embedding_column,
)


def __getattr__(name):
    return getattr(_STOCK, name)
