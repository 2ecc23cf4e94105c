"""TF 1.x `tf.contrib.layers` feature columns with EmbeddingVariables (§3.1.2).

The columns are deeprec's `tf.feature_column` ones, so they also work with
`tf.feature_column.input_layer`.
"""

from tensorflow.python.framework import dtypes

from deeprec.embedding.options import EmbeddingVariableOption, GlobalStepEvict
from deeprec.feature_column import ev_columns


def sparse_column_with_embedding(column_name, dtype=dtypes.string, partition_num=None,
                                 steps_to_live=None, init_data_source=None,
                                 ht_partition_num=1000, evconfig=None, ev_option=None):
    """A sparse id column backed by an EmbeddingVariable (contrib API).

    `steps_to_live` adds `tf.GlobalStepEvict(steps_to_live)` to `ev_option`.
    `init_data_source`, `ht_partition_num` and `evconfig` are accepted for
    compatibility: DeepRec 1.15 ignores the latter two; a non-None
    `init_data_source` is rejected.

    Example:
      >>> import deeprec as tf
      >>> from deeprec.contrib.layers.python.layers import feature_column
      >>> col = feature_column.sparse_column_with_embedding("col_emb", dtype=tf.int64)
      >>> col.name
      'col_emb'
    """
    del ht_partition_num, evconfig
    if init_data_source is not None:
        raise ValueError(f"sparse_column_with_embedding('{column_name}'): init_data_source "
                         "is not supported")
    ev_option = ev_option or EmbeddingVariableOption()
    if steps_to_live is not None:
        ev_option = EmbeddingVariableOption(
            ht_type=ev_option.ht_type, ht_partition_num=ev_option.ht_partition_num,
            evict_option=GlobalStepEvict(steps_to_live=steps_to_live),
            filter_option=ev_option.filter_option, init_option=ev_option.init_option)
    return ev_columns.categorical_column_with_embedding(
        column_name, dtype=dtype, partition_num=partition_num, ev_option=ev_option)


def embedding_column(sparse_id_column, dimension, combiner="mean", initializer=None,
                     ckpt_to_load_from=None, tensor_name_in_ckpt=None, max_norm=None,
                     trainable=True, do_fusion=False):
    """An embedding column over a contrib sparse column (contrib API).

    Example:
      >>> import deeprec as tf
      >>> from deeprec.contrib.layers.python.layers import feature_column
      >>> col = feature_column.sparse_column_with_embedding("c", dtype=tf.int64)
      >>> feature_column.embedding_column(col, dimension=3).dimension
      3
    """
    return ev_columns.embedding_column(
        sparse_id_column, dimension, combiner=combiner, initializer=initializer,
        ckpt_to_load_from=ckpt_to_load_from, tensor_name_in_ckpt=tensor_name_in_ckpt,
        max_norm=max_norm, trainable=trainable, do_fusion=do_fusion)
