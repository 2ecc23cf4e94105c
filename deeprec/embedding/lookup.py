"""Embedding lookups over EmbeddingVariables.

Registered with TensorFlow's type-based dispatch for `tf.nn.embedding_lookup`,
`embedding_lookup_sparse` and `safe_embedding_lookup_sparse` (v1 and v2), so
every path to those functions (`tf.nn.*`, `tensorflow.python.ops.embedding_ops`,
feature columns) accepts an EmbeddingVariable, a PartitionedEmbeddingVariable
or a list of EmbeddingVariable shards. Semantics follow TensorFlow's: the same
combiners, weights, `max_norm` clipping, `default_id` filling and pruning of
ids < 0. `partition_strategy` is ignored: shards always split ids by
`(id mod 1000) mod num_shards`. `register_lookups` registers the same six
functions for other kinds of table (the MultiHashVariable's).
"""

import contextlib
import threading
import typing

from tensorflow.python.framework import dtypes, indexed_slices, ops, sparse_tensor
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import (
    array_ops,
    array_ops_stack,
    clip_ops,
    data_flow_ops,
    embedding_ops,
    math_ops,
    sparse_ops,
)
from tensorflow.python.ops import cond as cond_lib
from tensorflow.python.util import dispatch

from deeprec._native import ops as kv_ops
from deeprec.embedding.partitioned import PartitionedEmbeddingVariable, shard_ids
from deeprec.embedding.variable import EmbeddingVariable

EVParams = typing.Union[EmbeddingVariable, PartitionedEmbeddingVariable,
                        list[EmbeddingVariable]]

_fusion = threading.local()


@contextlib.contextmanager
def fused_safe_lookups():
    """Routes `safe_embedding_lookup_sparse` of EVs built inside to the fused kernels.

    For graph-building code that calls TensorFlow's function itself, such as
    `linear_model`: the fused lookup gives the same sums up to float rounding
    in three ops instead of about twenty per column.

    Example:
      >>> import deeprec as tf
      >>> from deeprec.embedding.lookup import fused_safe_lookups
      >>> with tf.Graph().as_default() as g:
      ...     ev = tf.get_embedding_variable("wide", embedding_dim=1)
      ...     ids = tf.SparseTensor([[0, 0]], tf.constant([7], tf.int64), [1, 1])
      ...     with fused_safe_lookups():
      ...         out = tf.nn.safe_embedding_lookup_sparse(ev, ids, combiner="sum")
      >>> "FusedEmbeddingSparsePreLookUp" in {op.type for op in g.get_operations()}
      True
    """
    previous = getattr(_fusion, "enabled", False)
    _fusion.enabled = True
    try:
        yield
    finally:
        _fusion.enabled = previous


def _shards(params) -> list[EmbeddingVariable]:
    shards = list(params) if not isinstance(params, EmbeddingVariable) else [params]
    if not shards or not all(isinstance(s, EmbeddingVariable) for s in shards):
        raise TypeError(f"expected EmbeddingVariable shards, got {params!r}")
    dims = {s.embedding_dim for s in shards}
    if len(dims) != 1:
        raise ValueError(f"EmbeddingVariable shards have different dims {sorted(dims)}")
    return shards


def _read(shard: EmbeddingVariable, ids, counts) -> tensor_lib.Tensor:
    """shard's rows of `ids`; with `counts`, distinct ids standing for counts[i]
    occurrences each (frequencies and admission count them all)."""
    with ops.colocate_with(shard.handle):
        if counts is None:
            return shard.sparse_read(ids)
        return kv_ops.kv_resource_gather_with_counts(shard.handle, ids, counts)


def _lookup(shards: list[EmbeddingVariable], ids, max_norm=None,
            counts=None) -> tensor_lib.Tensor:
    ids = shards[0]._check_ids(ids)
    if len(shards) == 1:
        result = _read(shards[0], ids, counts)
    else:
        n = len(shards)
        flat = array_ops.reshape(ids, [-1])
        assignment = shard_ids(flat, n)
        pieces = data_flow_ops.dynamic_partition(flat, assignment, n)
        positions = data_flow_ops.dynamic_partition(
            math_ops.range(array_ops.size(flat)), assignment, n)
        counted = ([None] * n if counts is None
                   else data_flow_ops.dynamic_partition(counts, assignment, n))
        parts = [_read(shard, piece, c)
                 for shard, piece, c in zip(shards, pieces, counted, strict=True)]
        stitched = data_flow_ops.dynamic_stitch(positions, parts)
        result = array_ops.reshape(
            stitched, array_ops.concat([array_ops.shape(ids), [shards[0].embedding_dim]], 0))
        result.set_shape(ids.shape.concatenate([shards[0].embedding_dim]))
    if max_norm is not None:
        result = clip_ops.clip_by_norm(result, max_norm, axes=[-1])
    return result


