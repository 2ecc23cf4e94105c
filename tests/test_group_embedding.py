"""Grouped embedding lookups agree with per-table unfused lookups.

`tf.nn.group_embedding_lookup_sparse` output i (and its gradients with
respect to every table partition and the sparse weights) is compared at 1e-6
with `tf.nn.safe_embedding_lookup_sparse(params[i], sp_ids[i], sp_weights[i],
combiner=combiners[i])`, over random batches with empty rows, ids < 0,
repeated ids and weights <= 0, on tables of different dims and kinds (dense
variables, partitioned variables, lists of partitions, tensors,
EmbeddingVariables and partitioned EmbeddingVariables) in one group.
EmbeddingVariables are also checked by training, frequencies and admission
against twin variables looked up without grouping. `group_embedding_lookup`
is compared with `tf.nn.embedding_lookup`, and
`group_embedding_column_scope` with ungrouped feature columns.
"""

import numpy as np
import pytest

import deeprec as tf

ROWS = 40
TOL = {"rtol": 1e-6, "atol": 1e-6}
COMBINERS = ["mean", "sum", "sqrtn"]


def _table_values(dim, seed, rows=ROWS, dtype=np.float32):
    return np.random.RandomState(seed).uniform(-1, 1, (rows, dim)).astype(dtype)


def _batch(seed, batch=9, max_ids=5, vocab=ROWS, invalid=True):
    """(indices, ids, weights, dense_shape), row-major, of a random sparse batch.

    Rows hold 0 to max_ids ids (about a fifth are empty); ids repeat; with
    `invalid`, some ids are < 0 and some weights are <= 0.
    """
    rng = np.random.RandomState(seed)
    counts = np.where(rng.rand(batch) < 0.2, 0, rng.randint(1, max_ids + 1, batch))
    rows = np.repeat(np.arange(batch), counts)
    cols = np.concatenate([np.arange(c) for c in counts]) if rows.size else rows
    ids = rng.randint(0, vocab, rows.size)
    weights = rng.uniform(0.2, 2.0, rows.size).astype(np.float32)
    if invalid:
        ids[rng.rand(rows.size) < 0.15] = -3
        weights[rng.rand(rows.size) < 0.15] = rng.choice([0.0, -1.0])
    indices = np.stack([rows, cols], axis=1).astype(np.int64).reshape(-1, 2)
    return indices, ids.astype(np.int64), weights, [batch, max_ids]


def _sparse(indices, values, shape, dtype=None):
    return tf.SparseTensor(indices, tf.constant(values, dtype), shape)


def _loss(outs):
    """A scalar whose gradient differs per element of each output."""
    total = []
    for i, out in enumerate(outs):
        coeff = 0.5 + tf.cast(tf.range(tf.size(out)) % (5 + i), out.dtype) / 7.0
        total.append(tf.reduce_sum(tf.reshape(coeff, tf.shape(out)) * out)
                     + 0.5 * tf.reduce_sum(out * out))
    return tf.add_n(total)


def _dense(grads):
    return [tf.convert_to_tensor(g) for g in grads]


def _compare(got_outs, want_outs, xs):
    """Runs both lists of outputs and their gradients w.r.t. xs; compares them."""
    got_grads = _dense(tf.gradients(_loss(got_outs), xs, unconnected_gradients="zero"))
    want_grads = _dense(tf.gradients(_loss(want_outs), xs, unconnected_gradients="zero"))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got, want, got_g, want_g = sess.run([got_outs, want_outs, got_grads, want_grads])
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, f"output {i}"
        np.testing.assert_allclose(g, w, err_msg=f"output {i}", **TOL)
    for i, (g, w) in enumerate(zip(got_g, want_g, strict=True)):
        np.testing.assert_allclose(g, w, err_msg=f"gradient {i}", **TOL)
    return got, got_g


def _slice_init(values):
    def init(shape, dtype=None, partition_info=None):
        start = partition_info.var_offset[0] if partition_info else 0
        return tf.constant(values[start:start + shape[0]], dtype)
    return init


def _dense_tables(strategy, dtype=np.float32):
    """Tables of dims 2..7 and every dense kind: (params, shards of each)."""
    v = [_table_values(dim, seed=dim, dtype=dtype) for dim in range(2, 8)]
    res = tf.get_variable("res", initializer=v[0], use_resource=True)
    ref = tf.get_variable("ref", initializer=v[1], use_resource=False)
    part = tf.get_variable("part", shape=v[2].shape, dtype=tf.as_dtype(dtype),
                           initializer=_slice_init(v[2]),
                           partitioner=tf.fixed_size_partitioner(3))
    if strategy == "div":
        bounds = [0, 14, 27, 40]  # TF's "div" split of 40 rows in 3.
        pieces = [v[3][bounds[i]:bounds[i + 1]] for i in range(3)]
    else:
        pieces = [v[3][i::3] for i in range(3)]
    plist = [tf.get_variable(f"list_{i}", initializer=p, use_resource=True)
             for i, p in enumerate(pieces)]
    const = tf.constant(v[4])
    res2 = tf.get_variable("res2", initializer=v[5], use_resource=True)
    params = [res, ref, part, plist, const, res2]
    shards = [[res], [ref], list(part), plist, [], [res2]]
    return params, shards


