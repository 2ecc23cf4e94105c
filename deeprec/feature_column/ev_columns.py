"""Feature columns whose embedding tables are EmbeddingVariables (§3.1.2).

`categorical_column_with_embedding` maps a feature's values to int64 ids
without a vocabulary or a bucket count; `embedding_column` and
`shared_embedding_columns` over such a column (directly, or through
`weighted_categorical_column` / `sequence_categorical_column_with_embedding`)
create an EmbeddingVariable with the column's `ev_option` instead of a dense
`[num_buckets, dimension]` table. They work with the TF1 entry points
`input_layer`, `linear_model` and `sequence_input_layer`.
"""

import collections

from tensorflow.python.feature_column import feature_column as fc_old
from tensorflow.python.feature_column import feature_column_v2 as fc_v2
from tensorflow.python.framework import dtypes, ops
from tensorflow.python.framework import sparse_tensor as sparse_tensor_lib
from tensorflow.python.ops import (
    embedding_ops,
    math_ops,
    parsing_ops,
    partitioned_variables,
    string_ops,
)

from deeprec.embedding.get_variable import get_embedding_variable
from deeprec.embedding.options import EmbeddingVariableOption
from deeprec.feature_column import group_embedding, multihash_column
from deeprec.feature_column.keyed_column import KeyedCategoricalColumn

# String values become ids in [0, 2^63 - 1) by their 64-bit fingerprint.
_STRING_ID_SPACE = (1 << 63) - 1
# EVs have no bucket count; stock code that asks for one gets this stand-in,
# larger than any real table (it is never used to size a variable).
_NOMINAL_BUCKETS = 1 << 62


class EmbeddingCategoricalColumn(
        KeyedCategoricalColumn,
        fc_v2.CategoricalColumn,
        fc_old._CategoricalColumn,  # pylint: disable=protected-access
        collections.namedtuple("EmbeddingCategoricalColumn",
                               ("key", "dtype", "partition_num", "ev_option"))):
    """See `categorical_column_with_embedding`."""

    @property
    def parse_example_spec(self):
        # tf.Example stores integers as int64 only.
        dtype = dtypes.string if self.dtype == dtypes.string else dtypes.int64
        return {self.key: parsing_ops.VarLenFeature(dtype)}

    def ids(self, input_tensor):
        if not isinstance(input_tensor, sparse_tensor_lib.SparseTensor):
            raise ValueError(f"categorical_column_with_embedding('{self.key}'): the "
                             f"input must be a SparseTensor, got {input_tensor!r}")
        values = input_tensor.values
        if self.dtype == dtypes.string:
            if values.dtype != dtypes.string:
                raise ValueError(
                    f"categorical_column_with_embedding('{self.key}'): column dtype "
                    f"string needs string values, got {values.dtype.name}")
            ids = string_ops.string_to_hash_bucket_fast(values, _STRING_ID_SPACE,
                                                        name="fingerprint")
        else:
            if not values.dtype.is_integer:
                raise ValueError(
                    f"categorical_column_with_embedding('{self.key}'): column dtype "
                    f"{self.dtype.name} needs integer values, got {values.dtype.name}")
            ids = math_ops.cast(values, dtypes.int64)
        return sparse_tensor_lib.SparseTensor(input_tensor.indices, ids,
                                              input_tensor.dense_shape)

    def sparse_input(self, value):
        # The ignore value follows the column's dtype, so that values of the
        # wrong dtype reach `ids`, whose error names the column.
        ignore = "" if self.dtype == dtypes.string else -1
        return fc_v2._to_sparse_input_and_drop_ignore_values(  # pylint: disable=protected-access
            value, ignore_value=ignore)

    @property
    def num_buckets(self):
        return _NOMINAL_BUCKETS

    def get_config(self):
        raise NotImplementedError(
            f"categorical_column_with_embedding('{self.key}'): EmbeddingVariable "
            "columns cannot be serialized to a config (their ev_option is not)")

    def embedding_variable(self, name, dimension, initializer, trainable, collections):
        """Gets or creates this column's EmbeddingVariable in the current scope."""
        partitioner = (partitioned_variables.fixed_size_partitioner(self.partition_num)
                       if self.partition_num else None)
        return get_embedding_variable(
            name, embedding_dim=dimension, initializer=initializer, trainable=trainable,
            collections=collections, partitioner=partitioner, ev_option=self.ev_option)


