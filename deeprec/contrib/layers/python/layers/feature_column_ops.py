"""TF 1.x `tf.contrib.layers.input_from_feature_columns` over deeprec's columns."""

from tensorflow.python.feature_column import feature_column as fc_old
from tensorflow.python.ops import variable_scope


def input_from_feature_columns(columns_to_tensors, feature_columns, weight_collections=None,
                               trainable=True, scope=None, cols_to_outs=None):
    """Concatenates the dense outputs of `feature_columns` (contrib API).

    Variables live under `scope` (default "input_from_feature_columns").
    `cols_to_outs`, if a dict, receives each column's output tensor.

    Example:
      >>> import deeprec as tf
      >>> from deeprec.contrib.layers.python.layers import feature_column, feature_column_ops
      >>> col = feature_column.sparse_column_with_embedding("c", dtype=tf.int64)
      >>> emb = feature_column.embedding_column(col, dimension=3)
      >>> ids = {"c": tf.SparseTensor([[0, 0]], tf.constant([5], tf.int64), [2, 1])}
      >>> feature_column_ops.input_from_feature_columns(ids, [emb]).shape.as_list()
      [2, 3]
    """
    with variable_scope.variable_scope(scope, default_name="input_from_feature_columns",
                                       values=columns_to_tensors.values()) as vs:
        return fc_old._internal_input_layer(  # pylint: disable=protected-access
            columns_to_tensors, feature_columns, weight_collections=weight_collections,
            trainable=trainable, scope=vs, cols_to_output_tensors=cols_to_outs)
