"""Fused sparse embedding lookups agree with TensorFlow's unfused lookups.

Every comparison builds the fused lookup and its stock counterpart
(`tf.nn.safe_embedding_lookup_sparse` / `embedding_lookup_sparse`) on the
same table in one graph, over random sparse ids with empty rows, ids < 0,
duplicate ids and zero or negative weights, and checks the outputs and the
gradients with respect to every partition and the weights (1e-6). EmbeddingVariables are
checked against a dense variable holding the same rows, and by training.
"""

import numpy as np
import pytest

import deeprec as tf

DIM = 5
ROWS = 50  # Not a multiple of the partition counts used below.
INIT = np.random.RandomState(7).uniform(-1, 1, (ROWS, DIM)).astype(np.float32)
TOL = {"rtol": 1e-6, "atol": 1e-6}
COMBINERS = ["sum", "mean", "sqrtn"]


# --- inputs -----------------------------------------------------------------------

def _random_ids(seed, lead=(12,), max_ids=4, vocab=ROWS, invalid=True, last_empty=False):
    """(indices, ids, weights, dense_shape) of a random batch, row-major.

    About a quarter of the cells are empty; with `invalid`, about 15% of the
    ids are negative and 15% of the weights are <= 0.
    """
    rng = np.random.RandomState(seed)
    indices, ids, weights = [], [], []
    cells = int(np.prod(lead))
    for cell in range(cells):
        count = 0 if (rng.rand() < 0.25 or (last_empty and cell == cells - 1)) \
            else rng.randint(1, max_ids + 1)
        for j in range(count):
            indices.append(list(np.unravel_index(cell, lead)) + [j])
            ids.append(rng.randint(0, vocab) if not invalid or rng.rand() > 0.15
                       else -rng.randint(1, 10))
            weights.append(rng.uniform(0.1, 2.0) if not invalid or rng.rand() > 0.15
                           else rng.choice([0.0, -0.5]))
    indices = np.asarray(indices, np.int64).reshape(-1, len(lead) + 1)
    return (indices, np.asarray(ids, np.int64), np.asarray(weights, np.float32),
            list(lead) + [max_ids])


def _sparse(indices, values, shape, dtype=None):
    return tf.SparseTensor(indices, tf.constant(values, dtype), shape)


# --- tables -----------------------------------------------------------------------

def _slice_initializer(table):
    """Initializes each partition of a partitioned variable with its rows of table."""
    def init(shape, dtype=None, partition_info=None):
        start = partition_info.var_offset[0] if partition_info else 0
        return tf.constant(table[start:start + shape[0]], dtype)
    return init


def _dense_table(kind, table=INIT):
    """(params, shard variables, partition_strategy) of a dense table of `kind`."""
    dtype = tf.as_dtype(table.dtype)
    if kind in ("resource", "ref"):
        var = tf.get_variable("table", initializer=table, use_resource=kind == "resource")
        return var, [var], "div"
    if kind == "partitioned3":
        var = tf.get_variable("table", shape=table.shape, dtype=dtype,
                              initializer=_slice_initializer(table),
                              partitioner=tf.fixed_size_partitioner(3))
        return var, list(var), "div"
    if kind == "div4":
        sizes = [13, 13, 12, 12]  # TF's "div" layout of 50 rows in 4 parts.
        bounds = np.cumsum([0] + sizes)
        shards = [tf.get_variable(f"table_{i}", initializer=table[bounds[i]:bounds[i + 1]],
                                  use_resource=True) for i in range(4)]
        return shards, shards, "div"
    assert kind == "mod3"
    shards = [tf.get_variable(f"table_{i}", initializer=table[i::3], use_resource=True)
              for i in range(3)]
    return shards, shards, "mod"


DENSE_KINDS = ["resource", "ref", "partitioned3", "div4", "mod3"]


def _loss(out):
    coeff = 0.5 + tf.cast(tf.range(tf.size(out)) % 7, out.dtype) / 7.0
    return tf.reduce_sum(tf.reshape(coeff, tf.shape(out)) * out) \
        + 0.5 * tf.reduce_sum(out * out)


def _dense_grads(loss, shards):
    grads = tf.gradients(loss, shards, unconnected_gradients="zero")
    return [tf.convert_to_tensor(g) for g in grads]


def _run_pairs(pairs, shards, weights=None):
    """Runs (fused, stock) output pairs and their gradients; compares them all.

    Gradients are taken with respect to every partition and, if given, the
    values of the sparse weights.
    """
    xs = list(shards) + ([] if weights is None else [weights.values])
    fetches = []
    for fused, stock in pairs:
        fetches.append((fused, stock, _dense_grads(_loss(fused), xs),
                        _dense_grads(_loss(stock), xs)))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        results = sess.run(fetches)
    for i, (got, want, got_grads, want_grads) in enumerate(results):
        np.testing.assert_allclose(got, want, err_msg=f"output of case {i}", **TOL)
        for p, (g, w) in enumerate(zip(got_grads, want_grads, strict=True)):
            np.testing.assert_allclose(g, w, err_msg=f"gradient {p} of case {i}", **TOL)
    if weights is not None:
        assert any(np.any(r[2][-1] != 0) for r in results), "no weight gradient"
    return results


