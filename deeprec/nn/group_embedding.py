"""Grouped embedding lookups (DeepRec's Group Embedding, localized mode, §3.6).

`group_embedding_lookup_sparse` looks up many sparse features, each in its
own table, with a few ops per group of tables instead of a subgraph per
feature:

1. `GroupEmbeddingSparsePreLookUp`, one op over the ids of every table of
   the group, prunes ids < 0 (and weights <= 0 unless the combiner is
   "sum"), orders the entries by output row, splits each table's ids over
   its partitions and deduplicates them;
2. one gather per table partition: `tf.gather` on dense tables, and on
   EmbeddingVariables `KvResourceGatherWithCounts`, which reads each
   distinct id once while counting every occurrence (frequencies and
   admission filters end up as with the unfused lookup);
3. `GroupEmbeddingSparsePostLookUp`, one op, combines every table's rows.
   Its gradient is one native op for all the tables' gathered rows; the
   gathers turn it into `IndexedSlices` for the optimizers.

`group_embedding_lookup` does the same for dense ids (each id its own row).
The per-table kernel logic is the fused lookup's
(`tf.nn.fused_safe_embedding_lookup_sparse`).
"""

import numbers
import sys
from collections.abc import Sequence

from tensorflow.python.framework import constant_op, dtypes, ops, sparse_tensor
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import array_ops, array_ops_stack, math_ops

from deeprec._native import ops as kv_ops
from deeprec.nn.fused_embedding import (
    _COMBINERS,
    _check_sparse,
    _static_rank,
    _Table,
    route_weight_gradients,
)

__all__ = ["group_embedding_lookup", "group_embedding_lookup_sparse"]


def _as_list(api: str, arg: str, value, n: int | None = None) -> list:
    """`value` (a list or tuple) as a list, of length `n` if given."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{api}: {arg} must be a list or tuple, got {type(value).__name__}")
    if n is not None and len(value) != n:
        raise ValueError(f"{api}: {arg} has {len(value)} entries but params has {n}")
    return list(value)


def _tables(api: str, params, partition_strategy) -> list[_Table]:
    params = _as_list(api, "params", params)
    if not params:
        raise ValueError(f"{api}: params is an empty list")
    tables = [_Table(f"{api} (params[{i}])", p, partition_strategy)
              for i, p in enumerate(params)]
    dtype_set = {t.dtype.base_dtype for t in tables}
    if len(dtype_set) > 1:
        kinds = ", ".join(f"params[{i}] is {t.dtype.base_dtype.name}"
                          for i, t in enumerate(tables))
        raise ValueError(f"{api}: the tables must all have one dtype, but {kinds}")
    return tables


def _check_group_size(api: str, params_num_per_group) -> int:
    if isinstance(params_num_per_group, bool) \
            or not isinstance(params_num_per_group, numbers.Integral) \
            or params_num_per_group < 1:
        raise ValueError(f"{api}: params_num_per_group must be a positive int, got "
                         f"{params_num_per_group!r}")
    return int(params_num_per_group)


def _table_rows(tables: list[_Table]) -> tensor_lib.Tensor:
    """int64 [tables]: each dense table's rows (0 for EmbeddingVariables)."""
    rows = [0 if t.is_ev else t.table_rows for t in tables]
    if all(isinstance(r, int) for r in rows):
        return constant_op.constant(rows, dtypes.int64, name="table_rows")
    return array_ops_stack.stack([math_ops.cast(r, dtypes.int64) for r in rows],
                                 name="table_rows")


def _gather_all(tables: list[_Table], partitioned_ids, partitioned_counts) -> list:
    """The gathered rows of every partition of every table, in order."""
    gathered, g = [], 0
    for table in tables:
        for p in range(len(table.shards)):
            gathered.append(table.gather(p, partitioned_ids[g], partitioned_counts[g]))
            g += 1
    return gathered


def _plan_attrs(tables: list[_Table], ids: list[tensor_lib.Tensor]) -> dict:
    """The pre-lookup attrs that describe the tables' partitions."""
    return dict(
        num_gathers=sum(len(t.shards) for t in tables),
        Tpartitioned=[i.dtype for t, i in zip(tables, ids, strict=True)
                      for _ in t.shards],
        num_partitions=[len(t.shards) for t in tables],
        partition_strategies=[t.strategy for t in tables])