# --- group_embedding_lookup_sparse on dense tables ---------------------------------

@pytest.mark.parametrize("strategy", ["div", "mod"])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_safe_lookup_per_table(strategy, weighted):
    params, shards = _dense_tables(strategy)
    n = len(params)
    combiners = [COMBINERS[i % 3] for i in range(n)]
    batches = [_batch(seed=10 * i + weighted) for i in range(n)]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    sp_weights = [_sparse(ind, w, shape) for ind, _, w, shape in batches] if weighted \
        else None
    got = tf.nn.group_embedding_lookup_sparse(params, sp_ids, combiners, sp_weights,
                                              partition_strategy=strategy)
    want = [tf.nn.safe_embedding_lookup_sparse(
        p, ids, None if sp_weights is None else sp_weights[i], combiner=combiners[i],
        partition_strategy=strategy) for i, (p, ids) in enumerate(zip(params, sp_ids, strict=True))]
    xs = [s for table in shards for s in table] + [params[4]]
    if weighted:
        xs += [w.values for w in sp_weights]
    outs, grads = _compare(got, want, xs)
    assert [o.shape for o in outs] == [(9, d) for d in range(2, 8)]
    # The inputs exercise what they are meant to.
    all_ids = np.concatenate([b[1] for b in batches])
    assert np.any(all_ids < 0) and any(len(set(range(9)) - set(b[0][:, 0])) for b in batches)
    if weighted:
        assert np.any(np.concatenate([b[2] for b in batches]) <= 0)
        assert all(np.any(g != 0) for g in grads[-n:])


def test_matches_numpy_reference():
    """An independent reference: weights, pruning, empty rows, every combiner."""
    a, b = _table_values(3, seed=1), _table_values(2, seed=2)
    ind = [[0, 0], [0, 1], [0, 2], [2, 0], [3, 0], [3, 1]]
    ids = [4, 9, 4, 30, -2, 8]
    weights = [1.0, 2.0, 0.5, 3.0, 1.0, -1.0]
    sp_ids = [_sparse(ind, ids, [5, 3]), _sparse(ind, ids, [5, 3]), _sparse(ind, ids, [5, 3])]
    sp_w = [_sparse(ind, weights, [5, 3], tf.float32)] * 3
    outs = tf.nn.group_embedding_lookup_sparse(
        [tf.constant(a), tf.constant(a), tf.constant(b)], sp_ids, ["mean", "sum", "sqrtn"],
        sp_w)
    mean = np.zeros((5, 3))
    mean[0] = (a[4] * 1.5 + a[9] * 2.0) / 3.5
    mean[2] = a[30]
    total = mean.copy()
    total[0] = a[4] * 1.5 + a[9] * 2.0
    total[2] = 3 * a[30]
    total[3] = -a[8]  # "sum" keeps the weight -1; id -2 is pruned.
    sqrtn = np.zeros((5, 2))
    sqrtn[0] = (b[4] * 1.5 + b[9] * 2.0) / np.sqrt(1 + 4 + 0.25)
    sqrtn[2] = b[30]
    with tf.Session() as sess:
        got = sess.run(outs)
    for g, w in zip(got, [mean, total, sqrtn], strict=True):
        np.testing.assert_allclose(g, w, **TOL)


