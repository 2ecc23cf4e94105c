"""`input_layer`: TensorFlow's, plus the masks of adaptive embedding columns and
the group lookups of columns built in a group_embedding_column_scope."""

from tensorflow.python.feature_column import feature_column as fc_old

from deeprec.feature_column import group_embedding
from deeprec.feature_column.adaptive import adaptive_masks


def input_layer(features, feature_columns, weight_collections=None, trainable=True,
                cols_to_vars=None, cols_to_output_tensors=None, adaptive_mask_tensors=None):
    """`tf.feature_column.input_layer`, plus the masks of adaptive embedding columns.

    Embedding columns built in a `group_embedding_column_scope` are looked up
    together, one `tf.nn.group_embedding_lookup_sparse` per group; the
    output is the same, column by column, as without the scope.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_identity("c", 4)
      >>> out = tf.feature_column.input_layer(
      ...     {"c": tf.constant([[1], [2]])}, [tf.feature_column.indicator_column(col)])
      >>> out.shape.as_list()
      [2, 4]
    """
    with adaptive_masks(adaptive_mask_tensors):
        columns = fc_old._normalize_feature_columns(feature_columns)  # pylint: disable=protected-access
        if group_embedding.has_grouped_columns(columns):
            return group_embedding.grouped_input_layer(
                features, columns, weight_collections=weight_collections,
                trainable=trainable, cols_to_vars=cols_to_vars,
                cols_to_output_tensors=cols_to_output_tensors)
        return fc_old.input_layer(features, columns,
                                  weight_collections=weight_collections, trainable=trainable,
                                  cols_to_vars=cols_to_vars,
                                  cols_to_output_tensors=cols_to_output_tensors)
