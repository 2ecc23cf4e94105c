"""Fused sparse embedding lookups (DeepRec's Embedding Subgraph Fusion).

`fused_embedding_lookup_sparse` and `fused_safe_embedding_lookup_sparse`
compute what `tf.nn.embedding_lookup_sparse` and
`tf.nn.safe_embedding_lookup_sparse` compute, with three ops per lookup
instead of dozens:

1. `FusedEmbeddingSparsePreLookUp` prunes invalid ids (and weights), fills
   empty rows and splits the ids over the table's partitions;
2. one gather per partition, colocated with it: `tf.gather` on a dense
   table or the EmbeddingVariable's own lookup (so that admission filters
   and frequency counts see every id, as with the unfused lookups);
3. `FusedEmbeddingSparsePostLookUp` clips rows to `max_norm` and combines
   them per row. Its gradient is the native
   `FusedEmbeddingSparsePostLookUpGrad`; the gathers turn it into
   `IndexedSlices` for the optimizer. Sparse weights get their gradient from
   `FusedEmbeddingSparsePostLookUpWeightsGrad`.
"""

import numbers

from tensorflow.python.framework import dtypes, ops, sparse_tensor, tensor_shape, tensor_util
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import array_ops, math_ops, variables

from deeprec._native import ops as kv_ops
from deeprec.embedding.partitioned import PartitionedEmbeddingVariable
from deeprec.embedding.variable import EmbeddingVariable

__all__ = ["fused_embedding_lookup_sparse", "fused_safe_embedding_lookup_sparse"]

_COMBINERS = ("sum", "mean", "sqrtn")
_STRATEGIES = ("div", "mod")
_FLOAT_TYPES = (dtypes.float32, dtypes.float64)


