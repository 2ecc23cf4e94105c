"""Adaptive Embedding (§3.4): a static hashed table and an EV behind one column.

Per id, a mask chooses the table: ids masked 1 read (and train) the static
`[hash_bucket_size, dimension]` variable at the id's hash bucket, where ids
may collide; ids masked 0 read and train the column's EmbeddingVariable.
The masks are passed to `tf.feature_column.input_layer(...,
adaptive_mask_tensors={key: mask})`, one int entry per id (per value of the
feature's SparseTensor, in order).
"""

import contextlib
import threading

from tensorflow.python.framework import dtypes, ops
from tensorflow.python.ops import (
    array_ops,
    check_ops,
    data_flow_ops,
    embedding_ops,
    math_ops,
    string_ops,
    variable_scope,
)

from deeprec.embedding import lookup as ev_lookup
from deeprec.embedding.options import EmbeddingVariableOption
from deeprec.feature_column import ev_columns

_masks = threading.local()


class AdaptiveEmbeddingCategoricalColumn(ev_columns.EmbeddingCategoricalColumn):
    """See `categorical_column_with_adaptive_embedding`."""

    hash_bucket_size = None

    @property
    def embedding_column_type(self):
        return AdaptiveEmbeddingColumn

    def static_buckets(self, ids):
        """The static table's rows of int64 `ids` (TensorFlow's hash-bucket rule)."""
        return string_ops.string_to_hash_bucket_fast(
            string_ops.as_string(ids), self.hash_bucket_size, name="static_bucket")


def categorical_column_with_adaptive_embedding(key, hash_bucket_size, dtype=dtypes.string,
                                               partition_num=None, ev_option=None):
    """A column whose ids live in a static hashed table or an EV, chosen per id.

    Args:
      key: The feature's key.
      hash_bucket_size: Rows of the static table (> 0). An id's row is
        `categorical_column_with_hash_bucket`'s bucket of the id's int64 value.
      dtype: `tf.string`, `tf.int64` or `tf.int32` (strings become int64 ids
        by fingerprint, as in `categorical_column_with_embedding`).
      partition_num: EV shards (None: one).
      ev_option: A `tf.EmbeddingVariableOption` for the EV.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_adaptive_embedding(
      ...     "c", hash_bucket_size=100, dtype=tf.int64)
      >>> emb = tf.feature_column.embedding_column(col, dimension=3)
      >>> ids = {"c": tf.SparseTensor([[0, 0], [1, 0]], tf.constant([7, 8], tf.int64), [2, 1])}
      >>> out = tf.feature_column.input_layer(
      ...     ids, [emb], adaptive_mask_tensors={"c": tf.constant([1, 0])})
      >>> out.shape.as_list()
      [2, 3]
    """
    if isinstance(hash_bucket_size, bool) or not isinstance(hash_bucket_size, int) \
            or hash_bucket_size < 1:
        raise ValueError(f"categorical_column_with_adaptive_embedding('{key}'): "
                         f"hash_bucket_size must be a positive int, got {hash_bucket_size!r}")
    base = ev_columns.categorical_column_with_embedding(
        key, dtype=dtype, partition_num=partition_num,
        ev_option=ev_option or EmbeddingVariableOption())
    column = AdaptiveEmbeddingCategoricalColumn(*base)
    column.hash_bucket_size = hash_bucket_size
    return column


class AdaptiveEmbeddingColumn(ev_columns.EmbeddingVariableColumn):
    """An `embedding_column` over a `categorical_column_with_adaptive_embedding`."""

    def _old_get_dense_tensor_internal(self, sparse_tensors, weight_collections, trainable):
        source = ev_columns.ev_source(self.categorical_column)
        mask = getattr(_masks, "value", {}).get(source.key)
        if mask is None:
            raise ValueError(
                f"embedding_column('{self.name}'): an adaptive embedding column needs its "
                f"mask: input_layer(..., adaptive_mask_tensors={{'{source.key}': mask}})")
        if weight_collections and ops.GraphKeys.GLOBAL_VARIABLES not in weight_collections:
            weight_collections.append(ops.GraphKeys.GLOBAL_VARIABLES)
        trainable = ev_columns._trainable(self, trainable)  # pylint: disable=protected-access
        static = variable_scope.get_variable(
            "static_embedding_weights", shape=(source.hash_bucket_size, self.dimension),
            dtype=dtypes.float32, initializer=self.initializer, trainable=trainable,
            collections=weight_collections)
        dynamic = source.embedding_variable("embedding_weights", self.dimension,
                                            self.initializer, trainable, weight_collections)
        return _adaptive_lookup(self, static, dynamic, sparse_tensors, mask)


def _adaptive_lookup(column, static, dynamic, sparse_tensors, mask):
    """Combines, per row, the static rows of masked ids and the EV rows of the rest."""
    ids = sparse_tensors.id_tensor
    values = ids.values
    n = array_ops.shape(values)[0]
    source = ev_columns.ev_source(column.categorical_column)
    mask = ops.convert_to_tensor(mask, name="adaptive_mask")
    message = f"adaptive_mask_tensors['{source.key}'] must have one entry per id"
    if mask.shape.num_elements() is not None and values.shape.num_elements() is not None \
            and mask.shape.num_elements() != values.shape.num_elements():
        raise ValueError(f"{message}: {mask.shape.num_elements()} entries for "
                         f"{values.shape.num_elements()} ids")
    with ops.control_dependencies([check_ops.assert_equal(
            array_ops.size(mask), n, message=message)]):
        use_static = math_ops.not_equal(array_ops.reshape(mask, [-1]), 0)
    positions = math_ops.range(n)
    static_pos = array_ops.boolean_mask(positions, use_static)
    dynamic_pos = array_ops.boolean_mask(positions, math_ops.logical_not(use_static))
    static_rows = embedding_ops.embedding_lookup(
        static, source.static_buckets(
            array_ops.gather(values, static_pos)))
    dynamic_rows = embedding_ops.embedding_lookup(dynamic, array_ops.gather(values,
                                                                            dynamic_pos))
    rows = data_flow_ops.dynamic_stitch([static_pos, dynamic_pos], [static_rows, dynamic_rows])
    weights = sparse_tensors.weight_tensor
    segments = math_ops.cast(ids.indices[:, 0], dtypes.int32)
    return ev_lookup.combine_rows(rows, segments, None if weights is None else weights.values,
                                  column.combiner, math_ops.cast(ids.dense_shape[0],
                                                                 dtypes.int32))


@contextlib.contextmanager
def adaptive_masks(masks):
    """Makes `masks` ({feature key: mask}) visible to adaptive columns in this thread."""
    previous = getattr(_masks, "value", None)
    _masks.value = dict(masks or {})
    try:
        yield
    finally:
        _masks.value = previous