def ev_source(column):
    """The EmbeddingCategoricalColumn under `column` (weighted/sequence), or None."""
    while column is not None:
        if isinstance(column, EmbeddingCategoricalColumn):
            return column
        column = getattr(column, "categorical_column", None)
    return None


def categorical_column_with_embedding(key, dtype=dtypes.string, partition_num=None,
                                      ev_option=None):
    """A categorical column whose ids index an EmbeddingVariable (no vocabulary).

    Integer values are ids as they are (cast to int64); string values become
    ids by a stable 64-bit fingerprint. Use it under `embedding_column`,
    `shared_embedding_columns` or `linear_model`.

    Args:
      key: The feature's key.
      dtype: `tf.string`, `tf.int64` or `tf.int32`.
      partition_num: Number of EV shards (None: one EV).
      ev_option: A `tf.EmbeddingVariableOption` (admission, eviction, initializer).

    Returns:
      An `EmbeddingCategoricalColumn`.

    Raises:
      ValueError: For an unsupported dtype, a non-positive partition_num or an
        ev_option of the wrong type.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_embedding("user", dtype=tf.int64)
      >>> emb = tf.feature_column.embedding_column(col, dimension=4)
      >>> out = tf.feature_column.input_layer(
      ...     {"user": tf.SparseTensor([[0, 0], [1, 0]], tf.constant([7, 9], tf.int64),
      ...                              [2, 1])}, [emb])
      >>> out.shape.as_list()
      [2, 4]
    """
    dtype = dtypes.as_dtype(dtype)
    if dtype not in (dtypes.string, dtypes.int64, dtypes.int32):
        raise ValueError(f"categorical_column_with_embedding('{key}'): dtype must be "
                         f"tf.string, tf.int64 or tf.int32, got {dtype.name}")
    if partition_num is not None and (isinstance(partition_num, bool)
                                      or not isinstance(partition_num, int)
                                      or partition_num < 1):
        raise ValueError(f"categorical_column_with_embedding('{key}'): partition_num "
                         f"must be None or a positive int, got {partition_num!r}")
    if ev_option is None:
        ev_option = EmbeddingVariableOption()
    elif not isinstance(ev_option, EmbeddingVariableOption):
        raise ValueError(f"categorical_column_with_embedding('{key}'): ev_option must "
                         f"be a tf.EmbeddingVariableOption, got {ev_option!r}")
    return EmbeddingCategoricalColumn(key, dtype, partition_num, ev_option)


def sequence_categorical_column_with_embedding(key, dtype=dtypes.string, partition_num=None,
                                               ev_option=None):
    """`categorical_column_with_embedding` for sequence features.

    Use with `embedding_column` and `tf.contrib.feature_column.sequence_input_layer`.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.sequence_categorical_column_with_embedding(
      ...     "clicks", dtype=tf.int64)
      >>> col.name
      'clicks'
    """
    return fc_v2.SequenceCategoricalColumn(categorical_column_with_embedding(
        key, dtype=dtype, partition_num=partition_num, ev_option=ev_option))


def _trainable(column, trainable):
    # The TF1 entry points pass trainable=None to mean "as the column says".
    return bool(column.trainable and (trainable is None or trainable))


def lookup(column, embedding_weights, sparse_tensors):
    """`column`'s embedding lookup in `embedding_weights`: grouped if it was built
    in a group_embedding_column_scope, fused if it asks for it."""
    if getattr(column, "group_name", None) is not None:
        return group_embedding.lookup(column, embedding_weights, sparse_tensors)
    if column.do_fusion:
        from deeprec.nn import fused_safe_embedding_lookup_sparse
        lookup_sparse = fused_safe_embedding_lookup_sparse
    else:
        lookup_sparse = embedding_ops.safe_embedding_lookup_sparse
    return lookup_sparse(embedding_weights, sparse_tensors.id_tensor,
                         sparse_tensors.weight_tensor, combiner=column.combiner,
                         name=f"{column.name}_weights", max_norm=column.max_norm)