# The sparse segment op of each combiner, for rows given as distinct ids.
_SEGMENT_COMBINERS = {"sum": math_ops.sparse_segment_sum,
                      "mean": math_ops.sparse_segment_mean,
                      "sqrtn": math_ops.sparse_segment_sqrt_n}


def _check_combiner(combiner) -> None:
    if combiner not in _SEGMENT_COMBINERS:
        raise ValueError(f"combiner must be one of 'mean', 'sqrtn' or 'sum', got {combiner!r}")


def combine_rows(embeddings, segment_ids, weights, combiner, num_segments):
    """Combines per-id embeddings into per-row results like TensorFlow does.

    `combiner` is "sum", "mean" or "sqrtn" over the (optional) weights; rows
    without ids have zero weight and stay zero.
    """
    _check_combiner(combiner)
    if weights is None:
        weights = array_ops.ones_like(segment_ids, dtype=embeddings.dtype)
        weighted = embeddings
    else:
        weights = math_ops.cast(weights, embeddings.dtype)
        weighted = embeddings * array_ops.expand_dims(weights, -1)
    total = math_ops.unsorted_segment_sum(weighted, segment_ids, num_segments)
    if combiner == "sum":
        return total
    if combiner == "mean":
        norm = math_ops.unsorted_segment_sum(weights, segment_ids, num_segments)
    else:
        norm = math_ops.sqrt(math_ops.unsorted_segment_sum(
            weights * weights, segment_ids, num_segments))
    return math_ops.div_no_nan(total, array_ops.expand_dims(norm, -1))


def _sparse_lookup(table: "DispatchedTable", sp_ids, sp_weights, combiner, max_norm,
                   num_segments):
    """The rows of `sp_ids` combined by `combiner`, rows by indices[:, 0].

    Without weights it follows TensorFlow's recipe: each distinct id is read
    once (with its count: EV frequencies and admission still see every
    occurrence) and the sparse segment ops combine the rows without a copy
    per entry, forward and backward: for 50 features of 2,048 rows, op time
    per training step fell from 90 to 71 ms (one thread). Those ops need the
    entries in row order, as SparseTensors in canonical order have them;
    other entries take the per-entry path.
    """
    _check_combiner(combiner)
    segment_ids = math_ops.cast(sp_ids.indices[:, 0], dtypes.int32)
    if num_segments is None:
        num_segments = math_ops.maximum(math_ops.reduce_max(segment_ids) + 1, 0)
    if sp_weights is not None:
        return combine_rows(table.rows(sp_ids.values, max_norm), segment_ids,
                            sp_weights.values, combiner, num_segments)
    ids, idx, counts = array_ops.unique_with_counts(sp_ids.values, out_idx=dtypes.int64)
    rows = table.rows(ids, max_norm, counts)
    in_row_order = math_ops.reduce_all(
        math_ops.greater_equal(segment_ids[1:], segment_ids[:-1]))
    return cond_lib.cond(
        in_row_order,
        lambda: _SEGMENT_COMBINERS[combiner](rows, idx, segment_ids,
                                             num_segments=num_segments),
        lambda: combine_rows(array_ops.gather(rows, idx), segment_ids, None, combiner,
                             num_segments))


class DispatchedTable(typing.NamedTuple):
    """How the lookup functions registered by `register_lookups` read a table.

    `rows(ids, max_norm, counts=None)` gives the embeddings of `ids` (shape
    `ids.shape + [embedding_dim]`, clipped to `max_norm` when it is not
    None); `counts`, when given, says how many occurrences each of the
    (distinct) ids stands for;
    `check_ids(ids)` converts ids, raising for a wrong dtype;
    `check_sparse(combiner, sp_ids, sp_weights)` raises for arguments the
    table rejects; `fusable` says whether `fused_safe_lookups` routes the
    table's safe lookups to the fused kernels.
    """
    embedding_dim: int
    rows: typing.Callable
    check_ids: typing.Callable
    check_sparse: typing.Callable = lambda combiner, sp_ids, sp_weights: None
    fusable: bool = False


