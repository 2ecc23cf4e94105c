"""Multi-Hash Variable (user guide §3.5): embeddings composed from complementary partitions.

A multi-hash variable replaces one `[num_ids, dim]` table with two small
tables, Q ("quotient") of shape `[rows_q, dim_q]` and R ("remainder") of shape
`[rows_r, dim_r]`. Under the Quotient-Remainder ("Q-R") strategy an id `x` is
first reduced to `y = x mod (rows_q * rows_r)` (floor modulo, so every integer
id, negative ones included, lands in range), then uses row `y // rows_r` of Q
and row `y mod rows_r` of R. The two partitions are complementary: each of the
`rows_q * rows_r` ids in range gets its own pair of rows, so
`rows_q * dim_q + rows_r * dim_r` parameters give that many distinct
embeddings. Ids `rows_q * rows_r` apart share an embedding, as in any hashed
table.

The id's embedding combines its two rows by `operation`: "add" (Q + R) and
"mult" (elementwise Q * R) need `dim_q == dim_r` and give that dim; "concat"
gives `[Q, R]` of length `dim_q + dim_r`.

`tf.nn.embedding_lookup`, `embedding_lookup_sparse` and
`safe_embedding_lookup_sparse` (v1 and v2) accept a `MultiHashVariable`
through TensorFlow's type-based dispatch. The tables are ordinary variables
(or `PartitionedVariable`s with a partitioner), so stock optimizers train them
and `tf.train.Saver` saves them.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

from tensorflow.python.framework import dtypes, ops, sparse_tensor
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import (
    array_ops,
    clip_ops,
    embedding_ops,
    math_ops,
    variables,
)
from tensorflow.python.ops import variable_scope as vs
from tensorflow.python.util import dispatch

from deeprec.embedding import lookup as ev_lookup

__all__ = ["MultiHashVariable", "get_multihash_variable"]

COMPLEMENTARY_STRATEGIES = ("Q-R",)
OPERATIONS = ("add", "mult", "concat")
# Q-R composes exactly two tables; the guide supports no other count.
QR_NUM_PARTITIONS = 2
TABLE_NAMES = ("quotient", "remainder")
_COMBINERS = ("sum", "mean", "sqrtn")
_READ_BEFORE_UPDATE = "DeepRecMultiHashReadBeforeUpdate"


@ops.RegisterGradient(_READ_BEFORE_UPDATE)
def _read_before_update_grad(op: ops.Operation, grad):
    """Passes the gradient on once the lookup has run.

    The tables' gradients ("add", "concat") need not read the tables, so
    without this a training step could update them before the same step's
    lookup reads them, and the fetched embeddings would be nondeterministic.
    As for EmbeddingVariables, a step returns the embeddings before its update.
    """
    with ops.control_dependencies([op.outputs[0]]):
        return array_ops.identity(grad)


def _is_positive_int(value: Any) -> bool:
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value > 0)


def check_strategy(complementary_strategy: Any, num_of_partitions: Any, where: str) -> None:
    """Raises ValueError unless the strategy and partition count are supported.

    Args:
      complementary_strategy: The requested strategy.
      num_of_partitions: The requested number of tables.
      where: The caller, for error messages.
    """
    if complementary_strategy not in COMPLEMENTARY_STRATEGIES:
        raise ValueError(f"{where}: complementary_strategy must be one of "
                         f"{list(COMPLEMENTARY_STRATEGIES)}, got {complementary_strategy!r}")
    if num_of_partitions != QR_NUM_PARTITIONS:
        raise ValueError(f"{where}: num_of_partitions must be {QR_NUM_PARTITIONS} for "
                         f"complementary_strategy 'Q-R', got {num_of_partitions!r}")


def check_operation(operation: Any, where: str) -> None:
    """Raises ValueError unless `operation` is "add", "mult" or "concat"."""
    if operation not in OPERATIONS:
        raise ValueError(f"{where}: operation must be one of {list(OPERATIONS)}, "
                         f"got {operation!r}")


@dispatch.register_dispatchable_type
class MultiHashVariable:
    """Two embedding tables whose rows compose each id's embedding (Q-R hashing).

    Created by `tf.get_multihash_variable` (or by an embedding column over
    `tf.feature_column.categorical_column_with_multihash`); pass it to
    `tf.nn.embedding_lookup` and the sparse lookups like any embedding table.

    Example:
      >>> import deeprec as tf
      >>> mhv = tf.get_multihash_variable("mhv_class_doc", [[3, 4]], operation="mult")
      >>> mhv.bucket_sizes, mhv.embedding_dim, mhv.num_ids
      ((3, 3), 4, 9)
      >>> [t.op.name for t in mhv.tables]
      ['mhv_class_doc/quotient', 'mhv_class_doc/remainder']
    """

    def __init__(self, name: str, tables: Sequence[Any], operation: str,
                 complementary_strategy: str = "Q-R") -> None:
        """Wraps existing tables; most code should call `get_multihash_variable`.

        Args:
          name: Name of the multi-hash variable (its tables' common scope).
          tables: The quotient and remainder tables: 2-D float `tf.Variable`s
            or `PartitionedVariable`s of one dtype.
          operation: "add", "mult" or "concat".
          complementary_strategy: "Q-R".

        Raises:
          ValueError: For an unsupported strategy or operation, a wrong number
            of tables, tables that are not 2-D, of different dtypes, or whose
            dims differ under "add"/"mult".
          TypeError: A table is not a variable.
        """
        where = f"MultiHashVariable({name!r})"
        check_strategy(complementary_strategy, len(tables), where)
        check_operation(operation, where)
        shapes = []
        for i, table in enumerate(tables):
            if not isinstance(table, (variables.Variable, variables.PartitionedVariable)):
                raise TypeError(f"{where}: tables[{i}] must be a tf.Variable or a "
                                f"PartitionedVariable, got {type(table).__name__}")
            shape = table.get_shape()
            if shape.rank != 2 or not shape.is_fully_defined():
                raise ValueError(f"{where}: tables[{i}] must have a static 2-D shape, "
                                 f"got {shape}")
            shapes.append(tuple(shape.as_list()))
        if len({t.dtype.base_dtype for t in tables}) != 1:
            raise ValueError(f"{where}: tables have different dtypes "
                             f"{[t.dtype.base_dtype.name for t in tables]}")
        if operation != "concat" and shapes[0][1] != shapes[1][1]:
            raise ValueError(f"{where}: operation {operation!r} needs tables of one dim, "
                             f"got dims {[s[1] for s in shapes]}")
        self._name = name
        self._tables = tuple(tables)
        self._operation = operation
        self._strategy = complementary_strategy
        self._bucket_sizes = tuple(s[0] for s in shapes)
        self._table_dims = tuple(s[1] for s in shapes)

    @property
    def name(self) -> str:
        return self._name

    @property
    def tables(self) -> tuple:
        """The (quotient, remainder) tables, as created (variables or partitioned)."""
        return self._tables

    @property
    def operation(self) -> str:
        return self._operation

    @property
    def complementary_strategy(self) -> str:
        return self._strategy

    @property
    def bucket_sizes(self) -> tuple[int, ...]:
        """Rows of each table."""
        return self._bucket_sizes

    @property
    def table_dims(self) -> tuple[int, ...]:
        """Embedding length of each table."""
        return self._table_dims

    @property
    def embedding_dim(self) -> int:
        """Length of a composed embedding."""
        if self._operation == "concat":
            return sum(self._table_dims)
        return self._table_dims[0]

    @property
    def num_ids(self) -> int:
        """How many ids (0 .. num_ids-1) get distinct pairs of rows."""
        return self._bucket_sizes[0] * self._bucket_sizes[1]

    @property
    def dtype(self) -> dtypes.DType:
        return self._tables[0].dtype.base_dtype

    def __repr__(self) -> str:
        return (f"<MultiHashVariable {self._name!r} strategy={self._strategy!r} "
                f"operation={self._operation!r} bucket_sizes={self._bucket_sizes} "
                f"table_dims={self._table_dims}>")

    def table_ids(self, ids) -> list[tensor_lib.Tensor]:
        """Row ids of `ids` in each table: `[y // rows_r, y mod rows_r]`.

        `y = ids mod num_ids` (floor modulo). Both results are int64 with the
        shape of `ids`.

        Args:
          ids: Integer ids of any shape.

        Returns:
          `[quotient_rows, remainder_rows]`.

        Raises:
          TypeError: `ids` is not an integer tensor.
        """
        ids = self._check_ids(ids)
        with ops.name_scope("multihash_table_ids"):
            # int64 so that num_ids (up to 2**63 - 1) and the ids both fit.
            wrapped = math_ops.floormod(math_ops.cast(ids, dtypes.int64), self.num_ids)
            rows_r = self._bucket_sizes[1]
            return [math_ops.floordiv(wrapped, rows_r), math_ops.floormod(wrapped, rows_r)]

    def lookup(self, ids, max_norm: float | None = None,
               name: str | None = None) -> tensor_lib.Tensor:
        """Composed embeddings of `ids`: shape `ids.shape + [embedding_dim]`.

        Args:
          ids: Integer ids of any shape.
          max_norm: If set, each composed embedding is clipped to this L2 norm.
          name: Optional name scope.

        Returns:
          The embeddings, of the tables' dtype.
        """
        with ops.name_scope(name, "multihash_lookup"):
            rows = []
            for table, table_ids in zip(self._tables, self.table_ids(ids), strict=True):
                # "div" matches a partitioner's contiguous row blocks, so a
                # partitioned table answers exactly as the unpartitioned one.
                rows.append(embedding_ops.embedding_lookup(
                    table, table_ids, partition_strategy="div"))
            if self._operation == "add":
                result = math_ops.add(rows[0], rows[1])
            elif self._operation == "mult":
                result = math_ops.multiply(rows[0], rows[1])
            else:
                result = array_ops.concat(rows, axis=-1)
            if max_norm is not None:
                result = clip_ops.clip_by_norm(result, max_norm, axes=[-1])
            with ops.get_default_graph().gradient_override_map(
                    {"Identity": _READ_BEFORE_UPDATE}):
                return array_ops.identity(result)

    def _check_ids(self, ids) -> tensor_lib.Tensor:
        if isinstance(ids, sparse_tensor.SparseTensor):
            raise TypeError(f"MultiHashVariable({self._name!r}): ids must be a dense "
                            "tensor; use tf.nn.embedding_lookup_sparse for SparseTensors")
        if not isinstance(ids, tensor_lib.Tensor):
            ids = ops.convert_to_tensor(ids, dtype_hint=dtypes.int64, name="ids")
        if not ids.dtype.is_integer:
            raise TypeError(f"MultiHashVariable({self._name!r}): ids must be integers, "
                            f"got dtype {ids.dtype.name}")
        return ids


def _check_dims(dims: Any, num_of_partitions: int, operation: str,
                where: str) -> list[tuple[int, int]]:
    """Validates `dims` by the guide's rules; returns one shape per table."""
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not dims:
        raise ValueError(f"{where}: dims must be a non-empty list of [rows, dim] pairs, "
                         f"got {dims!r}")
    shapes = []
    for i, shape in enumerate(dims):
        if (isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence)
                or len(shape) != 2 or not all(_is_positive_int(v) for v in shape)):
            raise ValueError(f"{where}: dims[{i}] must be a [rows, dim] pair of positive "
                             f"integers, got {shape!r}")
        shapes.append((int(shape[0]), int(shape[1])))
    if len(shapes) == 1:
        if operation == "concat":
            raise ValueError(f"{where}: dims {dims!r} has one [rows, dim] pair, which needs "
                             "operation 'add' or 'mult', got 'concat'")
        return shapes * num_of_partitions
    if operation != "concat":
        raise ValueError(f"{where}: dims {dims!r} has {len(shapes)} [rows, dim] pairs, "
                         f"which needs operation 'concat', got {operation!r}")
    if len(shapes) != num_of_partitions:
        raise ValueError(f"{where}: dims {dims!r} must have one [rows, dim] pair per "
                         f"partition ({num_of_partitions}), got {len(shapes)}")
    return shapes