def _lookup_sparse_group(tables, sp_ids, combiners, sp_weights, is_sequence, max_norms):
    """The combined embeddings of one group of tables (see module doc)."""
    dtype = tables[0].dtype
    no_weights = array_ops.zeros([0], dtype, name="no_weights")
    weights = [no_weights if w is None else math_ops.cast(w.values, dtype)
               for w in sp_weights]
    pre = kv_ops.group_embedding_sparse_pre_look_up(
        sp_values=[s.values for s in sp_ids], sp_indices=[s.indices for s in sp_ids],
        sp_dense_shape=[s.dense_shape for s in sp_ids], sp_weights=weights,
        table_rows=_table_rows(tables), combiners=combiners,
        weighted=[w is not None for w in sp_weights], is_sequence=is_sequence,
        **_plan_attrs(tables, [s.values for s in sp_ids]))
    gathered = _gather_all(tables, pre.partitioned_ids, pre.partitioned_counts)
    outputs = kv_ops.group_embedding_sparse_post_look_up(
        gathered, pre.positions, pre.rows, pre.weights,
        [s.dense_shape for s in sp_ids], num_partitions=[len(t.shards) for t in tables],
        combiners=combiners, max_norms=max_norms, is_sequence=is_sequence)
    for out, table in zip(outputs, tables, strict=True):
        out.set_shape(out.shape[:-1].concatenate([table.dim]))
    return outputs


def lookup_sparse_groups(api: str, params, sp_ids, combiners, sp_weights=None,
                         partition_strategy="mod", is_sequence=False,
                         params_num_per_group=sys.maxsize, name=None, max_norms=None):
    """`group_embedding_lookup_sparse` with per-table `max_norms` (None: no clipping).

    Feature columns use it for their `max_norm`; `api` names the caller in
    errors.
    """
    tables = _tables(api, params, partition_strategy)
    n = len(tables)
    sp_ids = _as_list(api, "sp_ids", sp_ids, n)
    combiners = _as_list(api, "combiners", combiners, n)
    sp_weights = [None] * n if sp_weights is None \
        else _as_list(api, "sp_weights", sp_weights, n)
    max_norms = [None] * n if max_norms is None else list(max_norms)
    group_size = _check_group_size(api, params_num_per_group)
    if not isinstance(is_sequence, bool):
        raise TypeError(f"{api}: is_sequence must be a bool, got {is_sequence!r}")
    for i, combiner in enumerate(combiners):
        if combiner not in _COMBINERS:
            raise ValueError(f"{api}: combiners[{i}] must be one of 'mean', 'sqrtn' or "
                             f"'sum', got {combiner!r}")
    for i, (table, ids, weights) in enumerate(zip(tables, sp_ids, sp_weights, strict=True)):
        _check_sparse(api, ids, weights, f"sp_ids[{i}]", f"sp_weights[{i}]")
        rank = _static_rank(ids)
        if rank is not None and rank != 2:
            raise ValueError(f"{api}: sp_ids[{i}] must have rank 2, got rank {rank} "
                             f"(dense_shape {ids.dense_shape.shape})")
        table.check_ids(f"{api} (sp_ids[{i}])", ids.values)
    norms = [-1.0 if m is None else float(m) for m in max_norms]
    outputs = []
    with ops.name_scope(name, "group_embedding_lookup_sparse"):
        for start in range(0, n, group_size):
            end = min(n, start + group_size)
            outputs += _lookup_sparse_group(
                tables[start:end], sp_ids[start:end], combiners[start:end],
                sp_weights[start:end], is_sequence, norms[start:end])
    return outputs