# --- fused_safe_embedding_lookup_sparse on dense tables ---------------------------

@pytest.mark.parametrize("kind", DENSE_KINDS)
@pytest.mark.parametrize("combiner", COMBINERS)
def test_safe_lookup_matches_stock(kind, combiner):
    params, shards, strategy = _dense_table(kind)
    indices, ids, weights, shape = _random_ids(seed=len(kind) * 3 + len(combiner))
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    pairs = []
    for weighted in (False, True):
        for default_id in (None, 7):
            for max_norm in (None, 0.8):
                args = dict(sparse_weights=sp_weights if weighted else None,
                            combiner=combiner, default_id=default_id,
                            partition_strategy=strategy, max_norm=max_norm)
                pairs.append((tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, **args),
                              tf.nn.safe_embedding_lookup_sparse(params, sp_ids, **args)))
    results = _run_pairs(pairs, shards, sp_weights)
    assert results[0][0].shape == (12, DIM)
    # The inputs exercise what they are meant to.
    assert np.any(ids < 0) and np.any(weights <= 0)
    assert len(set(range(12)) - set(indices[:, 0])) > 0
    assert np.any(np.linalg.norm(INIT[ids[ids >= 0]], axis=1) > 0.8)


@pytest.mark.parametrize("dim", [8, 16, 64, 128])
@pytest.mark.parametrize("kind", ["resource", "mod3"])
def test_safe_lookup_matches_stock_for_vectorized_dims(dim, kind):
    # Rows of 8 to 128 float32s have combination kernels of their own. (The
    # weights' gradients, dot products over a row, are left out: float32
    # rounding alone takes them past the tolerance at these dims.)
    table = np.random.RandomState(dim).uniform(-1, 1, (ROWS, dim)).astype(np.float32)
    params, shards, strategy = _dense_table(kind, table)
    indices, ids, weights, shape = _random_ids(seed=dim)
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    # Clips about half the rows.
    max_norm = float(np.median(np.linalg.norm(table, axis=1)))
    pairs = []
    for combiner in COMBINERS:
        for clip in (None, max_norm):
            args = dict(sparse_weights=sp_weights, combiner=combiner,
                        partition_strategy=strategy, max_norm=clip)
            pairs.append((tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, **args),
                          tf.nn.safe_embedding_lookup_sparse(params, sp_ids, **args)))
    results = _run_pairs(pairs, shards)
    assert results[0][0].shape == (12, dim)


@pytest.mark.parametrize("kind", ["resource", "mod3"])
@pytest.mark.parametrize("combiner", COMBINERS)
def test_safe_lookup_rank3_matches_stock(kind, combiner):
    params, shards, strategy = _dense_table(kind)
    indices, ids, weights, shape = _random_ids(seed=11, lead=(3, 4), max_ids=3)
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    pairs = []
    for default_id in (None, 0):
        args = dict(sparse_weights=sp_weights, combiner=combiner, default_id=default_id,
                    partition_strategy=strategy, max_norm=0.9)
        fused = tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, **args)
        assert fused.shape.as_list() == [3, 4, DIM]
        pairs.append((fused, tf.nn.safe_embedding_lookup_sparse(params, sp_ids, **args)))
    _run_pairs(pairs, shards, sp_weights)


def test_safe_lookup_without_prune_looks_up_every_id():
    params, shards, _ = _dense_table("resource")
    indices, ids, weights, shape = _random_ids(seed=3, invalid=False)
    weights[::4] = 0.0  # Kept without pruning; they add nothing.
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    fused = tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, sp_weights,
                                                     combiner="sqrtn", prune=False)
    # With pruning, all-zero-weight rows would be empty; without, they are zero
    # too, but their ids are still gathered.
    stock = tf.nn.embedding_lookup_sparse(params, sp_ids, sp_weights, combiner="sqrtn")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got, want = sess.run([fused, stock])
    np.testing.assert_allclose(got[:len(want)], want, **TOL)
    np.testing.assert_array_equal(got[len(want):], 0)


