"""TensorFlow's `feature_column_v2` module plus DeepRec's multi-hash column.

DeepRec scripts import `categorical_column_with_multihash` from
`tensorflow.python.feature_column.feature_column_v2`; ported to
`deeprec.python.feature_column.feature_column_v2` they find it here, with
`embedding_column` extended to embed it. Every other name, public or
private, is TensorFlow's own object.
"""

from tensorflow.python.feature_column import feature_column_v2 as _stock

from deeprec.feature_column import multihash_column as _multihash_column

globals().update({k: getattr(_stock, k) for k in dir(_stock) if not k.startswith("__")})

# Bound after the copy above, which brought TensorFlow's embedding_column.
MultiHashCategoricalColumn = _multihash_column.MultiHashCategoricalColumn
MultiHashEmbeddingColumn = _multihash_column.MultiHashEmbeddingColumn
categorical_column_with_multihash = _multihash_column.categorical_column_with_multihash
embedding_column = _multihash_column.embedding_column


def __getattr__(name):
    return getattr(_stock, name)