class FusibleEmbeddingColumn(fc_v2.EmbeddingColumn):
    """An `embedding_column` that can look up with the fused ops (`do_fusion`) or
    with its group (`group_name`, see group_embedding_column_scope)."""

    do_fusion = False
    group_name = None

    def _get_dense_tensor_internal_helper(self, sparse_tensors, embedding_weights):
        if not self.do_fusion and self.group_name is None:
            return super()._get_dense_tensor_internal_helper(sparse_tensors,
                                                             embedding_weights)
        group_embedding.restore_from_checkpoint(self, embedding_weights)
        return lookup(self, embedding_weights, sparse_tensors)


class EmbeddingVariableColumn(FusibleEmbeddingColumn):
    """An `embedding_column` whose table is the categorical column's EmbeddingVariable."""

    def _old_get_dense_tensor_internal(self, sparse_tensors, weight_collections, trainable):
        if weight_collections and ops.GraphKeys.GLOBAL_VARIABLES not in weight_collections:
            weight_collections.append(ops.GraphKeys.GLOBAL_VARIABLES)
        table = ev_source(self.categorical_column).embedding_variable(
            "embedding_weights", self.dimension, self.initializer,
            _trainable(self, trainable), weight_collections)
        return lookup(self, table, sparse_tensors)

    def create_state(self, state_manager):
        raise NotImplementedError(
            f"embedding_column('{self.name}'): EmbeddingVariable columns work with "
            "tf.feature_column.input_layer / linear_model, not Keras DenseFeatures")


class SharedEmbeddingVariableColumn(fc_old._SharedEmbeddingColumn):  # pylint: disable=protected-access
    """One of `shared_embedding_columns` sharing an EmbeddingVariable."""

    do_fusion = False

    def _get_dense_tensor_internal(self, inputs, weight_collections=None, trainable=None):
        with ops.name_scope(None, default_name=self.name):
            sparse_tensors = self.categorical_column._get_sparse_tensors(  # pylint: disable=protected-access
                inputs, weight_collections=weight_collections, trainable=trainable)
            shared = ops.get_collection(self.shared_embedding_collection_name)
            if len(shared) > 1:
                raise ValueError(
                    f"shared_embedding_columns: collection "
                    f"'{self.shared_embedding_collection_name}' must hold one variable, "
                    f"holds {len(shared)}")
            if shared:
                table = shared[0]
            else:
                table = ev_source(self.categorical_column).embedding_variable(
                    "embedding_weights", self.dimension, self.initializer,
                    _trainable(self, trainable), weight_collections)
                ops.add_to_collection(self.shared_embedding_collection_name, table)
            return lookup(self, table, sparse_tensors)


def embedding_column(categorical_column, dimension, combiner="mean", initializer=None,
                     ckpt_to_load_from=None, tensor_name_in_ckpt=None, max_norm=None,
                     trainable=True, use_safe_embedding_lookup=True, do_fusion=False):
    """`tf.feature_column.embedding_column`, with EmbeddingVariables and `do_fusion`.

    Over a `categorical_column_with_embedding` (possibly weighted or
    sequence) the table is an EmbeddingVariable named `embedding_weights`
    in the column's scope; over a `categorical_column_with_multihash` it is a
    Multi-Hash Variable (see `multihash_column.embedding_column`); otherwise
    it is TensorFlow's column. With `do_fusion=True` the lookup uses
    `tf.nn.fused_safe_embedding_lookup_sparse`. Inside a
    `group_embedding_column_scope`, `input_layer` looks the column up with
    the other columns of its group.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_embedding("item", dtype=tf.string)
      >>> emb = tf.feature_column.embedding_column(col, dimension=8, do_fusion=True)
      >>> emb.do_fusion
      True
    """
    api = f"embedding_column('{categorical_column.name}')"
    group = group_embedding.current_group()
    group_embedding.check_groupable(api, _ungroupable(categorical_column, do_fusion))
    if multihash_column.multihash_source(categorical_column) is not None:
        if do_fusion:
            raise ValueError(f"embedding_column('{categorical_column.name}'): do_fusion is "
                             "not supported for multi-hash columns")
        return multihash_column.embedding_column(
            categorical_column, dimension, combiner=combiner, initializer=initializer,
            ckpt_to_load_from=ckpt_to_load_from, tensor_name_in_ckpt=tensor_name_in_ckpt,
            max_norm=max_norm, trainable=trainable,
            use_safe_embedding_lookup=use_safe_embedding_lookup)
    stock = fc_v2.embedding_column(
        categorical_column, dimension, combiner=combiner, initializer=initializer,
        ckpt_to_load_from=ckpt_to_load_from, tensor_name_in_ckpt=tensor_name_in_ckpt,
        max_norm=max_norm, trainable=trainable,
        use_safe_embedding_lookup=use_safe_embedding_lookup)
    if ev_source(categorical_column) is None:
        if not do_fusion and group is None:
            return stock
        column = FusibleEmbeddingColumn(*stock)
    else:
        if ckpt_to_load_from is not None:
            raise ValueError(f"embedding_column('{categorical_column.name}'): "
                             "ckpt_to_load_from is not supported for EmbeddingVariable "
                             "columns; restore them with a Saver")
        column_type = getattr(ev_source(categorical_column), "embedding_column_type",
                              EmbeddingVariableColumn)
        column = column_type(*stock)
    column.do_fusion = bool(do_fusion)
    column.group_name = group
    return column