def test_params_num_per_group_splits_the_tables_into_groups():
    params, _ = _dense_tables("div")
    n = len(params)
    batches = [_batch(seed=i) for i in range(n)]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    results = []
    for size in (1, 4, n, 100):
        with tf.name_scope(f"size{size}"):
            outs = tf.nn.group_embedding_lookup_sparse(
                params, sp_ids, ["sqrtn"] * n, params_num_per_group=size)
        posts = [op for op in tf.get_default_graph().get_operations()
                 if op.name.startswith(f"size{size}/")
                 and op.type == "GroupEmbeddingSparsePostLookUp"]
        assert len(posts) == -(-n // size)
        results.append(outs)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run(results)
    for other in got[1:]:
        for g, w in zip(other, got[0], strict=True):
            np.testing.assert_array_equal(g, w)


def test_builds_a_few_native_ops_for_the_whole_group():
    n = 8
    tables = [tf.get_variable(f"t{i}", initializer=_table_values(2 + i, seed=i),
                              use_resource=True) for i in range(n)]
    evs = [tf.get_embedding_variable(f"ev{i}", 3 + i) for i in range(2)]
    params = tables + evs
    batches = [_batch(seed=i) for i in range(len(params))]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    with tf.name_scope("group"):
        outs = tf.nn.group_embedding_lookup_sparse(params, sp_ids, ["mean"] * len(params))
    with tf.name_scope("grads"):
        grads = tf.gradients(_loss(outs), tables + [ev.handle for ev in evs])
    graph = tf.get_default_graph()
    types = sorted(op.type for op in graph.get_operations()
                   if op.name.startswith("group/") and op.type != "Const")
    assert types == sorted(["GroupEmbeddingSparsePreLookUp", "GroupEmbeddingSparsePostLookUp"]
                           + ["ResourceGather"] * n + ["KvResourceGatherWithCounts"] * 2), types
    grad_types = [op.type for op in graph.get_operations() if op.name.startswith("grads/")]
    assert grad_types.count("GroupEmbeddingSparsePostLookUpGrad") == 1
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
    # Nothing per table beyond reshaping the gathers' gradients.
    per_table = {"Unique", "SparseReshape", "SparseFillEmptyRows", "SegmentSum",
                 "UnsortedSegmentSum", "SparseSegmentSum", "GatherV2", "Where"}
    assert not per_table & set(grad_types) and not per_table & set(types)


@pytest.mark.parametrize("combiner", COMBINERS)
def test_is_sequence_matches_lookup_of_ids_with_a_last_dim_of_one(combiner):
    # float64: with one id per output row, the weights' gradients of "mean"
    # and "sqrtn" are zero up to rounding, which float32 would make larger
    # than the tolerance in both lookups.
    params, shards = _dense_tables("mod", np.float64)
    n = len(params)
    batches = [_batch(seed=30 + i, batch=6, max_ids=4) for i in range(n)]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    sp_weights = [_sparse(ind, w.astype(np.float64), shape) for ind, _, w, shape in batches]
    got = tf.nn.group_embedding_lookup_sparse(params, sp_ids, [combiner] * n, sp_weights,
                                              is_sequence=True)
    assert [o.shape.as_list() for o in got] == [[6, 4, d] for d in range(2, 8)]
    want = [tf.nn.safe_embedding_lookup_sparse(
        p, tf.sparse_reshape(ids, [6, 4, 1]), tf.sparse_reshape(w, [6, 4, 1]),
        combiner=combiner, partition_strategy="mod")
        for p, ids, w in zip(params, sp_ids, sp_weights, strict=True)]
    xs = [s for table in shards for s in table] + [w.values for w in sp_weights]
    _compare(got, want, xs)


def test_empty_rows_tables_and_batches():
    tables = [tf.get_variable(f"t{i}", initializer=_table_values(3, seed=i),
                              use_resource=True) for i in range(4)]
    empty = np.zeros([0, 2], np.int64)
    sp_ids = [
        _sparse(empty, np.zeros([0], np.int64), [4, 3]),  # No ids.
        _sparse(empty, np.zeros([0], np.int64), [0, 3]),  # No rows.
        _sparse([[1, 0], [1, 1]], [-1, -5], [3, 2]),  # Only pruned ids.
        _sparse([[2, 0]], [7], [4, 1]),
    ]
    got = tf.nn.group_embedding_lookup_sparse(tables, sp_ids, ["mean", "sum", "sqrtn", "mean"])
    want = [tf.nn.safe_embedding_lookup_sparse(t, s, combiner=c)
            for t, s, c in zip(tables, sp_ids, ["mean", "sum", "sqrtn", "mean"], strict=True)]
    outs, _ = _compare(got, want, tables)
    assert [o.shape for o in outs] == [(4, 3), (0, 3), (3, 3), (4, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_safe_lookup_for_vectorized_dims(dtype):
    # Rows of 16 to 512 bytes have combination kernels of their own; dim 12
    # (float32) and 6 (float64) do not. The partitioned table's gathered rows
    # come from several shards. (The weights' gradients, dot products over a
    # row, are left out: float32 rounding alone takes them past the tolerance
    # at these dims.)
    dims = [4, 8, 12, 16, 32, 64, 128] if dtype == np.float32 else [2, 4, 6, 8, 16, 64]
    values = [_table_values(d, seed=d, dtype=dtype) for d in dims]
    params = [tf.get_variable(f"t{i}", initializer=v, use_resource=True)
              for i, v in enumerate(values[:-1])]
    pieces = [values[-1][i::3] for i in range(3)]
    params.append([tf.get_variable(f"part_{i}", initializer=p, use_resource=True)
                   for i, p in enumerate(pieces)])
    batches = [_batch(seed=3 * i + 1, batch=16, max_ids=8) for i in range(len(dims))]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    sp_weights = [_sparse(ind, w.astype(dtype), shape) for ind, _, w, shape in batches]
    combiners = [COMBINERS[i % 3] for i in range(len(dims))]
    got = tf.nn.group_embedding_lookup_sparse(params, sp_ids, combiners, sp_weights)
    want = [tf.nn.safe_embedding_lookup_sparse(p, s, w, combiner=c, partition_strategy="mod")
            for p, s, w, c in zip(params, sp_ids, sp_weights, combiners, strict=True)]
    outs, _ = _compare(got, want, params[:-1] + params[-1])
    assert [o.shape for o in outs] == [(16, d) for d in dims]


def test_float64_tables_int32_ids_and_unsorted_indices():
    values = [_table_values(d, seed=d, dtype=np.float64) for d in (3, 4)]
    tables = [tf.get_variable(f"t{i}", initializer=v, use_resource=True)
              for i, v in enumerate(values)]
    ind, ids, w, shape = _batch(seed=5)
    perm = np.random.RandomState(0).permutation(len(ids))
    sp_ids = [_sparse(ind, ids.astype(np.int32), shape),
              _sparse(ind[perm], ids[perm], shape)]
    w = w.astype(np.float64)
    sp_w = [_sparse(ind, w, shape), _sparse(ind[perm], w[perm], shape)]
    got = tf.nn.group_embedding_lookup_sparse(tables, sp_ids, ["sqrtn", "mean"], sp_w)
    assert all(o.dtype == tf.float64 for o in got)
    sorted_ids = _sparse(ind, ids, shape)
    want = [tf.nn.safe_embedding_lookup_sparse(tables[0], sorted_ids, sp_w[0], combiner="sqrtn"),
            tf.nn.safe_embedding_lookup_sparse(tables[1], sorted_ids, _sparse(ind, w, shape),
                                               combiner="mean")]
    _compare(got, want, tables + [sp_w[0].values])


def test_dynamic_shapes_and_unused_outputs():
    table = tf.placeholder(tf.float32, [None, 4])
    other = tf.get_variable("other", initializer=_table_values(2, seed=3), use_resource=True)
    sp = [tf.sparse_placeholder(tf.int64), tf.sparse_placeholder(tf.int64)]
    got = tf.nn.group_embedding_lookup_sparse([table, other], sp, ["mean", "sum"])
    assert got[0].shape.as_list() == [None, 4]
    # Only the first output reaches the loss; the second gets zero gradients.
    [g_got] = tf.gradients(_loss(got[:1]), [other], unconnected_gradients="zero")
    assert g_got is not None
    ind, ids, _, shape = _batch(seed=2)
    feed = {table: _table_values(4, seed=9), sp[0]: (ind, ids, shape),
            sp[1]: (ind, ids, shape)}
    want = tf.nn.safe_embedding_lookup_sparse(table, sp[0])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        g, w, grad = sess.run([got[0], want, tf.convert_to_tensor(g_got)], feed)
    np.testing.assert_allclose(g, w, **TOL)
    np.testing.assert_array_equal(grad, 0)


def _weighted_group(seed, batch, combiner):
    """Outputs of a weighted group lookup of every dense table kind, and two
    of the tables' gradients."""
    params, _ = _dense_tables("div")
    n = len(params)
    batches = [_batch(seed=seed + i, batch=batch, max_ids=8) for i in range(n)]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    sp_w = [_sparse(ind, w, shape) for ind, _, w, shape in batches]
    outs = tf.nn.group_embedding_lookup_sparse(params, sp_ids, [combiner] * n, sp_w)
    return outs + _dense(tf.gradients(_loss(outs), [params[0], params[5]]))


def test_concurrent_runs_agree(run_concurrently):
    fetch = _weighted_group(seed=50, batch=100, combiner="sqrtn")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        want = sess.run(fetch)
        results = run_concurrently(sess, fetch, threads=4, runs=10)
    assert len(results) == 40
    for got in results:
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_tables_planned_in_parallel_match_one_thread():
    # Thousands of entries per table make the pre-lookup plan its tables on
    # two threads, each allocating its own outputs; partitioned tables
    # included. The plan, and so every result, must not depend on that.
    fetch = _weighted_group(seed=70, batch=1500, combiner="mean")
    results = []
    for threads in (1, 2):
        config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                                inter_op_parallelism_threads=1)
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            results.append(sess.run(fetch))
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(two, one)


# --- group_embedding_lookup (dense ids) ----------------------------------------------

def test_dense_ids_match_embedding_lookup():
    params, shards = _dense_tables("mod")
    rng = np.random.RandomState(4)
    shapes = [[3], [2, 4], [], [5, 1], [2, 2, 2], [0]]
    ids = [tf.constant(rng.randint(0, ROWS, s), tf.int64 if i % 2 else tf.int32)
           for i, s in enumerate(shapes)]
    got = tf.nn.group_embedding_lookup(params, ids, partition_strategy="mod")
    want = [tf.nn.embedding_lookup(p, i, partition_strategy="mod")
            for p, i in zip(params, ids, strict=True)]
    assert [o.shape.as_list() for o in got] == [s + [d] for s, d in zip(shapes, range(2, 8),
                                                                         strict=True)]
    _compare(got, want, [s for table in shards for s in table] + [params[4]])


# --- EmbeddingVariables ---------------------------------------------------------------

EV_ROWS = 64


def _twin_evs(prefix, dims, option=None, partitions=None):
    """EmbeddingVariables whose key k < EV_ROWS starts at a fixed row (same per prefix)."""
    option = option or tf.EmbeddingVariableOption(
        init_option=tf.InitializerOption(default_value_dim=EV_ROWS))
    evs = []
    for i, dim in enumerate(dims):
        partitioner = tf.fixed_size_partitioner(partitions[i]) \
            if partitions and partitions[i] else None
        evs.append(tf.get_embedding_variable(
            f"{prefix}_{i}", dim, initializer=_table_values(dim, 100 + i, EV_ROWS),
            ev_option=option, partitioner=partitioner))
    return evs


def _shards(ev):
    return list(ev) if isinstance(ev, tf.PartitionedEmbeddingVariable) else [ev]


def _export(sess, evs):
    tables = []
    for ev in evs:
        table = {}
        for shard in _shards(ev):
            keys, values, _, freqs = sess.run(shard.export())
            table.update({int(k): (v, int(f))
                          for k, v, f in zip(keys, values, freqs, strict=True)})
        tables.append(table)
    return tables


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_ev_tables_match_unfused_lookups_and_train_alike(optimizer):
    dims, partitions = [3, 8, 5, 4], [None, None, 3, 2]
    grouped = _twin_evs("grouped", dims, partitions=partitions)
    grouped[3] = list(grouped[3])  # A plain list of shards.
    unfused = _twin_evs("unfused", dims, partitions=partitions)
    combiners = ["mean", "sum", "sqrtn", "mean"]
    batches = [_batch(seed=70 + i, vocab=EV_ROWS) for i in range(4)]
    sp_ids = [_sparse(ind, ids, shape) for ind, ids, _, shape in batches]
    sp_w = [_sparse(ind, w, shape) for ind, _, w, shape in batches]
    got = tf.nn.group_embedding_lookup_sparse(grouped, sp_ids, combiners, sp_w)
    want = [tf.nn.safe_embedding_lookup_sparse(ev, ids, w, combiner=c)
            for ev, ids, w, c in zip(unfused, sp_ids, sp_w, combiners, strict=True)]

    def train(outs, evs):
        opt = tf.train.GradientDescentOptimizer(0.3) if optimizer == "sgd" \
            else tf.train.AdagradOptimizer(0.3)
        shards = [s for ev in evs for s in (ev if isinstance(ev, list) else _shards(ev))]
        grads = opt.compute_gradients(_loss(outs), var_list=shards)
        assert all(isinstance(g, tf.IndexedSlices) for g, _ in grads)
        return opt.apply_gradients(grads)

    steps = [train(got, grouped), train(want, unfused)]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(3):
            g, w, _, _ = sess.run([got, want] + steps)
            for i, (a, b) in enumerate(zip(g, w, strict=True)):
                np.testing.assert_allclose(a, b, err_msg=f"step {step}, output {i}", **TOL)
        got_tables = _export(sess, [grouped[0], grouped[1], grouped[2]]
                             + [tf.PartitionedEmbeddingVariable("x", grouped[3])])
        want_tables = _export(sess, unfused)
    for i, (gt, wt) in enumerate(zip(got_tables, want_tables, strict=True)):
        # The same keys (pruned ids created none), values and frequencies:
        # every occurrence of an id counts although the grouped lookup reads
        # each distinct id once.
        assert sorted(gt) == sorted(wt), f"table {i}"
        for key, (value, freq) in wt.items():
            np.testing.assert_allclose(gt[key][0], value, err_msg=f"key {key}", **TOL)
            assert gt[key][1] == freq, f"table {i} key {key}"
    assert max(f for t in want_tables for _, f in t.values()) > 3


def test_ev_gradient_is_indexed_slices_of_distinct_ids():
    [ev] = _twin_evs("ev", [3])
    sp_ids = _sparse([[0, 0], [0, 1], [2, 0], [2, 1]], [10**12, 5, 5, 5], [3, 2])
    [out] = tf.nn.group_embedding_lookup_sparse([ev], [sp_ids], ["sum"])
    [grad] = tf.gradients(tf.reduce_sum(out * 3.0), [ev])
    assert isinstance(grad, tf.IndexedSlices)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        indices, values = sess.run([grad.indices, grad.values])
        freq = sess.run(ev.get_frequency(tf.constant([10**12, 5], tf.int64)))
    np.testing.assert_array_equal(indices, [10**12, 5])
    np.testing.assert_array_equal(values, [[3.0] * 3, [9.0] * 3])
    np.testing.assert_array_equal(freq, [1, 3])


def test_ev_admission_filter_admits_what_the_unfused_lookup_admits():
    option = tf.EmbeddingVariableOption(
        filter_option=tf.CounterFilter(filter_freq=3),
        init_option=tf.InitializerOption(default_value_no_permission=-0.5,
                                         default_value_dim=EV_ROWS))
    grouped, unfused = _twin_evs("g", [3], option), _twin_evs("u", [3], option)
    rows = [[1, 1, 2], [], [2, 3, 60], [1, -4], [3]]
    indices = [[r, j] for r, ids in enumerate(rows) for j in range(len(ids))]
    sp_ids = _sparse(indices, [i for ids in rows for i in ids], [5, 3], tf.int64)
    got = tf.nn.group_embedding_lookup_sparse(grouped, [sp_ids], ["sqrtn"])
    want = [tf.nn.safe_embedding_lookup_sparse(unfused[0], sp_ids, combiner="sqrtn")]
    steps = [tf.train.GradientDescentOptimizer(0.25).minimize(_loss(o), var_list=v)
             for o, v in ((got, grouped), (want, unfused))]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(2):
            g, w, _, _ = sess.run([got, want] + steps)
            np.testing.assert_allclose(g[0], w[0], err_msg=f"step {step}", **TOL)
        got_table, want_table = _export(sess, grouped)[0], _export(sess, unfused)[0]
        stats = sess.run([grouped[0].stats(), unfused[0].stats()])
    # Ids 1, 2 and 3 were seen >= 3 times in the two steps; 60 twice; -4 was
    # pruned.
    assert sorted(got_table) == sorted(want_table) == [1, 2, 3]
    for key in want_table:
        np.testing.assert_allclose(got_table[key][0], want_table[key][0], **TOL)
        assert got_table[key][1] == want_table[key][1]
    np.testing.assert_array_equal(stats[0], stats[1])


def test_ev_dense_ids_match_embedding_lookup_and_count_every_id():
    grouped, unfused = _twin_evs("g", [3, 4], partitions=[None, 2]), \
        _twin_evs("u", [3, 4], partitions=[None, 2])
    ids = [tf.constant([[5, 7], [5, 5]], tf.int64), tf.constant([9, -3, 9], tf.int64)]
    got = tf.nn.group_embedding_lookup(grouped, ids)
    want = [tf.nn.embedding_lookup(ev, i) for ev, i in zip(unfused, ids, strict=True)]
    shards = [s for ev in grouped for s in _shards(ev)]
    grads = tf.gradients(_loss(got), shards)
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
    freq = [ev.get_frequency(tf.constant([5, 7], tf.int64)) for ev in (grouped[0], unfused[0])]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        g, w = sess.run([got, want])
        for a, b in zip(g, w, strict=True):
            np.testing.assert_allclose(a, b, **TOL)
        f_got, f_want = sess.run(freq)
    np.testing.assert_array_equal(f_got, f_want)
    np.testing.assert_array_equal(f_got, [3, 1])


def test_int32_keyed_ev_with_dense_tables_in_one_group():
    ev = tf.get_embedding_variable("ev32", 3, key_dtype=tf.int32,
                                   initializer=tf.ones_initializer())
    table = tf.get_variable("t", initializer=_table_values(2, seed=1), use_resource=True)
    sp = [_sparse([[0, 0], [1, 0]], [7, 7], [2, 1], tf.int32),
          _sparse([[0, 0], [1, 0]], [3, 4], [2, 1])]
    outs = tf.nn.group_embedding_lookup_sparse([ev, table], sp, ["sum", "sum"])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run(outs)
        freq = sess.run(ev.get_frequency(tf.constant([7], tf.int32)))
    np.testing.assert_array_equal(got[0], np.ones((2, 3)))
    np.testing.assert_allclose(got[1], _table_values(2, seed=1)[[3, 4]], **TOL)
    np.testing.assert_array_equal(freq, [2])


# --- bad input --------------------------------------------------------------------------

def _bad_input_args():
    table = tf.constant(_table_values(2, seed=0))
    sp = _sparse([[0, 0]], [1], [1, 1])
    return table, sp


@pytest.mark.parametrize("case, error, match", [
    ("params_not_list", TypeError,
     "group_embedding_lookup_sparse: params must be a list or tuple, got"),
    ("empty_params", ValueError, "group_embedding_lookup_sparse: params is an empty list"),
    ("sp_ids_length", ValueError,
     r"group_embedding_lookup_sparse: sp_ids has 1 entries but params has 2"),
    ("combiners_length", ValueError,
     r"group_embedding_lookup_sparse: combiners has 3 entries but params has 2"),
    ("weights_length", ValueError,
     r"group_embedding_lookup_sparse: sp_weights has 1 entries but params has 2"),
    ("combiner", ValueError,
     r"group_embedding_lookup_sparse: combiners\[1\] must be one of 'mean', 'sqrtn' or "
     r"'sum', got 'max'"),
    ("not_sparse", TypeError,
     r"group_embedding_lookup_sparse: sp_ids\[1\] must be a SparseTensor, got"),
    ("rank3", ValueError,
     r"group_embedding_lookup_sparse: sp_ids\[0\] must have rank 2, got rank 3"),
    ("weights_not_sparse", TypeError,
     r"sp_weights\[0\] must be None or a SparseTensor"),
    ("weights_shape", ValueError, r"sp_weights\[1\].values has shape \(2,\) but "
                                  r"sp_ids\[1\].values has shape \(1,\)"),
    ("mixed_dtypes", ValueError,
     "group_embedding_lookup_sparse: the tables must all have one dtype, but params"
     r"\[0\] is float32, params\[1\] is float64"),
    ("mixed_shards", TypeError,
     r"group_embedding_lookup_sparse \(params\[1\]\): params mixes EmbeddingVariables "
     "with other tables"),
    ("table_rank", ValueError,
     r"group_embedding_lookup_sparse \(params\[0\]\): embedding tables must have rank 2"),
    ("ev_key_dtype", TypeError,
     "has key_dtype int64 but was looked up with ids of dtype int32"),
    ("string_ids", TypeError, "sparse ids must be int32 or int64, got string"),
    ("strategy", ValueError, "partition_strategy must be 'div' or 'mod', got 'hash'"),
    ("group_size", ValueError,
     "group_embedding_lookup_sparse: params_num_per_group must be a positive int, got 0"),
    ("is_sequence", TypeError, "is_sequence must be a bool, got 'yes'"),
])
def test_bad_input_raises_a_clear_error(case, error, match):
    table, sp = _bad_input_args()
    params, ids, combiners, kwargs = [table, table], [sp, sp], ["sum", "mean"], {}
    if case == "params_not_list":
        params = table
    elif case == "empty_params":
        params, ids, combiners = [], [], []
    elif case == "sp_ids_length":
        ids = [sp]
    elif case == "combiners_length":
        combiners = ["sum"] * 3
    elif case == "weights_length":
        kwargs["sp_weights"] = [None]
    elif case == "combiner":
        combiners = ["sum", "max"]
    elif case == "not_sparse":
        ids = [sp, tf.constant([[1]])]
    elif case == "rank3":
        ids = [_sparse([[0, 0, 0]], [1], [1, 1, 1]), sp]
    elif case == "weights_not_sparse":
        kwargs["sp_weights"] = [tf.constant([1.0]), None]
    elif case == "weights_shape":
        kwargs["sp_weights"] = [None, _sparse([[0, 0], [0, 1]], [1.0, 2.0], [1, 2],
                                              tf.float32)]
    elif case == "mixed_dtypes":
        params = [table, tf.constant(_table_values(2, seed=0, dtype=np.float64))]
    elif case == "mixed_shards":
        params = [table, [tf.get_embedding_variable("ev", 2), table]]
    elif case == "table_rank":
        params = [tf.constant([1.0, 2.0]), table]
    elif case == "ev_key_dtype":
        params = [tf.get_embedding_variable("ev", 2), table]
        ids = [_sparse([[0, 0]], [1], [1, 1], tf.int32), sp]
    elif case == "string_ids":
        ids = [sp, _sparse([[0, 0]], ["a"], [1, 1])]
    elif case == "strategy":
        kwargs["partition_strategy"] = "hash"
    elif case == "group_size":
        kwargs["params_num_per_group"] = 0
    elif case == "is_sequence":
        kwargs["is_sequence"] = "yes"
    with pytest.raises(error, match=match):
        tf.nn.group_embedding_lookup_sparse(params, ids, combiners, **kwargs)


def test_bad_dense_ids_raise_clear_errors():
    table = tf.constant(_table_values(2, seed=0))
    with pytest.raises(ValueError, match="group_embedding_lookup: ids has 1 entries but "
                                         "params has 2"):
        tf.nn.group_embedding_lookup([table, table], [tf.constant([1])])
    with pytest.raises(TypeError, match=r"group_embedding_lookup: ids\[0\] is a "
                                        "SparseTensor; use group_embedding_lookup_sparse"):
        tf.nn.group_embedding_lookup([table], [_sparse([[0, 0]], [1], [1, 1])])
    with pytest.raises(TypeError, match="sparse ids must be int32 or int64, got float32"):
        tf.nn.group_embedding_lookup([table], [tf.constant([1.0])])


def test_errors_found_when_the_graph_runs_name_the_op_input_and_table():
    table = tf.constant(_table_values(2, seed=0))
    good = _sparse([[0, 0]], [1], [1, 1])
    out_of_range = tf.nn.group_embedding_lookup_sparse(
        [table, table], [good, _sparse([[0, 0], [0, 1]], [3, ROWS], [1, 2])], ["sum"] * 2)
    with tf.Session() as sess, pytest.raises(
            tf.errors.InvalidArgumentError,
            match=r"GroupEmbeddingSparsePreLookUp: sp_values\[1\]\[1\] = 40 is not a row of "
                  r"the embedding table: not in \[0, 40\)"):
        sess.run(out_of_range)
    sp = tf.sparse_placeholder(tf.int64)
    dynamic = tf.nn.group_embedding_lookup_sparse([table], [sp], ["sum"])
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"GroupEmbeddingSparsePreLookUp: sparse ids must have rank 2, "
                                 r"got sp_dense_shape\[0\] \[1 1 1\]"):
            sess.run(dynamic, {sp: ([[0, 0, 0]], [1], [1, 1, 1])})
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"sp_indices\[0\]\[0, 0\] = 3 is out of bounds for "
                                 r"sp_dense_shape\[0\] \[2 2\]"):
            sess.run(dynamic, {sp: ([[3, 0]], [1], [2, 2])})
    dense = tf.nn.group_embedding_lookup([table], [tf.constant([-1])])
    with tf.Session() as sess, pytest.raises(
            tf.errors.InvalidArgumentError,
            match=r"GroupEmbeddingPreLookUp: ids\[0\]\[0\] = -1 is not a row"):
        sess.run(dense)