def group_embedding_lookup_sparse(params: Sequence, sp_ids: Sequence, combiners: Sequence,
                                  sp_weights: Sequence | None = None,
                                  partition_strategy: str = "mod", is_sequence: bool = False,
                                  params_num_per_group: int = sys.maxsize,
                                  name: str | None = None) -> list[tensor_lib.Tensor]:
    """Looks up many sparse features, one table each, with a few ops per group.

    Output i is what `tf.nn.safe_embedding_lookup_sparse(params[i], sp_ids[i],
    sp_weights[i], combiner=combiners[i])` computes: ids < 0 are dropped, and
    so are weights <= 0 unless the combiner is "sum"; rows without ids are
    zero. The tables are looked up in groups of `params_num_per_group`, each
    group with one native pre-lookup op, one gather per table partition, one
    native combining op and, in training, one native gradient op.
    EmbeddingVariables read each distinct id of a batch once and count all
    its occurrences, so frequencies and admission filters see what the
    unfused lookup shows them; their optimizers receive `IndexedSlices`.

    Args:
      params: List of tables, each a `tf.Variable` (or tensor) of shape
        `[rows, dim]`, a list of them or a `PartitionedVariable` (split by
        `partition_strategy`), an EmbeddingVariable or a partitioned
        EmbeddingVariable. The dims may differ; the dtypes must agree.
      sp_ids: List of `SparseTensor`s of int32 or int64 ids, shape
        `[batch, max_ids]`, one per table.
      combiners: List of "mean", "sum" or "sqrtn", one per table.
      sp_weights: None, or a list of one `SparseTensor` of float weights
        (with the indices of its ids) or None per table.
      partition_strategy: "mod" or "div", how lists of dense partitions
        split a table (as in `tf.nn.embedding_lookup`). Partitioned
        EmbeddingVariables always route id k to shard `(k mod 1000) mod n`.
      is_sequence: If True, nothing is combined: output i has shape
        `[batch, max_ids, dim_i]`, with the (weighted, per the combiner)
        embedding of the id at each cell, zeros where there is none, as the
        lookup of ids reshaped to `[batch, max_ids, 1]` gives.
      params_num_per_group: The most tables looked up by one set of ops.
        The default, one group, suits GPUs; on CPU, as DeepRec's guide
        advises, the smaller the better: a group works through its tables'
        rows after all their gathers, when the first tables' rows have left
        the cache. For 50 tables (docs/benchmarks.md), groups of 1 or 2 ran
        at 1.5-1.75x the unfused lookups' speed, as fast as the fused
        lookup, and one group of all 50 at 1.4-1.7x.
      name: Name scope of the ops.

    Returns:
      A list of dense tensors, `[batch, dim_i]` (or `[batch, max_ids,
      dim_i]` with `is_sequence`), one per table.

    Raises:
      TypeError: An argument that should be a list is not, `sp_ids[i]` or
        `sp_weights[i]` is not a `SparseTensor`, ids of the wrong dtype, or
        a table mixing EmbeddingVariables with other partitions.
      ValueError: List lengths that differ from `params`'s, an unsupported
        combiner, `sp_ids[i]` not of rank 2, tables of different dtypes, or
        a bad `partition_strategy` or `params_num_per_group`. Mismatches
        known only when the graph runs (e.g. ids outside a dense table)
        raise `InvalidArgumentError` from the ops.

    Example:
      >>> import numpy as np
      >>> import deeprec as tf
      >>> a = tf.constant(np.arange(8.0).reshape(4, 2), tf.float32)
      >>> b = tf.constant(np.ones((3, 3)), tf.float32)
      >>> ids_a = tf.SparseTensor([[0, 0], [0, 1], [1, 0]],
      ...                         tf.constant([1, 3, -1], tf.int64), [2, 2])
      >>> ids_b = tf.SparseTensor([[1, 0]], tf.constant([2], tf.int64), [2, 1])
      >>> emb_a, emb_b = tf.nn.group_embedding_lookup_sparse(
      ...     [a, b], [ids_a, ids_b], ["sum", "mean"])
      >>> with tf.Session() as sess:
      ...     print(sess.run(emb_a))
      ...     print(sess.run(emb_b))
      [[ 8. 10.]
       [ 0.  0.]]
      [[0. 0. 0.]
       [1. 1. 1.]]
    """
    return lookup_sparse_groups("group_embedding_lookup_sparse", params, sp_ids, combiners,
                                sp_weights, partition_strategy, is_sequence,
                                params_num_per_group, name)


