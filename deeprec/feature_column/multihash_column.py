"""`categorical_column_with_multihash`: a categorical column embedded by a Multi-Hash Variable.

User guide §3.5.3. The column maps each input value to a bucket in
`[0, rows_q * rows_r)`: integers by floor modulo, strings by
`tf.strings.to_hash_bucket_fast`. `embedding_column` over it looks the buckets
up in a `MultiHashVariable` (see deeprec/embedding/multihash.py) whose tables
have `rows_q` and `rows_r` rows, so each bucket has its own pair of rows.

`embedding_column` here is TensorFlow's, extended: for a multi-hash column
(or a `weighted_categorical_column` over one) its `dimension` is a single
length, combined by "add" or "mult", or one length per table, combined by
"concat" (the guide's rule for `dims` of `get_multihash_variable`).
"""

from __future__ import annotations

import collections
import math
import numbers
from collections.abc import Sequence
from typing import Any

from tensorflow.python.feature_column import feature_column as fc_old
from tensorflow.python.feature_column import feature_column_v2 as fc_v2
from tensorflow.python.feature_column import serialization
from tensorflow.python.framework import dtypes, ops, tensor_shape
from tensorflow.python.framework import sparse_tensor as sparse_tensor_lib
from tensorflow.python.ops import embedding_ops, init_ops, math_ops, parsing_ops, string_ops
from tensorflow.python.training import checkpoint_utils

from deeprec.embedding import multihash
from deeprec.feature_column.keyed_column import KeyedCategoricalColumn

__all__ = ["MultiHashCategoricalColumn", "MultiHashEmbeddingColumn",
           "categorical_column_with_multihash", "embedding_column"]

_WEIGHTS = "embedding_weights"


def _is_positive_int(value: Any) -> bool:
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value > 0)


@serialization.register_feature_column
class MultiHashCategoricalColumn(
        KeyedCategoricalColumn,
        fc_v2.CategoricalColumn,
        fc_old._CategoricalColumn,  # Lets tf.compat.v1.feature_column.input_layer use it.
        collections.namedtuple("MultiHashCategoricalColumn",
                               ("key", "dims", "complementary_strategy", "operation",
                                "dtype"))):
    """See `categorical_column_with_multihash`."""

    @property
    def num_buckets(self) -> int:
        """Distinct ids: the product of the tables' rows."""
        return self.dims[0] * self.dims[1]

    @property
    def parse_example_spec(self) -> dict:
        return {self.key: parsing_ops.VarLenFeature(self.dtype)}

    def ids(self, input_tensor) -> sparse_tensor_lib.SparseTensor:
        """The values mapped to buckets."""
        where = f"categorical_column_with_multihash({self.key!r})"
        if not isinstance(input_tensor, sparse_tensor_lib.SparseTensor):
            raise ValueError(f"{where}: input must be a SparseTensor, "
                             f"got {type(input_tensor).__name__}")
        if input_tensor.dtype.is_integer != self.dtype.is_integer or not (
                input_tensor.dtype.is_integer or input_tensor.dtype == dtypes.string):
            raise ValueError(f"{where}: input dtype {input_tensor.dtype.name} does not match "
                             f"the column dtype {self.dtype.name}")
        if self.dtype == dtypes.string:
            buckets = string_ops.string_to_hash_bucket_fast(
                input_tensor.values, self.num_buckets, name="multihash_buckets")
        else:
            buckets = math_ops.floormod(math_ops.cast(input_tensor.values, dtypes.int64),
                                        self.num_buckets, name="multihash_buckets")
        return sparse_tensor_lib.SparseTensor(input_tensor.indices, buckets,
                                              input_tensor.dense_shape)

    def get_config(self) -> dict:
        config = dict(zip(self._fields, self, strict=True))
        config["dtype"] = self.dtype.name
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, columns_by_name=None):
        del custom_objects, columns_by_name
        fc_v2._check_config_keys(config, cls._fields)
        kwargs = fc_v2._standardize_and_copy_config(config)
        kwargs["dtype"] = dtypes.as_dtype(config["dtype"])
        kwargs["dims"] = tuple(config["dims"])
        return cls(**kwargs)