# --- group_embedding_column_scope ------------------------------------------------------

def _column_features(seed):
    rng = np.random.RandomState(seed)
    features = {}
    for key, vocab in (("ad", 30), ("user", 50), ("city", 20), ("tag", 10)):
        ind, ids, w, shape = _batch(seed=rng.randint(1000), batch=7, max_ids=4, vocab=vocab)
        features[key] = tf.SparseTensor(ind, tf.constant(ids), shape)
        if key == "tag":
            features["tag_weight"] = tf.SparseTensor(ind, tf.constant(np.abs(w)), shape)
    return features


def _columns(grouped):
    """Embedding columns of every supported kind, grouped into two groups or not."""
    def build():
        init = tf.random_uniform_initializer(-1, 1, seed=3)
        ev = tf.feature_column.categorical_column_with_embedding("ad", dtype=tf.int64)
        pev = tf.feature_column.categorical_column_with_embedding("user", dtype=tf.int64,
                                                                  partition_num=2)
        ident = tf.feature_column.categorical_column_with_identity("city", 20)
        weighted = tf.feature_column.weighted_categorical_column(
            tf.feature_column.categorical_column_with_identity("tag", 10), "tag_weight")
        return [tf.feature_column.embedding_column(ev, 4, initializer=init),
                tf.feature_column.embedding_column(pev, 3, combiner="sqrtn", initializer=init),
                tf.feature_column.embedding_column(ident, 5, combiner="sum", initializer=init,
                                                   max_norm=0.7),
                tf.feature_column.embedding_column(weighted, 2, initializer=init)]
    if not grouped:
        return build()
    with tf.feature_column.group_embedding_column_scope("item"):
        first = build()[:2]
    with tf.feature_column.group_embedding_column_scope("user"):
        second = build()[2:]
    return first + second