def test_safe_lookup_with_dynamic_shapes_matches_stock():
    table = tf.placeholder(tf.float32, [None, DIM])
    sp = tf.sparse_placeholder(tf.int64)
    sp_w = tf.sparse_placeholder(tf.float32)
    fused = tf.nn.fused_safe_embedding_lookup_sparse(table, sp, sp_w, default_id=3,
                                                     max_norm=0.7)
    stock = tf.nn.safe_embedding_lookup_sparse(table, sp, sp_w, default_id=3, max_norm=0.7)
    # Like stock: the rank of the ids, and so of the result, is unknown.
    assert fused.shape.rank is None and stock.shape.rank is None
    [g_fused] = tf.gradients(_loss(fused), [table])
    [g_stock] = tf.gradients(_loss(stock), [table])
    indices, ids, weights, shape = _random_ids(seed=5, lead=(2, 3))
    feed = {table: INIT, sp: (indices, ids, shape), sp_w: (indices, weights, shape)}
    with tf.Session() as sess:
        got = sess.run([fused, tf.convert_to_tensor(g_fused)], feed)
        want = sess.run([stock, tf.convert_to_tensor(g_stock)], feed)
    assert got[0].shape == (2, 3, DIM)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)


def test_float64_table_and_int32_ids():
    table = INIT.astype(np.float64)
    params, shards, strategy = _dense_table("div4", table)
    indices, ids, weights, shape = _random_ids(seed=9)
    sp_ids = _sparse(indices, ids.astype(np.int32), shape)
    sp_weights = _sparse(indices, weights, shape)  # float32 weights, cast to the table's.
    pairs = []
    for combiner in COMBINERS:
        fused = tf.nn.fused_safe_embedding_lookup_sparse(
            params, sp_ids, sp_weights, combiner=combiner, max_norm=0.8)
        assert fused.dtype == tf.float64
        stock = tf.nn.safe_embedding_lookup_sparse(
            params, sp_ids, _sparse(indices, weights.astype(np.float64), shape),
            combiner=combiner, max_norm=0.8)
        pairs.append((fused, stock))
    _run_pairs(pairs, shards)


# --- fused_embedding_lookup_sparse on dense tables --------------------------------

@pytest.mark.parametrize("kind", DENSE_KINDS)
@pytest.mark.parametrize("combiner", COMBINERS + [None])
def test_lookup_matches_stock(kind, combiner):
    params, shards, strategy = _dense_table(kind)
    indices, ids, weights, shape = _random_ids(seed=len(kind) + 2 * len(combiner or ""),
                                               invalid=False, last_empty=True)
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    pairs = []
    for weighted in (False, True):
        for max_norm in (None, 0.8):
            args = dict(combiner=combiner, partition_strategy=strategy, max_norm=max_norm)
            fused = tf.nn.fused_embedding_lookup_sparse(
                params, sp_ids, sp_weights if weighted else None, **args)
            stock = tf.nn.embedding_lookup_sparse(
                params, sp_ids, sp_weights if weighted else None, **args)
            # TF's output stops at the last non-empty row; the fused one has
            # one row per row of the dense shape, zero when empty.
            rows = tf.shape(stock)[0]
            tail = fused[rows:]
            pairs.append((fused[:rows], stock))
            pairs.append((tail, tf.zeros_like(tail)))
    _run_pairs(pairs, shards, sp_weights)


@pytest.mark.parametrize("kind", ["resource", "partitioned3"])
@pytest.mark.parametrize("combiner", COMBINERS)
def test_lookup_default_id_and_pruning_match_stock_safe_lookup(kind, combiner):
    params, shards, strategy = _dense_table(kind)
    indices, ids, weights, shape = _random_ids(seed=4, last_empty=True)
    weights = np.abs(weights) + 0.1  # Only ids are pruned by the non-safe lookup.
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    pairs = []
    for default_id in (None, 49):
        args = dict(combiner=combiner, partition_strategy=strategy, default_id=default_id)
        fused = tf.nn.fused_embedding_lookup_sparse(params, sp_ids, sp_weights,
                                                    prune_invalid_ids=True, **args)
        pairs.append((fused, tf.nn.safe_embedding_lookup_sparse(params, sp_ids, sp_weights,
                                                                **args)))
    _run_pairs(pairs, shards, sp_weights)


def test_lookup_matches_numpy_reference():
    """An independent reference for weights, mean, max_norm and default_id."""
    table = tf.constant(INIT)
    sp_ids = _sparse([[0, 0], [0, 1], [0, 2], [2, 0], [3, 0], [3, 1]],
                     [4, 9, 4, 30, -2, 8], [5, 3])
    sp_weights = _sparse([[0, 0], [0, 1], [0, 2], [2, 0], [3, 0], [3, 1]],
                         [1.0, 2.0, 0.5, 3.0, 1.0, 0.25], [5, 3], tf.float32)
    out = tf.nn.fused_embedding_lookup_sparse(table, sp_ids, sp_weights, max_norm=0.6,
                                              default_id=1, prune_invalid_ids=True)

    def clip(v):
        return v * min(1.0, 0.6 / np.linalg.norm(v))

    want = np.stack([
        (clip(INIT[4]) * 1.5 + clip(INIT[9]) * 2.0) / 3.5,
        clip(INIT[1]),
        clip(INIT[30]),
        clip(INIT[8]),
        clip(INIT[1]),
    ])
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(out), want, **TOL)