def categorical_column_with_multihash(key: str, dims: Sequence[int],
                                      complementary_strategy: str = "Q-R",
                                      operation: str | None = None,
                                      dtype: Any = dtypes.int64) -> MultiHashCategoricalColumn:
    """A categorical column whose embedding is a Multi-Hash Variable (guide §3.5.3).

    Integer values `x` map to bucket `x mod (rows_q * rows_r)` (floor modulo),
    string values to `tf.strings.to_hash_bucket_fast(x, rows_q * rows_r)`.
    Wrapped in `tf.feature_column.embedding_column`, bucket `y` is embedded by
    row `y // rows_r` of a `[rows_q, dim_q]` table combined with row
    `y mod rows_r` of a `[rows_r, dim_r]` table.

    Args:
      key: The feature name.
      dims: `(rows_q, rows_r)`, the rows of the quotient and remainder tables.
      complementary_strategy: "Q-R", the only strategy.
      operation: "add", "mult", "concat", or None to follow the embedding
        column's `dimension`: "add" for a single length, "concat" for one
        length per table.
      dtype: The input dtype: an integer type (default int64) or `tf.string`.

    Returns:
      A `MultiHashCategoricalColumn`.

    Raises:
      ValueError: For an unsupported strategy or operation, `dims` that are
        not two positive integers, or an unsupported dtype.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_multihash("item", dims=(3, 4))
      >>> col.num_buckets
      12
      >>> emb = tf.feature_column.embedding_column(col, dimension=(2, 3))
      >>> ids = tf.SparseTensor(indices=[[0, 0], [1, 0]], values=tf.constant([5, 11], tf.int64),
      ...                       dense_shape=[2, 1])
      >>> tf.feature_column.input_layer({"item": ids}, [emb]).shape.as_list()
      [2, 5]
    """
    where = f"categorical_column_with_multihash({key!r})"
    if not isinstance(key, str) or not key:
        raise ValueError(f"categorical_column_with_multihash: key must be a non-empty "
                         f"string, got {key!r}")
    multihash.check_strategy(complementary_strategy, multihash.QR_NUM_PARTITIONS, where)
    if (isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence)
            or len(dims) != multihash.QR_NUM_PARTITIONS
            or not all(_is_positive_int(d) for d in dims)):
        raise ValueError(f"{where}: dims must be {multihash.QR_NUM_PARTITIONS} positive "
                         f"integers (rows of the quotient and remainder tables), got {dims!r}")
    if dims[0] * dims[1] > dtypes.int64.max:
        raise ValueError(f"{where}: dims {tuple(dims)!r} give more ids than int64 holds")
    if operation is not None:
        multihash.check_operation(operation, where)
    dtype = dtypes.as_dtype(dtype)
    if not (dtype.is_integer or dtype == dtypes.string):
        raise ValueError(f"{where}: dtype must be an integer type or tf.string, "
                         f"got {dtype.name}")
    return MultiHashCategoricalColumn(key, tuple(int(d) for d in dims), complementary_strategy,
                                      operation, dtype)


def multihash_source(column) -> MultiHashCategoricalColumn | None:
    """The multi-hash column that supplies `column`'s ids, if any."""
    if isinstance(column, MultiHashCategoricalColumn):
        return column
    if isinstance(column, fc_v2.WeightedCategoricalColumn) and isinstance(
            column.categorical_column, MultiHashCategoricalColumn):
        return column.categorical_column
    return None