class _Table:
    """The partitions of an embedding table and how to gather from them."""

    def __init__(self, api: str, params, partition_strategy):
        if partition_strategy is not None and partition_strategy not in _STRATEGIES:
            raise ValueError(f"{api}: partition_strategy must be 'div' or 'mod', got "
                             f"{partition_strategy!r}")
        if isinstance(params, (EmbeddingVariable, PartitionedEmbeddingVariable)):
            shards = list(params) if isinstance(params, PartitionedEmbeddingVariable) \
                else [params]
        elif isinstance(params, (variables.PartitionedVariable, list, tuple)):
            shards = list(params)
        else:
            shards = [params]
        if not shards:
            raise ValueError(f"{api}: params is an empty list")
        evs = [isinstance(s, EmbeddingVariable) for s in shards]
        if any(evs) and not all(evs):
            raise TypeError(f"{api}: params mixes EmbeddingVariables with other tables: "
                            f"{params!r}")
        self.is_ev = all(evs)
        if self.is_ev:
            self._init_ev(api, shards)
        else:
            self._init_dense(api, shards, partition_strategy or "div")

    def _init_ev(self, api, shards):
        dims = sorted({s.embedding_dim for s in shards})
        if len(dims) != 1:
            raise ValueError(f"{api}: EmbeddingVariable shards have different dims {dims}")
        self.shards = shards
        self.dim = dims[0]
        self.dtype = shards[0].dtype
        # Partitioned EmbeddingVariables route keys by (key mod 1000) mod
        # shards whatever partition_strategy says, as their other lookups do.
        self.strategy = "ev"
        self.table_rows = -1

    def _init_dense(self, api, shards, strategy):
        converted = []
        for shard in shards:
            if not isinstance(shard, variables.Variable):
                shard = ops.convert_to_tensor(shard, name="params")
            if shard.shape.rank is not None and shard.shape.rank != 2:
                raise ValueError(f"{api}: embedding tables must have rank 2, got "
                                 f"{shard!r} of shape {shard.shape}")
            converted.append(shard)
        dtype_set = {s.dtype.base_dtype for s in converted}
        if len(dtype_set) != 1:
            raise ValueError(f"{api}: the table partitions have different dtypes "
                             f"{sorted(d.name for d in dtype_set)}")
        self.dtype = dtype_set.pop()
        if self.dtype not in _FLOAT_TYPES:
            raise ValueError(f"{api}: embedding tables must be float32 or float64, got "
                             f"{self.dtype.name}")
        dims = {tensor_shape.dimension_value(s.shape[1]) for s in converted
                if s.shape.rank == 2} - {None}
        if len(dims) > 1:
            raise ValueError(f"{api}: the table partitions have different embedding "
                             f"dims {sorted(dims)}")
        self.shards = converted
        self.dim = dims.pop() if dims else None
        self.strategy = strategy
        rows = [tensor_shape.dimension_value(s.shape[0]) if s.shape.rank == 2 else None
                for s in converted]
        if None in rows:
            self.table_rows = math_ops.add_n(
                [math_ops.cast(array_ops.shape(s)[0], dtypes.int64) for s in converted])
            self.static_rows = None
        else:
            self.table_rows = self.static_rows = sum(rows)

    def check_ids(self, api: str, ids: tensor_lib.Tensor):
        if self.is_ev:
            self.shards[0]._check_ids(ids)
        elif ids.dtype not in (dtypes.int32, dtypes.int64):
            raise TypeError(f"{api}: sparse ids must be int32 or int64, got {ids.dtype.name}")

    def check_default_id(self, api: str, default_id, ids_dtype: dtypes.DType):
        if default_id is None:
            return
        if isinstance(default_id, bool) or not isinstance(default_id, numbers.Integral):
            raise ValueError(f"{api}: default_id must be an int or None, got {default_id!r}")
        if not ids_dtype.min <= default_id <= ids_dtype.max:
            raise ValueError(f"{api}: default_id = {default_id} does not fit the ids' dtype "
                             f"{ids_dtype.name}")
        if not self.is_ev and self.static_rows is not None \
                and not 0 <= default_id < self.static_rows:
            raise ValueError(f"{api}: default_id = {default_id} is not a row of the "
                             f"embedding table: not in [0, {self.static_rows})")

    def gather(self, index: int, ids: tensor_lib.Tensor,
               counts: tensor_lib.Tensor | None = None) -> tensor_lib.Tensor:
        """Rows of `ids` from partition `index`.

        With `counts`, the ids are distinct and stand for counts[i]
        occurrences each: an EmbeddingVariable counts them as that many
        lookups (`KvResourceGatherWithCounts`), reading each record once.
        """
        shard = self.shards[index]
        if self.is_ev:
            with ops.colocate_with(shard.handle):
                if counts is None:
                    return shard.sparse_read(ids)
                return kv_ops.kv_resource_gather_with_counts(
                    shard.handle, shard._check_ids(ids), counts)
        with ops.colocate_with(shard):
            return array_ops.gather(shard, ids)


def _check_sparse(api: str, sp_ids, sp_weights, ids_arg: str, weights_arg: str):
    if not isinstance(sp_ids, sparse_tensor.SparseTensor):
        raise TypeError(f"{api}: {ids_arg} must be a SparseTensor, got {type(sp_ids).__name__}")
    if sp_weights is None:
        return
    if not isinstance(sp_weights, sparse_tensor.SparseTensor):
        raise TypeError(f"{api}: {weights_arg} must be None or a SparseTensor, got "
                        f"{type(sp_weights).__name__}")
    for part in ("values", "indices", "dense_shape"):
        got = getattr(sp_weights, part).shape
        want = getattr(sp_ids, part).shape
        if not got.is_compatible_with(want):
            raise ValueError(f"{api}: {weights_arg}.{part} has shape {got} but "
                             f"{ids_arg}.{part} has shape {want}")
    if not sp_weights.dtype.is_floating:
        raise ValueError(f"{api}: {weights_arg} must be floating point, got "
                         f"{sp_weights.dtype.name}")


def _static_rank(sp_ids: sparse_tensor.SparseTensor):
    rank = tensor_shape.dimension_value(sp_ids.dense_shape.shape[0]) \
        if sp_ids.dense_shape.shape.rank == 1 else None
    if rank is None and sp_ids.indices.shape.rank == 2:
        rank = tensor_shape.dimension_value(sp_ids.indices.shape[1])
    return rank