def _train_columns(grouped, steps=3):
    tf.reset_default_graph()
    features = _column_features(seed=1)
    columns = _columns(grouped)
    cols_to_vars, cols_to_out = {}, {}
    out = tf.feature_column.input_layer(features, columns, cols_to_vars=cols_to_vars,
                                        cols_to_output_tensors=cols_to_out)
    train = tf.train.AdagradOptimizer(0.3).minimize(_loss([out]))
    posts = [op for op in tf.get_default_graph().get_operations()
             if op.type == "GroupEmbeddingSparsePostLookUp"]
    names = {c.name: sorted(v.op.name for v in vs) for c, vs in cols_to_vars.items()}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = []
        for _ in range(steps):
            values.append(sess.run([out, cols_to_out])[0])
            sess.run(train)
        values.append(sess.run(out))
    return values, len(posts), names, sorted(c.name for c in cols_to_out)


def test_grouped_columns_match_ungrouped_columns_in_training():
    got, groups, got_vars, got_outs = _train_columns(grouped=True)
    want, none, want_vars, want_outs = _train_columns(grouped=False)
    assert (groups, none) == (2, 0)
    # The same variables and outputs, by the same names.
    assert got_vars == want_vars and got_outs == want_outs
    assert got_vars["ad_embedding"] == ["input_layer/ad_embedding/embedding_weights"]
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == (7, 14)
        np.testing.assert_allclose(g, w, err_msg=f"step {step}", **TOL)
    assert not np.allclose(got[0], got[-1])