def _resolve(source: MultiHashCategoricalColumn, dimension: Any) -> tuple[Any, str]:
    """Checks `dimension` against the column's operation; returns both, normalized."""
    where = f"embedding_column({source.key!r})"
    if _is_positive_int(dimension):
        dims = (int(dimension),)
    elif (not isinstance(dimension, (str, bytes)) and isinstance(dimension, Sequence)
          and len(dimension) in (1, multihash.QR_NUM_PARTITIONS)
          and all(_is_positive_int(d) for d in dimension)):
        dims = tuple(int(d) for d in dimension)
    else:
        raise ValueError(f"{where}: dimension must be a positive integer or "
                         f"{multihash.QR_NUM_PARTITIONS} positive integers (one per table), "
                         f"got {dimension!r}")
    operation = source.operation
    if operation is None:
        operation = "add" if len(dims) == 1 else "concat"
    if len(dims) == 1 and operation == "concat":
        raise ValueError(f"{where}: operation 'concat' needs one dimension per table, "
                         f"got dimension {dimension!r}")
    if len(dims) > 1 and operation != "concat":
        raise ValueError(f"{where}: dimension {dimension!r} gives one length per table, "
                         f"which needs operation 'concat', got {operation!r}")
    return (dims[0] if len(dims) == 1 else dims), operation


@serialization.register_feature_column
class MultiHashEmbeddingColumn(fc_v2.EmbeddingColumn):
    """An `EmbeddingColumn` whose table is a `MultiHashVariable`.

    `dimension` is an int ("add"/"mult") or a per-table tuple ("concat").
    Works with `tf.feature_column.input_layer` and with `DenseFeatures`.
    """

    @property
    def _source(self) -> MultiHashCategoricalColumn:
        return multihash_source(self.categorical_column)

    @property
    def operation(self) -> str:
        """The operation that combines the tables' rows."""
        return _resolve(self._source, self.dimension)[1]

    @property
    def table_shapes(self) -> list[tuple[int, int]]:
        """`(rows, dim)` of the quotient and remainder tables."""
        rows = self._source.dims
        dims = self.dimension if isinstance(self.dimension, tuple) else (self.dimension,) * 2
        return list(zip(rows, dims, strict=True))

    @property
    def variable_shape(self) -> tensor_shape.TensorShape:
        if isinstance(self.dimension, tuple):
            return tensor_shape.TensorShape([sum(self.dimension)])
        return tensor_shape.TensorShape([self.dimension])

    def create_state(self, state_manager) -> None:
        """Creates the tables for `DenseFeatures`-style state managers."""
        for table_name, shape in zip(multihash.TABLE_NAMES, self.table_shapes, strict=True):
            state_manager.create_variable(
                self, name=f"{_WEIGHTS}/{table_name}", shape=shape, dtype=dtypes.float32,
                trainable=self.trainable, use_resource=True, initializer=self.initializer)

    def _get_dense_tensor_internal(self, sparse_tensors, state_manager):
        tables = [state_manager.get_variable(self, name=f"{_WEIGHTS}/{table_name}")
                  for table_name in multihash.TABLE_NAMES]
        weights = multihash.MultiHashVariable(f"{self.name}/{_WEIGHTS}", tables,
                                              self.operation,
                                              self._source.complementary_strategy)
        return self._get_dense_tensor_internal_helper(sparse_tensors, weights)

    def _old_get_dense_tensor_internal(self, sparse_tensors, weight_collections, trainable):
        if weight_collections and ops.GraphKeys.GLOBAL_VARIABLES not in weight_collections:
            weight_collections.append(ops.GraphKeys.GLOBAL_VARIABLES)
        weights = multihash.create_multihash_variable(
            _WEIGHTS, self.table_shapes, self.operation, self._source.complementary_strategy,
            dtype=dtypes.float32, initializer=self.initializer,
            trainable=self.trainable and trainable, collections=weight_collections)
        return self._get_dense_tensor_internal_helper(sparse_tensors, weights)

    def _get_dense_tensor_internal_helper(self, sparse_tensors, embedding_weights):
        if self.ckpt_to_load_from is not None:
            # tensor_name_in_ckpt names a multi-hash variable in the checkpoint:
            # its tables are saved as <name>/quotient and <name>/remainder.
            checkpoint_utils.init_from_checkpoint(self.ckpt_to_load_from, {
                f"{self.tensor_name_in_ckpt}/{table_name}": _restorable(table)
                for table_name, table in zip(multihash.TABLE_NAMES,
                                             embedding_weights.tables, strict=True)})
        sparse_ids = sparse_tensors.id_tensor
        rank = tensor_shape.dimension_value(sparse_ids.dense_shape.get_shape()[0])
        lookup = embedding_ops.safe_embedding_lookup_sparse
        if not self.use_safe_embedding_lookup and rank is not None and rank <= 2:
            lookup = embedding_ops.embedding_lookup_sparse_v2
        return lookup(embedding_weights, sparse_ids, sparse_tensors.weight_tensor,
                      combiner=self.combiner, name=f"{self.name}_weights",
                      max_norm=self.max_norm)


