"""`input_layer`: TensorFlow's, plus the masks of adaptive embedding columns."""

from tensorflow.python.feature_column import feature_column as fc_old

from deeprec.feature_column.adaptive import adaptive_masks


def input_layer(features, feature_columns, weight_collections=None, trainable=True,
                cols_to_vars=None, cols_to_output_tensors=None, adaptive_mask_tensors=None):
    """`tf.feature_column.input_layer`, plus the masks of adaptive embedding columns.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_identity("c", 4)
      >>> out = tf.feature_column.input_layer(
      ...     {"c": tf.constant([[1], [2]])}, [tf.feature_column.indicator_column(col)])
      >>> out.shape.as_list()
      [2, 4]
    """
    with adaptive_masks(adaptive_mask_tensors):
        return fc_old.input_layer(features, feature_columns,
                                  weight_collections=weight_collections, trainable=trainable,
                                  cols_to_vars=cols_to_vars,
                                  cols_to_output_tensors=cols_to_output_tensors)