def test_unsorted_indices_give_the_sorted_result():
    params, shards, _ = _dense_table("mod3")
    indices, ids, weights, shape = _random_ids(seed=21)
    perm = np.random.RandomState(0).permutation(len(ids))
    args = dict(combiner="sqrtn", default_id=2, max_norm=0.9, partition_strategy="mod")
    shuffled = tf.nn.fused_safe_embedding_lookup_sparse(
        params, _sparse(indices[perm], ids[perm], shape),
        _sparse(indices[perm], weights[perm], shape), **args)
    stock = tf.nn.safe_embedding_lookup_sparse(
        params, _sparse(indices, ids, shape), _sparse(indices, weights, shape), **args)
    _run_pairs([(shuffled, stock)], shards)


def test_zero_weight_sum_gives_zero_row():
    table = tf.get_variable("table", initializer=INIT, use_resource=True)
    sp_ids = _sparse([[0, 0], [0, 1], [1, 0]], [3, 4, 5], [2, 2])
    sp_weights = _sparse([[0, 0], [0, 1], [1, 0]], [0.0, 0.0, 1.0], [2, 2], tf.float32)
    pairs = [(tf.nn.fused_embedding_lookup_sparse(table, sp_ids, sp_weights, combiner=c),
              tf.nn.embedding_lookup_sparse(table, sp_ids, sp_weights, combiner=c))
             for c in COMBINERS]
    results = _run_pairs(pairs, [table], sp_weights)
    np.testing.assert_array_equal(results[1][0][0], 0)


def test_large_random_batch_matches_stock():
    # float64, so that the 1e-6 tolerance is not spent on float32 rounding of
    # sums of many terms taken in a different order.
    rng = np.random.RandomState(1)
    table = rng.uniform(-1, 1, (1000, 16))
    params, shards, _ = _dense_table("partitioned3", table)
    indices, ids, weights, shape = _random_ids(seed=2, lead=(300,), max_ids=12, vocab=1000)
    sp_ids = _sparse(indices, ids, shape)
    sp_weights = _sparse(indices, weights.astype(np.float64), shape)
    pairs = [(tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, sp_weights,
                                                       combiner=c, max_norm=2.0),
              tf.nn.safe_embedding_lookup_sparse(params, sp_ids, sp_weights,
                                                 combiner=c, max_norm=2.0))
             for c in COMBINERS]
    _run_pairs(pairs, shards, sp_weights)


@pytest.mark.parametrize("shape", [[4, 3], [0, 3]], ids=["no_ids", "no_rows"])
def test_empty_batches_match_stock(shape):
    params, shards, _ = _dense_table("partitioned3")
    empty = np.zeros([0, 2], np.int64)
    sp_ids = _sparse(empty, np.zeros([0], np.int64), shape)
    sp_weights = _sparse(empty, np.zeros([0], np.float32), shape)
    pairs = []
    for default_id in (None, 2):
        args = dict(combiner="mean", default_id=default_id)
        pairs.append((tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, sp_weights,
                                                               **args),
                      tf.nn.safe_embedding_lookup_sparse(params, sp_ids, sp_weights, **args)))
    results = _run_pairs(pairs, shards)
    assert results[0][0].shape == (shape[0], DIM)


# --- graph structure and gradients ------------------------------------------------

def test_builds_three_stages_and_indexed_slices_of_distinct_ids():
    params, shards, _ = _dense_table("div4")
    sp_ids = _sparse([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]], [3, 3, 40, 3, -1], [4, 2])
    with tf.name_scope("fused"):
        out = tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, combiner="sum")
    types = sorted(op.type for op in tf.get_default_graph().get_operations()
                   if op.name.startswith("fused/") and op.type != "Const")
    assert types == sorted(["FusedEmbeddingSparsePreLookUp", "FusedEmbeddingSparsePostLookUp",
                            "Fill"] + ["ResourceGather"] * 4), types
    grads = tf.gradients(tf.reduce_sum(out * 2.0), shards)
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
    assert [op.type for op in tf.get_default_graph().get_operations()
            if op.type.startswith("FusedEmbeddingSparsePostLookUpGrad")]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        slices = sess.run([(g.indices, g.values) for g in grads])
    # Id 3 is row 3 of shard 0, read once for its three entries; id 40 is row
    # 40 - 38 = 2 of shard 3.
    np.testing.assert_array_equal(slices[0][0], [3])
    np.testing.assert_array_equal(slices[0][1], np.full((1, DIM), 6.0))
    np.testing.assert_array_equal(slices[3][0], [2])
    assert [len(s[0]) for s in slices[1:3]] == [0, 0]


