"""TensorFlow's `feature_column_v2` module plus DeepRec's columns.

DeepRec scripts import `categorical_column_with_multihash` or
`categorical_column_with_embedding` from
`tensorflow.python.feature_column.feature_column_v2`; ported to
`deeprec.python.feature_column.feature_column_v2` they find them here, with
deeprec's `embedding_column` and `shared_embedding_columns`. Every other
name, public or private, is TensorFlow's own object.
"""

from tensorflow.python.feature_column import feature_column_v2 as _stock

from deeprec.feature_column import ev_columns as _ev_columns
from deeprec.feature_column import multihash_column as _multihash_column

globals().update({k: getattr(_stock, k) for k in dir(_stock) if not k.startswith("__")})

# Bound after the copy above, which brought TensorFlow's embedding_column.
MultiHashCategoricalColumn = _multihash_column.MultiHashCategoricalColumn
MultiHashEmbeddingColumn = _multihash_column.MultiHashEmbeddingColumn
categorical_column_with_multihash = _multihash_column.categorical_column_with_multihash
categorical_column_with_embedding = _ev_columns.categorical_column_with_embedding
embedding_column = _ev_columns.embedding_column
shared_embedding_columns = _ev_columns.shared_embedding_columns


def __getattr__(name):
    return getattr(_stock, name)