def _check_options(api: str, combiner, max_norm, blocknums):
    if combiner not in _COMBINERS:
        raise ValueError(f"{api}: combiner must be one of 'mean', 'sqrtn' or 'sum', "
                         f"got {combiner!r}")
    if max_norm is not None and (isinstance(max_norm, bool)
                                 or not isinstance(max_norm, numbers.Real)
                                 or not max_norm > 0):
        raise ValueError(f"{api}: max_norm must be None or a positive number, got "
                         f"{max_norm!r}")
    if blocknums is not None:
        raise ValueError(f"{api}: blocknums (for DynamicEmbeddingVariable) is not "
                         f"supported, got {blocknums!r}")


def _checked_table(api: str, params, partition_strategy, sp_ids, sp_weights, ids_arg: str,
                   combiner, max_norm, blocknums, default_id):
    """Checks a fused lookup's arguments; returns its `_Table` and the ids' static rank."""
    _check_options(api, combiner, max_norm, blocknums)
    _check_sparse(api, sp_ids, sp_weights, ids_arg, "sparse_weights")
    table = _Table(api, params, partition_strategy)
    table.check_ids(api, sp_ids.values)
    table.check_default_id(api, default_id, sp_ids.dtype)
    return table, _static_rank(sp_ids)


def _fused_lookup(table: _Table, sp_ids, sp_weights, combiner, max_norm, default_id,
                  prune_ids: bool, prune_weights: bool, sparse_rank: int):
    """[prod(dense_shape[:-1]), dim] combined embeddings of the rows of sp_ids."""
    if sp_weights is None:
        weights = array_ops.ones_like(sp_ids.values, dtype=table.dtype)
    else:
        weights = math_ops.cast(sp_weights.values, table.dtype)
    pre = kv_ops.fused_embedding_sparse_pre_look_up(
        sp_ids.values, sp_ids.indices, sp_ids.dense_shape, weights,
        ops.convert_to_tensor(table.table_rows, dtypes.int64),
        num_partitions=len(table.shards), partition_strategy=table.strategy,
        sparse_rank=sparse_rank, prune_invalid_ids=prune_ids,
        prune_invalid_weights=prune_weights, fill_empty_rows=default_id is not None,
        default_id=0 if default_id is None else int(default_id),
        # Each distinct id is read once, as TF's lookups do; an EV also gets
        # each id's number of entries, so that frequency counting and
        # admission see every occurrence.
        unique=True)
    gathered = [table.gather(i, ids, counts if table.is_ev else None)
                for i, (ids, counts) in enumerate(zip(pre.partitioned_ids,
                                                      pre.partitioned_counts, strict=True))]
    return kv_ops.fused_embedding_sparse_post_look_up(
        gathered, pre.positions, pre.rows, pre.weights, sp_ids.dense_shape,
        combiner=combiner, max_norm=-1.0 if max_norm is None else float(max_norm))