def test_trains_like_stock_with_an_optimizer():
    fused_var = tf.get_variable("fused", initializer=INIT, use_resource=True)
    stock_var = tf.get_variable("stock", initializer=INIT, use_resource=True)
    indices, ids, weights, shape = _random_ids(seed=8)
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    steps = []
    for var, lookup in ((fused_var, tf.nn.fused_safe_embedding_lookup_sparse),
                        (stock_var, tf.nn.safe_embedding_lookup_sparse)):
        out = lookup(var, sp_ids, sp_weights, combiner="sqrtn", max_norm=0.9, default_id=0)
        steps.append(tf.train.AdagradOptimizer(0.3).minimize(_loss(out), var_list=[var]))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(steps)
        got, want = sess.run([fused_var, stock_var])
    np.testing.assert_allclose(got, want, **TOL)
    assert not np.allclose(got, INIT)


def test_concurrent_runs_agree(run_concurrently):
    params, _, _ = _dense_table("partitioned3")
    indices, ids, weights, shape = _random_ids(seed=13, lead=(200,), max_ids=8)
    out = tf.nn.fused_safe_embedding_lookup_sparse(
        params, _sparse(indices, ids, shape), _sparse(indices, weights, shape),
        combiner="mean", max_norm=0.8, default_id=1)
    [grad] = tf.gradients(_loss(out), [list(params)[0]])
    fetch = [out, tf.convert_to_tensor(grad)]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        want = sess.run(fetch)
        results = run_concurrently(sess, fetch, threads=4, runs=20)
    assert len(results) == 80
    for got in results:
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


# --- EmbeddingVariables -----------------------------------------------------------

EV_ROWS = 2048
EV_INIT = np.random.RandomState(3).uniform(-1, 1, (EV_ROWS, DIM)).astype(np.float32)
EV_KINDS = ["ev", "pev3", "list2"]


def _ev_table(kind, name="ev"):
    """(params, shards) of EmbeddingVariables whose key k < EV_ROWS starts as EV_INIT[k]."""
    option = tf.EmbeddingVariableOption(
        init_option=tf.InitializerOption(default_value_dim=EV_ROWS))
    if kind == "ev":
        ev = tf.get_embedding_variable(name, DIM, initializer=EV_INIT, ev_option=option)
        return ev, [ev]
    parts = int(kind[-1])
    pev = tf.get_embedding_variable(name, DIM, initializer=EV_INIT, ev_option=option,
                                    partitioner=tf.fixed_size_partitioner(parts))
    return (pev if kind.startswith("pev") else list(pev)), list(pev)


def _ev_keys_and_rows(sess, shards):
    table = {}
    for shard in shards:
        keys, values, _, _ = sess.run(shard.export())
        table.update({int(k): v for k, v in zip(keys, values, strict=True)})
    return table


@pytest.mark.parametrize("kind", EV_KINDS)
@pytest.mark.parametrize("combiner", COMBINERS)
def test_ev_safe_lookup_matches_dense_and_trains_alike(kind, combiner):
    params, shards = _ev_table(kind)
    dense = tf.get_variable("dense", initializer=EV_INIT, use_resource=True)
    indices, ids, weights, shape = _random_ids(seed=len(kind) + len(combiner), lead=(16,),
                                               vocab=EV_ROWS)
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    args = dict(combiner=combiner, default_id=1001, max_norm=0.9)
    fused = tf.nn.fused_safe_embedding_lookup_sparse(params, sp_ids, sp_weights, **args)
    stock = tf.nn.safe_embedding_lookup_sparse(dense, sp_ids, sp_weights, **args)
    train = [tf.train.GradientDescentOptimizer(0.5).minimize(_loss(fused), var_list=shards),
             tf.train.GradientDescentOptimizer(0.5).minimize(_loss(stock), var_list=[dense])]
    kept = {int(i) for i, w in zip(ids, weights, strict=True)
            if i >= 0 and (combiner == "sum" or w > 0)}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got, want = sess.run([fused, stock])
        np.testing.assert_allclose(got, want, **TOL)
        sess.run(train)
        table = _ev_keys_and_rows(sess, shards)
        dense_rows = sess.run(dense)
    # Pruned ids and empty rows created no keys; only default_id was added.
    assert set(table) == kept | {1001}
    for key, row in table.items():
        np.testing.assert_allclose(row, dense_rows[key], err_msg=f"key {key}", **TOL)
    assert any(not np.array_equal(row, EV_INIT[k]) for k, row in table.items())


