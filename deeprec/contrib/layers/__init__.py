"""`deeprec.contrib.layers`: TF 1.x `tf.contrib.layers` feature columns over EmbeddingVariables."""

from deeprec.contrib.layers.python.layers.embedding_ops import (
    fused_safe_embedding_lookup_sparse,
    safe_embedding_lookup_sparse,
)
from deeprec.contrib.layers.python.layers.feature_column import (
    embedding_column,
    sparse_column_with_embedding,
)
from deeprec.contrib.layers.python.layers.feature_column_ops import input_from_feature_columns
