"""`deeprec.feature_column`: `tf.compat.v1.feature_column` plus DeepRec's columns.

DeepRec's: `categorical_column_with_embedding` and
`sequence_categorical_column_with_embedding` (EmbeddingVariable tables),
`categorical_column_with_adaptive_embedding` (with `input_layer(...,
adaptive_mask_tensors=...)`) and `categorical_column_with_multihash`.
`embedding_column`, `shared_embedding_columns` (both with `do_fusion`) and
`linear_model` accept them and otherwise behave as TensorFlow's.
`group_embedding_column_scope` groups embedding columns for `input_layer` to
look up together. Every other name forwards to `tf.compat.v1.feature_column`.
"""

import tensorflow as _tf

from deeprec.feature_column.adaptive import categorical_column_with_adaptive_embedding
from deeprec.feature_column.ev_columns import (
    categorical_column_with_embedding,
    embedding_column,
    sequence_categorical_column_with_embedding,
    shared_embedding_columns,
)
from deeprec.feature_column.group_embedding import group_embedding_column_scope
from deeprec.feature_column.input_layer import input_layer
from deeprec.feature_column.linear_model import linear_model
from deeprec.feature_column.multihash_column import categorical_column_with_multihash

_STOCK = _tf.compat.v1.feature_column
globals().update({k: getattr(_STOCK, k) for k in dir(_STOCK)
                  if not k.startswith("_") and k not in globals()})


def __getattr__(name):
    return getattr(_STOCK, name)