def _ungroupable(categorical_column, do_fusion) -> str | None:
    """Why an embedding column over `categorical_column` cannot be grouped, or None."""
    if multihash_column.multihash_source(categorical_column) is not None:
        return "a multi-hash embedding column"
    if isinstance(categorical_column, (fc_v2.SequenceCategoricalColumn,
                                       fc_old._SequenceCategoricalColumn)):  # pylint: disable=protected-access
        return "a sequence embedding column"
    source = ev_source(categorical_column)
    if source is not None and hasattr(source, "embedding_column_type"):
        return "an adaptive embedding column"
    if do_fusion:
        return "a column with do_fusion=True"
    return None


def shared_embedding_columns(categorical_columns, dimension, combiner="mean", initializer=None,
                             shared_embedding_collection_name=None, ckpt_to_load_from=None,
                             tensor_name_in_ckpt=None, max_norm=None, trainable=True,
                             use_safe_embedding_lookup=True, do_fusion=False):
    """`tf.feature_column.shared_embedding_columns`, sharing one EmbeddingVariable.

    When the columns are `categorical_column_with_embedding` columns, they
    share one EmbeddingVariable (created with the first column's ev_option).

    Example:
      >>> import deeprec as tf
      >>> a = tf.feature_column.categorical_column_with_embedding("a", dtype=tf.int64)
      >>> b = tf.feature_column.categorical_column_with_embedding("b", dtype=tf.int64)
      >>> [c.name for c in tf.feature_column.shared_embedding_columns([a, b], 4)]
      ['a_shared_embedding', 'b_shared_embedding']
    """
    group_embedding.check_groupable("shared_embedding_columns",
                                    "a shared embedding column")
    stock = fc_v2.shared_embedding_columns(
        categorical_columns, dimension, combiner=combiner, initializer=initializer,
        shared_embedding_collection_name=shared_embedding_collection_name,
        ckpt_to_load_from=ckpt_to_load_from, tensor_name_in_ckpt=tensor_name_in_ckpt,
        max_norm=max_norm, trainable=trainable,
        use_safe_embedding_lookup=use_safe_embedding_lookup)
    sources = [ev_source(c) for c in categorical_columns]
    if all(s is None for s in sources) and not do_fusion:
        return stock
    if any(s is None for s in sources) and not all(s is None for s in sources):
        raise ValueError("shared_embedding_columns: either all or none of the columns must "
                         "be categorical_column_with_embedding columns")
    if ckpt_to_load_from is not None and sources[0] is not None:
        raise ValueError("shared_embedding_columns: ckpt_to_load_from is not supported "
                         "for EmbeddingVariable columns")
    if sources[0] is None:
        raise ValueError("shared_embedding_columns: do_fusion needs "
                         "categorical_column_with_embedding columns")
    columns = [SharedEmbeddingVariableColumn(*c) for c in stock]
    for column in columns:
        column.do_fusion = bool(do_fusion)
    return columns