def test_scopes_of_one_name_form_one_group():
    features = _column_features(seed=2)
    with tf.feature_column.group_embedding_column_scope("g"):
        a = tf.feature_column.embedding_column(
            tf.feature_column.categorical_column_with_identity("city", 20), 3)
    with tf.feature_column.group_embedding_column_scope("g"):
        b = tf.feature_column.embedding_column(
            tf.feature_column.categorical_column_with_embedding("ad", dtype=tf.int64), 2)
    with tf.feature_column.group_embedding_column_scope() as unnamed:
        c = tf.feature_column.embedding_column(
            tf.feature_column.categorical_column_with_identity("tag", 10), 2)
    assert (a.group_name, b.group_name, c.group_name) == ("g", "g", unnamed)
    tf.feature_column.input_layer(features, [a, b, c])
    posts = [op for op in tf.get_default_graph().get_operations()
             if op.type == "GroupEmbeddingSparsePostLookUp"]
    assert sorted(len(op.outputs) for op in posts) == [1, 2]


def test_grouped_column_outside_deeprec_input_layer_looks_itself_up():
    features = _column_features(seed=3)
    with tf.feature_column.group_embedding_column_scope("g"):
        grouped = tf.feature_column.embedding_column(
            tf.feature_column.categorical_column_with_identity("city", 20), 3,
            initializer=tf.ones_initializer())
    plain = tf.feature_column.embedding_column(
        tf.feature_column.categorical_column_with_identity("city", 20), 3,
        initializer=tf.ones_initializer())
    # TensorFlow's own input_layer does not collect the groups.
    got = tf.compat.v1.feature_column.input_layer(features, [grouped])
    want = tf.feature_column.input_layer(features, [plain])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        g, w = sess.run([got, want])
    np.testing.assert_allclose(g, w, **TOL)