def register_lookups(params_type, table: typing.Callable[..., DispatchedTable]) -> None:
    """Dispatches TF's embedding lookups (v1 and v2) on `params_type` to `table(params)`.

    Registers `embedding_lookup`, `embedding_lookup_sparse` and
    `safe_embedding_lookup_sparse`, each in its v1 and v2 signature, with
    TensorFlow's semantics around the table's `rows`. `partition_strategy`
    is ignored: a table reads its own partitions.

    Example:
      >>> import deeprec as tf
      >>> from tensorflow.python.util import dispatch
      >>> from deeprec.embedding.lookup import DispatchedTable, register_lookups
      >>> @dispatch.register_dispatchable_type
      ... class DoubledTable:
      ...     def __init__(self, values):
      ...         self.values = values
      >>> register_lookups(DoubledTable, lambda params: DispatchedTable(
      ...     2, lambda ids, max_norm, counts=None: 2.0 * tf.gather(params.values, ids),
      ...     tf.convert_to_tensor))
      >>> table = DoubledTable(tf.constant([[1.0, 2.0], [3.0, 4.0]]))
      >>> ids = tf.SparseTensor([[0, 0], [0, 1]], tf.constant([0, 1], tf.int64), [1, 2])
      >>> with tf.Session() as sess:
      ...     print(sess.run(tf.nn.embedding_lookup(table, tf.constant([1]))))
      ...     print(sess.run(tf.nn.safe_embedding_lookup_sparse(table, ids, combiner="sum")))
      [[6. 8.]]
      [[ 8. 12.]]
    """

    @dispatch.dispatch_for_api(embedding_ops.embedding_lookup, {"params": params_type})
    def embedding_lookup(params, ids, partition_strategy="mod", name=None,
                         validate_indices=True, max_norm=None):
        del partition_strategy, validate_indices
        with ops.name_scope(name, "embedding_lookup"):
            return table(params).rows(ids, max_norm)

    @dispatch.dispatch_for_api(embedding_ops.embedding_lookup_v2, {"params": params_type})
    def embedding_lookup_v2(params, ids, max_norm=None, name=None):
        return embedding_lookup(params, ids, name=name, max_norm=max_norm)

    @dispatch.dispatch_for_api(embedding_ops.embedding_lookup_sparse,
                               {"params": params_type})
    def embedding_lookup_sparse(params, sp_ids, sp_weights, partition_strategy="mod",
                                name=None, combiner=None, max_norm=None,
                                allow_fast_lookup=False):
        del partition_strategy, allow_fast_lookup
        combiner = combiner or "mean"
        t = table(params)
        t.check_sparse(combiner, sp_ids, sp_weights)
        with ops.name_scope(name, "embedding_lookup_sparse"):
            return _sparse_lookup(t, sp_ids, sp_weights, combiner, max_norm, None)

    @dispatch.dispatch_for_api(embedding_ops.embedding_lookup_sparse_v2,
                               {"params": params_type})
    def embedding_lookup_sparse_v2(params, sp_ids, sp_weights, combiner=None,
                                   max_norm=None, name=None, allow_fast_lookup=False):
        return embedding_lookup_sparse(params, sp_ids, sp_weights, name=name,
                                       combiner=combiner, max_norm=max_norm)

    @dispatch.dispatch_for_api(embedding_ops.safe_embedding_lookup_sparse,
                               {"embedding_weights": params_type})
    def safe_embedding_lookup_sparse(embedding_weights, sparse_ids, sparse_weights=None,
                                     combiner="mean", default_id=None, name=None,
                                     partition_strategy="div", max_norm=None,
                                     allow_fast_lookup=False):
        del partition_strategy, allow_fast_lookup
        t = table(embedding_weights)
        if t.fusable and getattr(_fusion, "enabled", False):
            from deeprec.nn.fused_embedding import fused_safe_embedding_lookup_sparse
            return fused_safe_embedding_lookup_sparse(
                embedding_weights, sparse_ids, sparse_weights, combiner=combiner,
                default_id=default_id, name=name, max_norm=max_norm)
        t.check_sparse(combiner, sparse_ids, sparse_weights)
        with ops.name_scope(name, "embedding_lookup"):
            # Checked before the pruning ops, which would reject e.g. string
            # ids with a message that does not name the table.
            t.check_ids(sparse_ids.values)
            return safe_sparse_lookup(
                sparse_ids, sparse_weights, combiner, default_id, t.embedding_dim,
                lambda ids, weights, rows: _sparse_lookup(t, ids, weights, combiner,
                                                          max_norm, rows))

    @dispatch.dispatch_for_api(embedding_ops.safe_embedding_lookup_sparse_v2,
                               {"embedding_weights": params_type})
    def safe_embedding_lookup_sparse_v2(embedding_weights, sparse_ids, sparse_weights=None,
                                        combiner="mean", default_id=None, max_norm=None,
                                        name=None, allow_fast_lookup=False):
        return safe_embedding_lookup_sparse(
            embedding_weights, sparse_ids, sparse_weights, combiner=combiner,
            default_id=default_id, name=name, max_norm=max_norm)