@pytest.mark.parametrize("kind", EV_KINDS)
def test_ev_lookup_counts_and_trains_like_unfused_ev_lookup(kind):
    """Without pruning, negative ids are ordinary EV keys, as in the unfused lookup."""
    fused_params, fused_shards = _ev_table(kind, "fused_ev")
    plain_params, plain_shards = _ev_table(kind, "plain_ev")
    indices, ids, weights, shape = _random_ids(seed=17, lead=(10,), vocab=30)
    weights = np.abs(weights) + 0.1
    sp_ids, sp_weights = _sparse(indices, ids, shape), _sparse(indices, weights, shape)
    fused = tf.nn.fused_embedding_lookup_sparse(fused_params, sp_ids, sp_weights,
                                                combiner="mean")
    plain = tf.nn.embedding_lookup_sparse(plain_params, sp_ids, sp_weights, combiner="mean")
    train = [tf.train.AdagradOptimizer(0.3).minimize(_loss(fused), var_list=fused_shards),
             tf.train.AdagradOptimizer(0.3).minimize(_loss(plain), var_list=plain_shards)]
    probe = tf.constant(sorted(set(ids.tolist())), tf.int64)
    freq = [tf.add_n([s.get_frequency(probe) for s in shards])
            for shards in (fused_shards, plain_shards)]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got, want = sess.run([fused, plain])
        np.testing.assert_allclose(got[:len(want)], want, **TOL)
        np.testing.assert_array_equal(got[len(want):], 0)
        for _ in range(2):
            sess.run(train)
        got_freq, want_freq = sess.run(freq)
        got_table = _ev_keys_and_rows(sess, fused_shards)
        want_table = _ev_keys_and_rows(sess, plain_shards)
    # Every occurrence counts (3 lookups of each id: one output run, two steps).
    np.testing.assert_array_equal(got_freq, want_freq)
    assert np.any(want_freq > 3)
    assert sorted(got_table) == sorted(want_table) and min(got_table) < 0
    for key in want_table:
        np.testing.assert_allclose(got_table[key], want_table[key], **TOL)


@pytest.mark.parametrize("partitions", [None, 2])
def test_ev_admission_filter_sees_the_same_ids(partitions):
    """A CounterFilter admits the same ids at the same step, fused or not."""
    def filtered(name):
        option = tf.EmbeddingVariableOption(
            filter_option=tf.CounterFilter(filter_freq=3),
            init_option=tf.InitializerOption(default_value_no_permission=-0.5))
        partitioner = tf.fixed_size_partitioner(partitions) if partitions else None
        var = tf.get_embedding_variable(name, DIM, initializer=tf.ones_initializer(),
                                        ev_option=option, partitioner=partitioner)
        return var, list(var) if partitions else [var]

    fused_var, fused_shards = filtered("fused_ev")
    plain_var, plain_shards = filtered("plain_ev")
    rows = [[1, 1, 2], [], [2, 3, 1001], [1, -4], [3]]
    indices = [[r, j] for r, ids in enumerate(rows) for j in range(len(ids))]
    sp_ids = _sparse(indices, [i for ids in rows for i in ids], [5, 3], tf.int64)
    outs, steps = [], []
    for var, shards, lookup in ((fused_var, fused_shards,
                                 tf.nn.fused_safe_embedding_lookup_sparse),
                                (plain_var, plain_shards, tf.nn.safe_embedding_lookup_sparse)):
        out = lookup(var, sp_ids, combiner="sqrtn")
        outs.append(out)
        steps.append(tf.train.GradientDescentOptimizer(0.25).minimize(
            _loss(out), var_list=shards))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(2):
            got, want, _, _ = sess.run(outs + steps)
            np.testing.assert_allclose(got, want, err_msg=f"step {step}", **TOL)
        exports = [[sess.run(s.export()) for s in shards]
                   for shards in (fused_shards, plain_shards)]
    for got, want in zip(*exports, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, **TOL)
    admitted = sorted(int(k) for part in exports[0] for k in part[0])
    # Ids 1, 2 and 3 were seen >= 3 times in the two steps; 1001 twice; -4
    # was pruned.
    assert admitted == [1, 2, 3]


def test_ev_gradient_is_indexed_slices_of_distinct_raw_ids():
    # One row per distinct id, its entries' gradients summed: the optimizer
    # then updates each id once, as it would after summing duplicates.
    ev, _ = _ev_table("ev")
    sp_ids = _sparse([[0, 0], [0, 1], [2, 0]], [10**12, 5, 5], [3, 2])
    out = tf.nn.fused_safe_embedding_lookup_sparse(ev, sp_ids, combiner="sum")
    [grad] = tf.gradients(tf.reduce_sum(out * 3.0), [ev])
    assert isinstance(grad, tf.IndexedSlices)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        indices, values = sess.run([grad.indices, grad.values])
    np.testing.assert_array_equal(indices, [10**12, 5])
    np.testing.assert_array_equal(values, [[3.0] * DIM, [6.0] * DIM])