def _check_num_ids(shapes: Sequence[tuple[int, int]], where: str) -> None:
    num_ids = shapes[0][0] * shapes[1][0]
    if num_ids > dtypes.int64.max:
        raise ValueError(f"{where}: rows {[s[0] for s in shapes]} multiply to {num_ids}, "
                         "more ids than int64 holds")


def create_multihash_variable(name: str, shapes: Sequence[tuple[int, int]], operation: str,
                              complementary_strategy: str = "Q-R",
                              **get_variable_kwargs) -> MultiHashVariable:
    """Creates (or reuses) the tables `name/quotient` and `name/remainder`.

    `shapes` gives each table's `(rows, dim)`; unlike `get_multihash_variable`
    it always lists both tables, so "add" and "mult" may use tables of
    different row counts (as embedding columns do).

    Args:
      name: Name relative to the current variable scope.
      shapes: `[(rows_q, dim_q), (rows_r, dim_r)]`.
      operation: "add", "mult" or "concat".
      complementary_strategy: "Q-R".
      **get_variable_kwargs: Passed to `tf.get_variable` for each table.

    Returns:
      The `MultiHashVariable`.

    Raises:
      ValueError: For unsupported or inconsistent arguments.

    Example:
      >>> import deeprec as tf
      >>> from deeprec.embedding.multihash import create_multihash_variable
      >>> mhv = create_multihash_variable("mhv_create_doc", [(8, 4), (3, 4)], "add")
      >>> mhv.bucket_sizes, mhv.num_ids, mhv.embedding_dim
      ((8, 3), 24, 4)
    """
    where = f"multihash variable {name!r}"
    check_strategy(complementary_strategy, len(shapes), where)
    check_operation(operation, where)
    _check_num_ids(shapes, where)
    if operation != "concat" and shapes[0][1] != shapes[1][1]:
        raise ValueError(f"{where}: operation {operation!r} needs tables of one dim, got "
                         f"dims {[s[1] for s in shapes]}")
    dtype = dtypes.as_dtype(get_variable_kwargs.pop("dtype", dtypes.float32))
    if not dtype.is_floating:
        raise ValueError(f"{where}: dtype must be a floating-point type, got {dtype.name}")
    with vs.variable_scope(name) as scope:
        tables = [vs.get_variable(table_name, shape=list(shape), dtype=dtype,
                                  **get_variable_kwargs)
                  for table_name, shape in zip(TABLE_NAMES, shapes, strict=True)]
    return MultiHashVariable(scope.name, tables, operation, complementary_strategy)