def fused_embedding_lookup_sparse(params, sp_ids, sparse_weights=None,
                                  partition_strategy=None, name=None, combiner=None,
                                  max_norm=None, default_id=None, prune_invalid_ids=False,
                                  blocknums=None):
    """Combines the embeddings of each row of a rank-2 `sp_ids`, in three ops.

    Computes what `tf.nn.embedding_lookup_sparse` computes, with one output
    row per row of `sp_ids.dense_shape[0]`: rows without ids are zero, or
    `default_id`'s embedding when `default_id` is given.

    Args:
      params: The embedding table: a rank-2 `tf.Variable` (ref or resource)
        or tensor, a list of them or a `PartitionedVariable` split on axis 0
        by `partition_strategy`, or an EmbeddingVariable,
        PartitionedEmbeddingVariable or list of EmbeddingVariable shards
        (which route ids by `(id mod 1000) mod shards` whatever
        `partition_strategy` says).
      sp_ids: `SparseTensor` of int32 or int64 ids with dense shape
        `[batch, max_ids]`; row i of the output combines row i's ids.
      sparse_weights: `None` (all weights 1) or a `SparseTensor` of float
        weights with the same indices as `sp_ids`.
      partition_strategy: `"div"` (the default) or `"mod"`, as in
        `tf.nn.embedding_lookup`, for lists of dense partitions.
      name: Name scope of the ops.
      combiner: `"mean"` (the default), `"sqrtn"` or `"sum"`.
      max_norm: If not None, each embedding is scaled down to this L2 norm
        if it is longer, before combining.
      default_id: If not None, the id whose embedding (weight 1) fills rows
        without ids.
      prune_invalid_ids: Whether to drop ids < 0 before the lookup.
      blocknums: DeepRec's DynamicEmbeddingVariable argument; must be None.

    Returns:
      A dense `[batch, dim]` tensor of the table's dtype.

    Raises:
      TypeError: `sp_ids` or `sparse_weights` is not a `SparseTensor`, the
        ids have the wrong dtype, or `params` mixes EmbeddingVariables with
        dense tables.
      ValueError: An unsupported combiner, partition_strategy, max_norm,
        default_id or blocknums; `sp_ids` not of rank 2; weights whose shape
        does not match the ids. Mismatches known only when the graph runs
        (e.g. ids outside a dense table, or weights with a different number
        of values) raise `InvalidArgumentError` from the ops.

    Example:
      >>> import numpy as np
      >>> import deeprec as tf
      >>> table = tf.constant(np.arange(8.0).reshape(4, 2), tf.float32)
      >>> ids = tf.SparseTensor([[0, 0], [0, 1], [2, 0]],
      ...                       tf.constant([1, 3, 2], tf.int64), [3, 2])
      >>> emb = tf.nn.fused_embedding_lookup_sparse(table, ids, combiner="sum")
      >>> with tf.Session() as sess:
      ...     print(sess.run(emb))
      [[ 8. 10.]
       [ 0.  0.]
       [ 4.  5.]]
    """
    api = "fused_embedding_lookup_sparse"
    combiner = "mean" if combiner is None else combiner
    table, rank = _checked_table(api, params, partition_strategy, sp_ids, sparse_weights,
                                 "sp_ids", combiner, max_norm, blocknums, default_id)
    if rank is not None and rank != 2:
        raise ValueError(f"{api}: sp_ids must have rank 2, got rank {rank}")
    with ops.name_scope(name, "fused_embedding_lookup_sparse"):
        return _fused_lookup(table, sp_ids, sparse_weights, combiner, max_norm,
                             default_id, prune_ids=bool(prune_invalid_ids),
                             prune_weights=False, sparse_rank=2)


def fused_safe_embedding_lookup_sparse(embedding_weights, sparse_ids, sparse_weights=None,
                                       combiner="mean", default_id=None, name=None,
                                       partition_strategy="div", max_norm=None, prune=True,
                                       blocknums=None):
    """`tf.nn.safe_embedding_lookup_sparse`, in three ops.

    With `prune` (the default), ids < 0 are dropped, and so are weights
    <= 0 unless `combiner` is `"sum"`. Rows left without ids get
    `default_id`'s embedding, or zeros when `default_id` is None. Ids of rank
    > 2 combine their last dimension.

    Unlike TensorFlow's function, empty rows without `default_id` look
    nothing up (TensorFlow reads id 0 and discards it), so they create no
    EmbeddingVariable key; the results and gradients are the same.

    Args:
      embedding_weights: The embedding table, as `params` of
        `fused_embedding_lookup_sparse`.
      sparse_ids: `SparseTensor` of int32 or int64 ids of shape
        `[d_0, ..., d_{n-1}, max_ids]`, n >= 1.
      sparse_weights: `None` (all weights 1) or a `SparseTensor` of float
        weights with the same indices as `sparse_ids`.
      combiner: `"mean"` (the default), `"sqrtn"` or `"sum"`.
      default_id: If not None, the id whose embedding fills empty rows.
      name: Name scope of the ops.
      partition_strategy: `"div"` (the default) or `"mod"`, for lists of
        dense partitions.
      max_norm: If not None, each embedding is scaled down to this L2 norm
        if it is longer, before combining.
      prune: Whether to drop invalid ids and weights (see above); without
        it every id is looked up.
      blocknums: DeepRec's DynamicEmbeddingVariable argument; must be None.

    Returns:
      A dense `[d_0, ..., d_{n-1}, dim]` tensor of the table's dtype.

    Raises:
      TypeError, ValueError: As `fused_embedding_lookup_sparse`, except
        that `sparse_ids` may have any rank >= 2.

    Example:
      >>> import numpy as np
      >>> import deeprec as tf
      >>> table = tf.constant(np.arange(8.0).reshape(4, 2), tf.float32)
      >>> ids = tf.SparseTensor([[0, 0], [0, 1], [1, 0]],
      ...                       tf.constant([1, 3, -1], tf.int64), [2, 2])
      >>> emb = tf.nn.fused_safe_embedding_lookup_sparse(table, ids, default_id=0)
      >>> with tf.Session() as sess:
      ...     print(sess.run(emb))
      [[4. 5.]
       [0. 1.]]
    """
    api = "fused_safe_embedding_lookup_sparse"
    combiner = "mean" if combiner is None else combiner
    table, rank = _checked_table(api, embedding_weights, partition_strategy, sparse_ids,
                                 sparse_weights, "sparse_ids", combiner, max_norm, blocknums,
                                 default_id)
    if rank is not None and rank < 2:
        raise ValueError(f"{api}: sparse_ids must have rank >= 2, got rank {rank}")
    with ops.name_scope(name, "fused_safe_embedding_lookup_sparse"):
        result = _fused_lookup(
            table, sparse_ids, sparse_weights, combiner, max_norm, default_id,
            prune_ids=bool(prune), prune_weights=bool(prune) and combiner != "sum",
            sparse_rank=-1)
        if rank == 2:
            return result
        shape = sparse_ids.dense_shape
        out_shape = array_ops.concat(
            [shape[:-1], math_ops.cast(array_ops.shape(result)[1:], dtypes.int64)], 0)
        final = array_ops.reshape(result, out_shape)
        value = tensor_util.constant_value(shape)
        static = tensor_shape.TensorShape(value[:-1].tolist()) if value is not None \
            else tensor_shape.unknown_shape(None if rank is None else rank - 1)
        final.set_shape(static.concatenate(result.shape[1:]))
        return final