def test_ev_fused_lookup_counts_every_occurrence():
    # Distinct ids are gathered once but count as often as they occur, as
    # with the unfused lookup.
    ev, _ = _ev_table("ev")
    sp_ids = _sparse([[0, 0], [0, 1], [1, 0], [2, 0]], [7, 5, 5, 5], [3, 2], tf.int64)
    out = tf.nn.fused_safe_embedding_lookup_sparse(ev, sp_ids, combiner="sum")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(out)
        freqs = sess.run(ev.get_frequency(tf.constant([5, 7], tf.int64)))
    np.testing.assert_array_equal(freqs, [3, 1])


# --- bad input --------------------------------------------------------------------

@pytest.fixture
def table():
    return tf.get_variable("table", initializer=INIT, use_resource=True)


@pytest.fixture
def sp_ids():
    return _sparse([[0, 0], [1, 0], [1, 1]], [1, 2, 3], [2, 2])


LOOKUPS = [tf.nn.fused_embedding_lookup_sparse, tf.nn.fused_safe_embedding_lookup_sparse]


@pytest.mark.parametrize("lookup", LOOKUPS)
def test_rejects_unknown_combiner(lookup, table, sp_ids):
    with pytest.raises(ValueError, match=rf"{lookup.__name__}: combiner .* got 'max'"):
        lookup(table, sp_ids, combiner="max")


@pytest.mark.parametrize("lookup", LOOKUPS)
@pytest.mark.parametrize("options, match", [
    ({"max_norm": 0.0}, "max_norm must be None or a positive number, got 0.0"),
    ({"max_norm": "1"}, "max_norm must be None or a positive number, got '1'"),
    ({"blocknums": [2]}, r"blocknums .* not supported, got \[2\]"),
    ({"partition_strategy": "hash"}, "partition_strategy must be 'div' or 'mod', got 'hash'"),
    ({"default_id": 50}, r"default_id = 50 is not a row of the embedding table: not in "
                         r"\[0, 50\)"),
    ({"default_id": 1.5}, "default_id must be an int or None, got 1.5"),
])
def test_rejects_bad_options(lookup, table, sp_ids, options, match):
    with pytest.raises(ValueError, match=f"{lookup.__name__}: {match}"):
        lookup(table, sp_ids, **options)


@pytest.mark.parametrize("lookup", LOOKUPS)
def test_rejects_non_sparse_arguments(lookup, table, sp_ids):
    with pytest.raises(TypeError, match="must be a SparseTensor, got SymbolicTensor"):
        lookup(table, tf.constant([[1, 2]], tf.int64))
    with pytest.raises(TypeError, match="sparse_weights must be None or a SparseTensor"):
        lookup(table, sp_ids, tf.constant([1.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match="sparse ids must be int32 or int64, got string"):
        lookup(table, _sparse([[0, 0]], ["a"], [1, 1]))


def test_rejects_wrong_rank_at_build_time(table):
    rank3 = _sparse([[0, 0, 0]], [1], [1, 1, 1])
    with pytest.raises(ValueError, match="fused_embedding_lookup_sparse: sp_ids must have "
                                         "rank 2, got rank 3"):
        tf.nn.fused_embedding_lookup_sparse(table, rank3)
    rank1 = _sparse([[0]], [1], [1])
    with pytest.raises(ValueError, match="fused_safe_embedding_lookup_sparse: sparse_ids "
                                         "must have rank >= 2, got rank 1"):
        tf.nn.fused_safe_embedding_lookup_sparse(table, rank1)


def test_rejects_wrong_rank_when_run(table):
    sp = tf.sparse_placeholder(tf.int64)
    out = tf.nn.fused_embedding_lookup_sparse(table, sp)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"FusedEmbeddingSparsePreLookUp: sparse ids must have "
                                 r"rank 2, got sp_dense_shape \[1 1 1\]"):
            sess.run(out, {sp: ([[0, 0, 0]], [1], [1, 1, 1])})


def test_rejects_mismatched_weights(table, sp_ids):
    bad = _sparse([[0, 0], [1, 0]], [1.0, 2.0], [2, 2], tf.float32)
    with pytest.raises(ValueError, match=r"sparse_weights.values has shape \(2,\) but "
                                         r"sp_ids.values has shape \(3,\)"):
        tf.nn.fused_embedding_lookup_sparse(table, sp_ids, bad)
    with pytest.raises(ValueError, match="sparse_weights must be floating point, got int32"):
        tf.nn.fused_safe_embedding_lookup_sparse(table, sp_ids, sp_ids)
    sp = tf.sparse_placeholder(tf.int64)
    sp_w = tf.sparse_placeholder(tf.float32)
    out = tf.nn.fused_safe_embedding_lookup_sparse(table, sp, sp_w)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="FusedEmbeddingSparsePreLookUp: sp_weights has 2 "
                                 "elements but sp_values has 3"):
            sess.run(out, {sp: ([[0, 0], [1, 0], [1, 1]], [1, 2, 3], [2, 2]),
                           sp_w: ([[0, 0], [1, 0]], [1.0, 1.0], [2, 2])})