def test_column_scope_errors():
    with pytest.raises(ValueError, match="group_embedding_column_scope: name must be None "
                                         "or a string of letters"), \
            tf.feature_column.group_embedding_column_scope("a b"):
        pass
    with pytest.raises(ValueError, match=r"group_embedding_column_scope\('inner'\): scopes do "
                                         r"not nest; it was opened inside "
                                         r"group_embedding_column_scope\('outer'\)"), \
            tf.feature_column.group_embedding_column_scope("outer"), \
            tf.feature_column.group_embedding_column_scope("inner"):
        pass
    ev = tf.feature_column.categorical_column_with_embedding("ad", dtype=tf.int64)
    ident = tf.feature_column.categorical_column_with_identity("city", 20)
    cases = [
        (lambda: tf.feature_column.embedding_column(ev, 2, do_fusion=True),
         r"embedding_column\('ad'\): a column with do_fusion=True"),
        (lambda: tf.feature_column.shared_embedding_columns([ident], 2),
         "shared_embedding_columns: a shared embedding column"),
        (lambda: tf.feature_column.embedding_column(
            tf.feature_column.sequence_categorical_column_with_embedding("s", tf.int64), 2),
         r"embedding_column\('s'\): a sequence embedding column"),
        (lambda: tf.feature_column.embedding_column(
            tf.feature_column.categorical_column_with_multihash("m", dims=(2, 2)), (2, 2)),
         r"embedding_column\('m'\): a multi-hash embedding column"),
    ]
    for build, match in cases:
        with pytest.raises(ValueError, match=match + r" cannot be looked up by "
                                                     r"group_embedding_column_scope\('g'\)"), \
                tf.feature_column.group_embedding_column_scope("g"):
            build()
    # The scope is closed again after an error.
    assert tf.feature_column.embedding_column(ident, 2).__class__.__name__ == "EmbeddingColumn"