def _restorable(table):
    if hasattr(table, "_get_variable_list"):  # PartitionedVariable
        return table._get_variable_list()
    return table


def embedding_column(categorical_column, dimension, combiner="mean", initializer=None,
                     ckpt_to_load_from=None, tensor_name_in_ckpt=None, max_norm=None,
                     trainable=True, use_safe_embedding_lookup=True):
    """`tf.feature_column.embedding_column`, also for multi-hash columns.

    For a column from `categorical_column_with_multihash` (or a
    `weighted_categorical_column` over one), the embedding is a
    `MultiHashVariable`: `dimension` is one length (both tables have it;
    operation "add" or "mult") or one length per table (operation "concat";
    the embedding has their sum). `tensor_name_in_ckpt` then names a
    multi-hash variable saved in `ckpt_to_load_from`. Any other column gets
    TensorFlow's `embedding_column`, unchanged.

    Args:
      categorical_column: The categorical column whose ids are embedded.
      dimension: The embedding length(s), as above.
      combiner, initializer, ckpt_to_load_from, tensor_name_in_ckpt, max_norm,
        trainable, use_safe_embedding_lookup: As for TensorFlow's
        `embedding_column`; `max_norm` clips each composed embedding.

    Returns:
      A `MultiHashEmbeddingColumn` for multi-hash columns, else TensorFlow's
      `EmbeddingColumn`.

    Raises:
      ValueError: For a `dimension` that does not fit the column's
        operation, or TensorFlow's errors for the other arguments.

    Example:
      >>> import deeprec as tf
      >>> col = tf.feature_column.categorical_column_with_multihash(
      ...     "doc_id", dims=(4, 4), operation="mult")
      >>> emb = tf.feature_column.embedding_column(col, dimension=8)
      >>> emb.operation, emb.table_shapes, emb.variable_shape.as_list()
      ('mult', [(4, 8), (4, 8)], [8])
    """
    source = multihash_source(categorical_column)
    if source is None:
        return fc_v2.embedding_column(
            categorical_column, dimension, combiner=combiner, initializer=initializer,
            ckpt_to_load_from=ckpt_to_load_from, tensor_name_in_ckpt=tensor_name_in_ckpt,
            max_norm=max_norm, trainable=trainable,
            use_safe_embedding_lookup=use_safe_embedding_lookup)
    dimension, _ = _resolve(source, dimension)
    where = f"embedding_column({source.key!r})"
    if (ckpt_to_load_from is None) != (tensor_name_in_ckpt is None):
        raise ValueError(f"{where}: give both ckpt_to_load_from and tensor_name_in_ckpt, "
                         "or neither")
    if initializer is not None and not callable(initializer):
        raise ValueError(f"{where}: initializer must be callable, got {initializer!r}")
    if initializer is None:
        total = sum(dimension) if isinstance(dimension, tuple) else dimension
        initializer = init_ops.truncated_normal_initializer(mean=0.0,
                                                            stddev=1 / math.sqrt(total))
    return MultiHashEmbeddingColumn(
        categorical_column=categorical_column, dimension=dimension, combiner=combiner,
        initializer=initializer, ckpt_to_load_from=ckpt_to_load_from,
        tensor_name_in_ckpt=tensor_name_in_ckpt, max_norm=max_norm, trainable=trainable,
        use_safe_embedding_lookup=use_safe_embedding_lookup)
