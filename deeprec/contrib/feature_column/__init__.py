"""TF 1.x `tf.contrib.feature_column`: `sequence_input_layer` and sequence columns."""

from tensorflow.python.feature_column import feature_column as fc_old
from tensorflow.python.feature_column import feature_column_v2 as fc_v2
from tensorflow.python.framework import ops
from tensorflow.python.ops import array_ops, check_ops, variable_scope

from deeprec.feature_column.ev_columns import sequence_categorical_column_with_embedding

_STOCK_SEQUENCE = ("sequence_categorical_column_with_hash_bucket",
                   "sequence_categorical_column_with_identity",
                   "sequence_categorical_column_with_vocabulary_file",
                   "sequence_categorical_column_with_vocabulary_list",
                   "sequence_numeric_column")


def sequence_input_layer(features, feature_columns, weight_collections=None, trainable=True):
    """Concatenates sequence columns into a [batch, max_len, sum of dims] input.

    Returns `(input_layer, sequence_length)`; all columns must agree on each
    example's sequence length. Columns are processed in name order under the
    variable scope "sequence_input_layer".

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.sequence_categorical_column_with_embedding(
      ...     "clicks", dtype=tf.int64)
      >>> emb = tf.feature_column.embedding_column(col, dimension=3)
      >>> ids = {"clicks": tf.SparseTensor([[0, 0], [0, 1], [1, 0]],
      ...                                  tf.constant([4, 5, 6], tf.int64), [2, 2])}
      >>> out, length = tf.contrib.feature_column.sequence_input_layer(ids, [emb])
      >>> out.shape.as_list()
      [2, 2, 3]
    """
    columns = fc_old._normalize_feature_columns(feature_columns)  # pylint: disable=protected-access
    for column in columns:
        if not isinstance(column, (fc_old._SequenceDenseColumn,  # pylint: disable=protected-access
                                   fc_v2.SequenceDenseColumn)):
            raise ValueError("sequence_input_layer: every column must be a sequence dense "
                             f"column (embedding_column of a sequence column), got {column}")
    with variable_scope.variable_scope(None, default_name="sequence_input_layer",
                                       values=features.values()):
        builder = fc_old._LazyBuilder(features)  # pylint: disable=protected-access
        outputs, lengths = [], []
        for column in sorted(columns, key=lambda c: c.name):
            with variable_scope.variable_scope(None, default_name=column._var_scope_name):  # pylint: disable=protected-access
                dense, length = column._get_sequence_dense_tensor(  # pylint: disable=protected-access
                    builder, weight_collections=weight_collections, trainable=trainable)
                width = column._variable_shape.num_elements()  # pylint: disable=protected-access
                batch = array_ops.shape(dense)[0]
                outputs.append(array_ops.reshape(dense, [batch, -1, width]))
                lengths.append(length)
        fc_old._verify_static_batch_size_equality(outputs, columns)  # pylint: disable=protected-access
        with ops.control_dependencies([check_ops.assert_equal(
                lengths[0], length, message="sequence_input_layer: columns disagree on "
                "sequence lengths") for length in lengths[1:]]):
            sequence_length = array_ops.identity(lengths[0], name="sequence_length")
        return array_ops.concat(outputs, -1), sequence_length


def __getattr__(name):
    if name in _STOCK_SEQUENCE:
        import tensorflow as tf
        return getattr(tf.compat.v1.feature_column, name)
    raise AttributeError(f"module 'deeprec.contrib.feature_column' has no attribute '{name}'")


__all__ = ["sequence_input_layer", "sequence_categorical_column_with_embedding",
           *_STOCK_SEQUENCE]