def _ev_table(params) -> DispatchedTable:
    """EmbeddingVariable shards as a DispatchedTable.

    Unlike TensorFlow's, their safe lookups look nothing up for empty rows
    without `default_id`, so those never create an id in the variable.
    """
    shards = _shards(params)
    return DispatchedTable(shards[0].embedding_dim,
                           lambda ids, max_norm, counts=None: _lookup(shards, ids, max_norm,
                                                                      counts),
                           shards[0]._check_ids, fusable=True)


register_lookups(EVParams, _ev_table)


def safe_sparse_lookup(sparse_ids, sparse_weights, combiner, default_id, embedding_dim,
                       lookup):
    """TensorFlow's `safe_embedding_lookup_sparse` recipe around `lookup`.

    Flattens ids of rank >= 2 to [rows, last dim], prunes ids < 0 (and
    weights <= 0 unless `combiner` is "sum"), fills empty rows with
    `default_id` when given, calls `lookup(ids, weights, rows)` for the
    combined [rows, embedding_dim] result and restores the leading shape.
    """
    original_shape = sparse_ids.dense_shape
    rank = array_ops.size(original_shape)
    rows = math_ops.reduce_prod(array_ops.slice(original_shape, [0], [rank - 1]))
    sparse_ids = sparse_ops.sparse_reshape(
        sparse_ids, array_ops_stack.stack([rows, original_shape[rank - 1]]))
    if sparse_weights is not None:
        sparse_weights = sparse_tensor.SparseTensor(
            sparse_ids.indices, sparse_weights.values, sparse_ids.dense_shape)
    keep = math_ops.greater_equal(sparse_ids.values, 0)
    if combiner != "sum" and sparse_weights is not None:
        keep = math_ops.logical_and(keep, math_ops.greater(sparse_weights.values, 0))
    sparse_ids = sparse_ops.sparse_retain(sparse_ids, keep)
    if sparse_weights is not None:
        sparse_weights = sparse_ops.sparse_retain(sparse_weights, keep)
    if default_id is not None:
        sparse_ids, _ = sparse_ops.sparse_fill_empty_rows(sparse_ids, default_id)
        if sparse_weights is not None:
            sparse_weights, _ = sparse_ops.sparse_fill_empty_rows(sparse_weights, 1.0)
    # Rows left empty (no default_id) get zeros from the combiner.
    result = lookup(sparse_ids, sparse_weights, math_ops.cast(rows, dtypes.int32))
    out_shape = array_ops.concat(
        [array_ops.slice(original_shape, [0], [rank - 1]), [embedding_dim]], 0)
    result = array_ops.reshape(result, math_ops.cast(out_shape, dtypes.int32))
    ids_rank = original_shape.shape[0]
    if ids_rank is not None:
        result.set_shape([None] * (ids_rank - 1) + [embedding_dim])
    return result


@ops.RegisterGradient("KvResourceGather")
@ops.RegisterGradient("KvResourceGatherWithCounts")
def _kv_resource_gather_grad(op: ops.Operation, grad: tensor_lib.Tensor):
    """The gradient w.r.t. the handle: IndexedSlices keyed by the raw ids.

    It depends on the lookup itself, so a training step always runs the
    lookup (and counts its ids' frequencies) even when the loss's gradient
    does not need the looked-up values.
    """
    dim = op.outputs[0].shape[-1]
    dim = dim if dim is not None else array_ops.shape(grad)[-1]
    with ops.control_dependencies([op]):
        values = array_ops.reshape(grad, array_ops_stack.stack([-1, dim]))
    ids = array_ops.reshape(op.inputs[1], [-1])
    # KvResourceGatherWithCounts's counts input gets no gradient either.
    return [indexed_slices.IndexedSlices(values, ids)] + [None] * (len(op.inputs) - 1)
