"""Embedding columns looked up together (DeepRec's Group Embedding, §3.6.2).

`embedding_column`s built inside `group_embedding_column_scope(name)` carry
the scope's name. `input_layer` looks up all the columns of one name with a
single `tf.nn.group_embedding_lookup_sparse`: while it builds the columns, a
`_Collector` takes each grouped column's table and sparse ids instead of
letting the column look itself up, and hands every column its output once
the groups are looked up. A grouped column used anywhere else (e.g. by
`linear_model`) looks itself up alone, with the same ops and results.
"""

import contextlib
import itertools
import re
import threading

from tensorflow.python.feature_column import feature_column as fc_old
from tensorflow.python.framework import dtypes, ops, sparse_tensor, tensor_shape
from tensorflow.python.ops import array_ops, math_ops, sparse_ops, variable_scope, variables
from tensorflow.python.training import checkpoint_utils

from deeprec.nn.group_embedding import lookup_sparse_groups

__all__ = ["group_embedding_column_scope"]

_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*")
_state = threading.local()
_unnamed = itertools.count()


def _scopes() -> list:
    if not hasattr(_state, "scopes"):
        _state.scopes, _state.collectors = [], []
    return _state.scopes


def _collectors() -> list:
    _scopes()
    return _state.collectors


@contextlib.contextmanager
def group_embedding_column_scope(name: str | None = None):
    """Groups the embedding columns built inside it for one lookup.

    `tf.feature_column.embedding_column`s created in the scope, over
    `categorical_column_with_embedding` (EmbeddingVariable) columns or
    TensorFlow's categorical columns (possibly weighted), are looked up
    together by `tf.feature_column.input_layer`: one
    `tf.nn.group_embedding_lookup_sparse` per scope name, instead of one
    lookup subgraph per column. Results are those of the ungrouped columns
    (the safe lookup: ids < 0 and, unless the combiner is "sum", weights
    <= 0 are dropped; empty rows are zero).

    Args:
      name: The group's name (letters, digits, `_`, `.`, `-`). Scopes with
        the same name form one group; None gives the scope a name of its own.

    Yields:
      The group's name.

    Raises:
      ValueError: An invalid name, or a scope opened inside another. Building
        a column the group lookup does not support in the scope (a
        sequence, shared, multi-hash or adaptive embedding column, or one with
        `do_fusion=True`) raises ValueError too.

    Example:
      >>> import deeprec as tf
      >>> with tf.feature_column.group_embedding_column_scope(name="user"):
      ...     age = tf.feature_column.embedding_column(
      ...         tf.feature_column.categorical_column_with_identity("age", 100), 4)
      ...     city = tf.feature_column.embedding_column(
      ...         tf.feature_column.categorical_column_with_embedding(
      ...             "city", dtype=tf.int64), 8)
      >>> features = {"age": tf.SparseTensor([[0, 0], [1, 0]], tf.constant([20, 41],
      ...                                    tf.int64), [2, 1]),
      ...             "city": tf.SparseTensor([[0, 0]], tf.constant([7], tf.int64), [2, 1])}
      >>> out = tf.feature_column.input_layer(features, [age, city])
      >>> out.shape.as_list()
      [2, 12]
      >>> len([op for op in tf.get_default_graph().get_operations()
      ...      if op.type == "GroupEmbeddingSparsePostLookUp"])
      1
    """
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ValueError("group_embedding_column_scope: name must be None or a string of "
                         f"letters, digits, '_', '.' and '-', got {name!r}")
    scopes = _scopes()
    if scopes:
        raise ValueError(f"group_embedding_column_scope({name!r}): scopes do not nest; it "
                         f"was opened inside group_embedding_column_scope({scopes[-1]!r})")
    if name is None:
        name = f"group_embedding_{next(_unnamed)}"
    scopes.append(name)
    try:
        yield name
    finally:
        scopes.pop()


def current_group() -> str | None:
    """The name of the innermost open group_embedding_column_scope, or None."""
    scopes = _scopes()
    return scopes[-1] if scopes else None


def check_groupable(api: str, reason: str | None) -> None:
    """Raises if a column that cannot be grouped is built inside a scope.

    `reason` says why the column cannot be grouped (None: it can).
    """
    group = current_group()
    if group is not None and reason is not None:
        raise ValueError(f"{api}: {reason} cannot be looked up by "
                         f"group_embedding_column_scope({group!r})")


class _Pending:
    """Stands for a grouped column's output until its group is looked up."""


class _Collector:
    """The grouped columns' lookups of one input_layer, by group."""

    def __init__(self):
        self.groups: dict[str, list] = {}

    def add(self, column, table, sparse_tensors) -> _Pending:
        pending = _Pending()
        self.groups.setdefault(column.group_name, []).append(
            (pending, column, table, sparse_tensors))
        return pending

    def lookup(self) -> dict:
        """{pending: output} for every column added, one group lookup per group."""
        outputs = {}
        for group, entries in self.groups.items():
            with ops.name_scope(f"{group}_group_embedding"):
                results = _lookup_columns([(c, t, s) for _, c, t, s in entries])
            outputs.update(zip([e[0] for e in entries], results, strict=True))
        return outputs