@ops.RegisterGradient("FusedEmbeddingSparsePostLookUp")
def _post_look_up_grad(op: ops.Operation, grad: tensor_lib.Tensor):
    """Gradients for the gathered rows and the weights, from native kernels.

    The weights' gradient op runs only when something needs it, i.e. when
    the sparse weights depend on what is being differentiated.
    """
    n = op.get_attr("num_partitions")
    shards = op.inputs[:n]
    positions, rows, weights = op.inputs[n:n + 3]
    attrs = dict(combiner=op.get_attr("combiner"), max_norm=op.get_attr("max_norm"))
    grads = kv_ops.fused_embedding_sparse_post_look_up_grad(
        grad, shards, positions, rows, weights, **attrs)
    grad_weights = kv_ops.fused_embedding_sparse_post_look_up_weights_grad(
        grad, shards, positions, rows, weights, op.outputs[0], **attrs)
    return list(grads) + [None, None, grad_weights, None]


@ops.RegisterGradient("FusedEmbeddingSparsePreLookUp")
def _pre_look_up_grad(op: ops.Operation, *grads):
    """Routes the entries' weight gradients back to the sparse weights.

    Entries that fill empty rows (source -1) have no sparse weight; they are
    summed into an extra segment that is dropped.
    """
    n = op.get_attr("num_partitions")
    grad_weights = grads[n + 2]
    if grad_weights is None:
        return [None] * 5
    summed = route_weight_gradients(grad_weights, op.outputs[n + 3], op.inputs[0])
    return [None, None, None, summed, None]


def route_weight_gradients(grad_weights: tensor_lib.Tensor, sources: tensor_lib.Tensor,
                           sp_values: tensor_lib.Tensor) -> tensor_lib.Tensor:
    """Sums the planned entries' weight gradients into the sparse weights.

    `sources[i]` is the index in `sp_values` of entry i, or -1 for an entry
    that fills an empty row; those are summed into an extra segment that is
    dropped.
    """
    nnz = array_ops.size(sp_values, out_type=dtypes.int64)
    segments = array_ops.where_v2(sources >= 0, sources, nnz)
    summed = math_ops.unsorted_segment_sum(grad_weights, segments, nnz + 1)
    return summed[:nnz]


ops.NotDifferentiable("FusedEmbeddingSparsePostLookUpGrad")
ops.NotDifferentiable("FusedEmbeddingSparsePostLookUpWeightsGrad")