def group_embedding_lookup(params: Sequence, ids: Sequence, partition_strategy: str = "mod",
                           name: str | None = None) -> list[tensor_lib.Tensor]:
    """`tf.nn.embedding_lookup` of many tables, with a few ops for all of them.

    Output i is `tf.nn.embedding_lookup(params[i], ids[i])`, of shape
    `ids[i].shape + [dim_i]`. One native op plans every table's lookup
    (routing ids to partitions and deduplicating them), one gather reads
    each table partition and one native op (with one native gradient)
    writes every output. EmbeddingVariables count every occurrence of an id.

    Args:
      params: List of tables, as for `group_embedding_lookup_sparse`.
      ids: List of int32 or int64 id tensors (any shape), one per table.
        Ids of dense tables must be rows of the table.
      partition_strategy: "mod" or "div", for lists of dense partitions.
      name: Name scope of the ops.

    Returns:
      A list of dense tensors, `ids[i].shape + [dim_i]`.

    Raises:
      TypeError, ValueError: As `group_embedding_lookup_sparse`, for the
        tables, list lengths and id dtypes.

    Example:
      >>> import numpy as np
      >>> import deeprec as tf
      >>> a = tf.constant(np.arange(8.0).reshape(4, 2), tf.float32)
      >>> b = tf.constant(np.arange(9.0).reshape(3, 3), tf.float32)
      >>> emb_a, emb_b = tf.nn.group_embedding_lookup(
      ...     [a, b], [tf.constant([[3], [0]]), tf.constant([1, 1, 2])])
      >>> emb_a.shape.as_list(), emb_b.shape.as_list()
      ([2, 1, 2], [3, 3])
      >>> with tf.Session() as sess:
      ...     print(sess.run(emb_a)[:, 0])
      [[6. 7.]
       [0. 1.]]
    """
    api = "group_embedding_lookup"
    tables = _tables(api, params, partition_strategy)
    n = len(tables)
    ids = _as_list(api, "ids", ids, n)
    converted = []
    for i, (table, value) in enumerate(zip(tables, ids, strict=True)):
        if isinstance(value, sparse_tensor.SparseTensor):
            raise TypeError(f"{api}: ids[{i}] is a SparseTensor; use "
                            "group_embedding_lookup_sparse")
        if table.is_ev:
            value = table.shards[0]._check_ids(value)
        else:
            value = ops.convert_to_tensor(value, name=f"ids_{i}")
        table.check_ids(f"{api} (ids[{i}])", value)
        converted.append(value)
    with ops.name_scope(name, "group_embedding_lookup"):
        pre = kv_ops.group_embedding_pre_look_up(
            ids=converted, table_rows=_table_rows(tables), N=n, T=tables[0].dtype,
            **_plan_attrs(tables, converted))
        gathered = _gather_all(tables, pre.partitioned_ids, pre.partitioned_counts)
        outputs = kv_ops.group_embedding_sparse_post_look_up(
            gathered, pre.positions, pre.rows, pre.weights, pre.ids_shapes,
            num_partitions=[len(t.shards) for t in tables], combiners=["sum"] * n,
            max_norms=[-1.0] * n, is_sequence=True)
    for out, value, table in zip(outputs, converted, tables, strict=True):
        out.set_shape(value.shape.concatenate([table.dim]))
    return outputs


def _post_look_up_inputs(op: ops.Operation):
    """(shards, positions, rows, weights) inputs of a group post-lookup op."""
    n, g = op.get_attr("N"), op.get_attr("num_gathers")
    inputs = list(op.inputs)
    return (inputs[:g], inputs[g:g + n], inputs[g + n:g + 2 * n],
            inputs[g + 2 * n:g + 3 * n])


@ops.RegisterGradient("GroupEmbeddingSparsePostLookUp")
def _group_post_look_up_grad(op: ops.Operation, *grads):
    """Gradients for every table's gathered rows and weights, from native kernels.

    Outputs that the loss does not use get zero gradients. The weights'
    gradient op runs only when something needs it, i.e. when sparse weights
    depend on what is being differentiated.
    """
    n = op.get_attr("N")
    top = [array_ops.zeros_like(out) if grad is None else ops.convert_to_tensor(grad)
           for grad, out in zip(grads, op.outputs, strict=True)]
    shards, positions, rows, weights = _post_look_up_inputs(op)
    attrs = dict(num_partitions=op.get_attr("num_partitions"),
                 combiners=op.get_attr("combiners"), max_norms=op.get_attr("max_norms"))
    grad_shards = kv_ops.group_embedding_sparse_post_look_up_grad(
        top, shards, positions, rows, weights, **attrs)
    grad_weights = kv_ops.group_embedding_sparse_post_look_up_weights_grad(
        top, shards, positions, rows, weights, list(op.outputs), **attrs)
    return list(grad_shards) + [None] * (2 * n) + list(grad_weights) + [None] * n


@ops.RegisterGradient("GroupEmbeddingSparsePreLookUp")
def _group_pre_look_up_grad(op: ops.Operation, *grads):
    """Routes the entries' weight gradients back to the weighted tables' sp_weights."""
    n, g = op.get_attr("N"), op.get_attr("num_gathers")
    grad_weights = grads[2 * g + 2 * n:2 * g + 3 * n]
    sources = op.outputs[2 * g + 3 * n:2 * g + 4 * n]
    weighted = op.get_attr("weighted")
    values = op.inputs[:n]
    routed = [route_weight_gradients(grad, source, value)
              if is_weighted and grad is not None else None
              for grad, source, value, is_weighted
              in zip(grad_weights, sources, values, weighted, strict=True)]
    return [None] * (3 * n) + routed + [None]


ops.NotDifferentiable("GroupEmbeddingPreLookUp")
ops.NotDifferentiable("GroupEmbeddingSparsePostLookUpGrad")
ops.NotDifferentiable("GroupEmbeddingSparsePostLookUpWeightsGrad")