def _as_rank2(sp: sparse_tensor.SparseTensor):
    """`sp` reshaped to [rows, last dim] if its static rank is > 2, and the
    leading dense shape to restore (None if it is not reshaped)."""
    rank = tensor_shape.dimension_value(sp.dense_shape.shape[0])
    if rank is None or rank <= 2:
        return sp, None
    lead = sp.dense_shape[:-1]
    flat = array_ops.concat([[math_ops.reduce_prod(lead)], sp.dense_shape[-1:]], 0)
    return sparse_ops.sparse_reshape(sp, flat), lead


def _lookup_columns(entries) -> list:
    """Looks up [(column, table, sparse_tensors)] with one group lookup."""
    ids, weights, leads = [], [], []
    for _, _, sparse_tensors in entries:
        id_tensor, lead = _as_rank2(sparse_tensors.id_tensor)
        weight_tensor = sparse_tensors.weight_tensor
        if weight_tensor is not None:
            weight_tensor = sparse_tensor.SparseTensor(
                id_tensor.indices, weight_tensor.values, id_tensor.dense_shape)
        ids.append(id_tensor)
        weights.append(weight_tensor)
        leads.append(lead)
    columns = [column for column, _, _ in entries]
    outputs = lookup_sparse_groups(
        "group_embedding_column_scope", [table for _, table, _ in entries], ids,
        [column.combiner for column in columns], weights, partition_strategy="div",
        max_norms=[column.max_norm for column in columns])
    results = []
    for output, lead, column in zip(outputs, leads, columns, strict=True):
        if lead is not None:
            output = array_ops.reshape(
                output, array_ops.concat([math_ops.cast(lead, dtypes.int32),
                                          [column.dimension]], 0))
        results.append(output)
    return results


def lookup(column, table, sparse_tensors):
    """A grouped column's lookup: deferred to its group inside `input_layer`,
    done alone (as a group of one) elsewhere."""
    collectors = _collectors()
    if collectors:
        return collectors[-1].add(column, table, sparse_tensors)
    [output] = _lookup_columns([(column, table, sparse_tensors)])
    return output


def restore_from_checkpoint(column, table) -> None:
    """Initializes `table` from the column's `ckpt_to_load_from`, if any."""
    if column.ckpt_to_load_from is None:
        return
    to_restore = table._get_variable_list() \
        if isinstance(table, variables.PartitionedVariable) else table  # pylint: disable=protected-access
    checkpoint_utils.init_from_checkpoint(column.ckpt_to_load_from,
                                          {column.tensor_name_in_ckpt: to_restore})


def has_grouped_columns(columns) -> bool:
    return any(getattr(c, "group_name", None) is not None for c in columns)


def grouped_input_layer(features, feature_columns, weight_collections=None, trainable=True,
                        cols_to_vars=None, cols_to_output_tensors=None):
    """`input_layer` whose grouped columns are looked up together.

    Builds the columns in TensorFlow's order (by name) and scopes, so that
    variables and outputs are named as `tf.feature_column.input_layer`
    names them; the grouped columns' outputs come from one group lookup per
    group, made after all columns are built.
    """
    columns = fc_old._normalize_feature_columns(feature_columns)  # pylint: disable=protected-access
    for column in columns:
        if not isinstance(column, fc_old._DenseColumn):  # pylint: disable=protected-access
            raise ValueError("Items of feature_columns must be a _DenseColumn. You can wrap "
                             "a categorical column with an embedding_column or "
                             f"indicator_column. Given: {column}")
    weight_collections = list(weight_collections or [])
    for key in (ops.GraphKeys.GLOBAL_VARIABLES, ops.GraphKeys.MODEL_VARIABLES):
        if key not in weight_collections:
            weight_collections.append(key)
    ordered = sorted(columns, key=lambda c: c.name)
    with variable_scope.variable_scope(None, default_name="input_layer",
                                       values=features.values()):
        builder = fc_old._LazyBuilder(features)  # pylint: disable=protected-access
        collector = _Collector()
        tensors = []
        _collectors().append(collector)
        try:
            for column in ordered:
                with variable_scope.variable_scope(
                        None, default_name=column._var_scope_name):  # pylint: disable=protected-access
                    tensors.append(column._get_dense_tensor(  # pylint: disable=protected-access
                        builder, weight_collections=weight_collections, trainable=trainable))
                    if cols_to_vars is not None:
                        cols_to_vars[column] = ops.get_collection(
                            ops.GraphKeys.GLOBAL_VARIABLES,
                            scope=variable_scope.get_variable_scope().name)
        finally:
            _collectors().pop()
        looked_up = collector.lookup()
        outputs = []
        for column, tensor in zip(ordered, tensors, strict=True):
            if isinstance(tensor, _Pending):
                tensor = looked_up[tensor]
            elements = column._variable_shape.num_elements()  # pylint: disable=protected-access
            output = array_ops.reshape(tensor, (array_ops.shape(tensor)[0], elements))
            outputs.append(output)
            if cols_to_output_tensors is not None:
                cols_to_output_tensors[column] = output
        fc_old._verify_static_batch_size_equality(outputs, ordered)  # pylint: disable=protected-access
        return array_ops.concat(outputs, 1)