def get_multihash_variable(
        name: str,
        dims: Sequence[Sequence[int]],
        num_of_partitions: int = 2,
        complementary_strategy: str = "Q-R",
        operation: str = "add",
        dtype: Any = dtypes.float32,
        initializer: Any = None,
        regularizer: Callable | None = None,
        trainable: bool | None = None,
        collections: list[str] | None = None,
        caching_device: Any = None,
        partitioner: Callable | None = None,
        validate_shape: bool = True,
        use_resource: bool | None = None,
        custom_getter: Callable | None = None,
        constraint: Callable | None = None,
        synchronization: variables.VariableSynchronization =
        variables.VariableSynchronization.AUTO,
        aggregation: variables.VariableAggregation = variables.VariableAggregation.NONE,
) -> MultiHashVariable:
    """Gets or creates a Multi-Hash Variable (user guide §3.5.2).

    Creates two tables under the variable scope `name`: `name/quotient` and
    `name/remainder`, by `tf.get_variable` (so scopes, `reuse`, partitioners
    and custom getters behave as for any variable). Id `x` uses row
    `y // rows_r` of the first and row `y mod rows_r` of the second, where
    `y = x mod (rows_q * rows_r)`.

    `dims` lists `[rows, dim]` table shapes, by the guide's rule:

    * one pair `[[rows, dim]]`: both tables have that shape, and `operation`
      must be "add" or "mult" (the embedding has `dim` values);
    * one pair per partition `[[rows_q, dim_q], [rows_r, dim_r]]`:
      `operation` must be "concat", and the embedding has `dim_q + dim_r`
      values.

    Args:
      name: Name relative to the current variable scope.
      dims: The table shapes, as above.
      num_of_partitions: Number of tables; must be 2 for "Q-R".
      complementary_strategy: "Q-R" (quotient-remainder), the only strategy.
      operation: How an id's rows combine: "add", "mult" (elementwise) or
        "concat".
      dtype: Floating-point dtype of the tables (`float` means float32).
      initializer, regularizer, trainable, collections, caching_device,
        partitioner, validate_shape, use_resource, custom_getter, constraint,
        synchronization, aggregation: As for `tf.get_variable`, applied to
        each table.

    Returns:
      A `MultiHashVariable`.

    Raises:
      ValueError: For an unsupported strategy, partition count or operation,
        malformed `dims`, `dims` that break the rule above, or a non-float
        dtype.

    Example:
      >>> import deeprec as tf
      >>> mhv = tf.get_multihash_variable("mhv_doc", [[2, 2], [2, 1]],
      ...                                 operation="concat",
      ...                                 initializer=tf.ones_initializer)
      >>> emb = tf.nn.embedding_lookup(mhv, [0, 3])
      >>> with tf.Session() as sess:
      ...     sess.run(tf.global_variables_initializer())
      ...     print(sess.run(emb))
      [[1. 1. 1.]
       [1. 1. 1.]]
    """
    where = f"get_multihash_variable({name!r})"
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_multihash_variable: name must be a non-empty string, "
                         f"got {name!r}")
    check_strategy(complementary_strategy, num_of_partitions, where)
    check_operation(operation, where)
    shapes = _check_dims(dims, num_of_partitions, operation, where)
    return create_multihash_variable(
        name, shapes, operation, complementary_strategy, dtype=dtype,
        initializer=initializer, regularizer=regularizer, trainable=trainable,
        collections=collections, caching_device=caching_device, partitioner=partitioner,
        validate_shape=validate_shape, use_resource=use_resource,
        custom_getter=custom_getter, constraint=constraint,
        synchronization=synchronization, aggregation=aggregation)


