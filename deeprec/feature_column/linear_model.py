"""`linear_model` over feature columns, with EmbeddingVariable weights for EV columns."""

from tensorflow.python.feature_column import feature_column as fc_old
from tensorflow.python.ops import init_ops, partitioned_variables, variable_scope

from deeprec.embedding.get_variable import create_embedding_variable
from deeprec.embedding.lookup import fused_safe_lookups
from deeprec.feature_column.ev_columns import ev_source


def linear_model(features, feature_columns, units=1, sparse_combiner="sum",
                 weight_collections=None, trainable=True, cols_to_vars=None):
    """`tf.feature_column.linear_model`; a `categorical_column_with_embedding` gets an EV.

    The weights of a column over `categorical_column_with_embedding` are an
    EmbeddingVariable of dimension `units` (zeros for new ids), so the wide
    part of a Wide&Deep model needs no bucket count. Other columns are
    TensorFlow's.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_embedding("ad", dtype=tf.int64)
      >>> logits = tf.feature_column.linear_model(
      ...     {"ad": tf.SparseTensor([[0, 0]], tf.constant([3], tf.int64), [1, 1])}, [col])
      >>> logits.shape.as_list()
      [1, 1]
    """
    ev_columns = {c._var_scope_name: ev_source(c)  # pylint: disable=protected-access
                  for c in feature_columns if ev_source(c) is not None}

    def weights_getter(getter, name, *args, **kwargs):
        scope, _, leaf = name.rpartition("/")
        source = ev_columns.get(scope.rpartition("/")[2])
        if "embedding_dim" in kwargs or leaf != "weights" or source is None:
            return getter(name, *args, **kwargs)
        partitioner = (partitioned_variables.fixed_size_partitioner(source.partition_num)
                       if source.partition_num else None)
        return create_embedding_variable(
            name, embedding_dim=units, initializer=init_ops.zeros_initializer(),
            trainable=kwargs.get("trainable", True), collections=kwargs.get("collections"),
            partitioner=partitioner, ev_option=source.ev_option)

    with variable_scope.variable_scope(variable_scope.get_variable_scope(),
                                       custom_getter=weights_getter if ev_columns else None), \
            fused_safe_lookups():
        return fc_old.linear_model(features, feature_columns, units=units,
                                   sparse_combiner=sparse_combiner,
                                   weight_collections=weight_collections,
                                   trainable=trainable, cols_to_vars=cols_to_vars)