@pytest.mark.parametrize("kind", ["resource", "div4"])
def test_rejects_ids_outside_a_dense_table(kind):
    params, _, _ = _dense_table(kind)
    out = tf.nn.fused_embedding_lookup_sparse(params, _sparse([[0, 0], [0, 1]], [3, -1], [1, 2]))
    safe = tf.nn.fused_safe_embedding_lookup_sparse(
        params, _sparse([[0, 0], [0, 1]], [3, 50], [1, 2]))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"FusedEmbeddingSparsePreLookUp: sp_values\[1\] = -1 is not "
                                 r"a row of the embedding table: not in \[0, 50\)"):
            sess.run(out)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"sp_values\[1\] = 50"):
            sess.run(safe)


def test_rejects_indices_outside_the_dense_shape(table):
    out = tf.nn.fused_embedding_lookup_sparse(table, _sparse([[0, 0], [2, 0]], [1, 2], [2, 2]))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"FusedEmbeddingSparsePreLookUp: sp_indices\[1, 0\] = 2 is "
                                 r"out of bounds for sp_dense_shape \[2 2\]"):
            sess.run(out)


def test_rejects_bad_tables(sp_ids):
    ev = tf.get_embedding_variable("ev", DIM)
    dense = tf.get_variable("dense", initializer=INIT)
    with pytest.raises(TypeError, match="params mixes EmbeddingVariables with other tables"):
        tf.nn.fused_embedding_lookup_sparse([ev, dense], sp_ids)
    with pytest.raises(ValueError, match="embedding tables must have rank 2, got"):
        tf.nn.fused_embedding_lookup_sparse(tf.constant(INIT[0]), sp_ids)
    with pytest.raises(ValueError, match="embedding tables must be float32 or float64, "
                                         "got int32"):
        tf.nn.fused_embedding_lookup_sparse(tf.constant([[1, 2]]), sp_ids)
    with pytest.raises(ValueError, match=r"different embedding dims \[4, 5\]"):
        tf.nn.fused_embedding_lookup_sparse([tf.constant(INIT), tf.constant(INIT[:, :4])],
                                            sp_ids)
    ev32 = tf.get_embedding_variable("ev32", DIM, key_dtype=tf.int32)
    with pytest.raises(ValueError, match="default_id = 1099511627776 does not fit the ids' "
                                         "dtype int32"):
        tf.nn.fused_embedding_lookup_sparse(
            ev32, _sparse([[0, 0]], np.array([1], np.int32), [1, 1]), default_id=2**40)
    with pytest.raises(TypeError, match="has key_dtype int64 but was looked up with ids of "
                                        "dtype int32"):
        tf.nn.fused_safe_embedding_lookup_sparse(
            ev, _sparse([[0, 0]], np.array([1], np.int32), [1, 1]))


@pytest.mark.parametrize("combiner", COMBINERS)
@pytest.mark.parametrize("positions, rows, match", [
    ([0, 3], [0, 1], r"positions\[1\] = 3 is not in \[0, 3\), the rows of emb_shards"),
    ([0, 1], [0, -1], r"rows\[1\] = -1 is not in \[0, 2\), the output rows"),
    ([0, 1], [2, 0], r"rows\[0\] = 2 is not in \[0, 2\), the output rows"),
    # A bad position is named before a bad row that comes earlier.
    ([0, -2], [5, 0], r"positions\[1\] = -2 is not in \[0, 3\), the rows of emb_shards"),
])
def test_post_lookup_op_rejects_bad_positions_and_rows(combiner, positions, rows, match):
    from deeprec._native import ops as kv_ops
    args = ([tf.constant(INIT[:3])], tf.constant(positions, tf.int64),
            tf.constant(rows, tf.int64), tf.constant([1.0, 1.0]))
    out = kv_ops.fused_embedding_sparse_post_look_up(
        *args, tf.constant([2, 4], tf.int64), combiner=combiner)
    grad = kv_ops.fused_embedding_sparse_post_look_up_grad(
        tf.ones([2, DIM]), *args, combiner=combiner)
    with tf.Session() as sess:
        for fetch, op in [(out, "FusedEmbeddingSparsePostLookUp"),
                          (grad, "FusedEmbeddingSparsePostLookUpGrad")]:
            with pytest.raises(tf.errors.InvalidArgumentError, match=f"{op}: {match}"):
                sess.run(fetch)