# --- lookups through tf.nn's embedding functions ------------------------------------

def _check_sparse(params: MultiHashVariable, combiner, sp_ids, sp_weights) -> None:
    where = f"MultiHashVariable({params.name!r})"
    if combiner not in _COMBINERS:
        raise ValueError(f"{where}: combiner must be one of {list(_COMBINERS)}, "
                         f"got {combiner!r}")
    if not isinstance(sp_ids, sparse_tensor.SparseTensor):
        raise TypeError(f"{where}: sparse ids must be a SparseTensor, "
                        f"got {type(sp_ids).__name__}")
    if sp_weights is not None and not isinstance(sp_weights, sparse_tensor.SparseTensor):
        raise TypeError(f"{where}: sparse weights must be a SparseTensor or None, "
                        f"got {type(sp_weights).__name__}")


def _table(params: MultiHashVariable) -> ev_lookup.DispatchedTable:
    return ev_lookup.DispatchedTable(
        params.embedding_dim,
        lambda ids, max_norm, counts=None: params.lookup(ids, max_norm=max_norm),
        params._check_ids,
        lambda combiner, sp_ids, sp_weights: _check_sparse(params, combiner, sp_ids,
                                                           sp_weights))


ev_lookup.register_lookups(MultiHashVariable, _table)
