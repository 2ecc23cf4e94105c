"""Embedding lookups on EmbeddingVariables agree with stock TF on dense tables.

Every EmbeddingVariable here is created with the dense variable's initial
value as its default-value matrix and default_value_dim = ROWS, so id k < ROWS
starts with row k in both. Each test runs the same stock TensorFlow function
on a dense tf.Variable and on the EV (through TF's type dispatch), compares
the outputs, trains one step on both and compares the tables: every key of
the EV holds the dense row of that id, and no other dense row moved.
"""

import numpy as np
import pytest
import tensorflow as stock_tf

import deeprec as tf

ROWS, DIM = 2048, 4
INIT = np.random.RandomState(1).uniform(-1, 1, (ROWS, DIM)).astype(np.float32)
LR = 0.5
# Ids spread over shards by (id mod 1000) mod n; some above 1000.
IDS_1D = [3, 1003, 8, 3, 1998, 2045, 12, 1001, 500, 501, 1502, 3]
IDS_2D = [[3, 1003, 8], [1998, 3, 3], [2045, 12, 1001]]
PARAM_KINDS = ["ev", "pev2", "pev4", "list3", "separate2"]


def _option():
    return tf.EmbeddingVariableOption(init_option=tf.InitializerOption(default_value_dim=ROWS))


def _ev_params(kind):
    """(what to pass as params, the EV shards in routing order)."""
    if kind == "ev":
        ev = tf.get_embedding_variable("ev", DIM, initializer=INIT, ev_option=_option())
        return ev, [ev]
    if kind.startswith("pev"):
        pev = tf.get_embedding_variable("ev", DIM, initializer=INIT, ev_option=_option(),
                                        partitioner=tf.fixed_size_partitioner(int(kind[3:])))
        return pev, list(pev)
    if kind == "list3":
        pev = tf.get_embedding_variable("ev", DIM, initializer=INIT, ev_option=_option(),
                                        partitioner=tf.fixed_size_partitioner(3))
        return list(pev), list(pev)
    assert kind == "separate2"
    shards = [tf.get_embedding_variable(f"ev_{i}", DIM, initializer=INIT,
                                        ev_option=_option()) for i in range(2)]
    return shards, shards


def _ev_table(sess, shards):
    """{key: row} over all shards; checks each key is in its routed shard."""
    table = {}
    for i, shard in enumerate(shards):
        keys, values, _, _ = sess.run(shard.export())
        assert all((int(k) % 1000) % len(shards) == i for k in keys), (i, keys)
        for k, v in zip(keys, values, strict=True):
            assert int(k) not in table
            table[int(k)] = v
    return table


def _loss(out):
    # Gradient depends on the output values and on the position.
    size = tf.size(out)
    weights = tf.reshape(0.5 + tf.cast(tf.range(size) % 7, tf.float32) / 7.0,
                         tf.shape(out))
    return tf.reduce_sum(weights * out) + 0.5 * tf.reduce_sum(out * out)


def _compare(kind, lookup, expected_keys, optimizer="sgd", steps=1, feed=None):
    """Runs `lookup(params)` on a dense variable and on EVs of `kind`.

    Checks the outputs, then trains `steps` steps on both and checks the
    tables. `expected_keys` is the exact key set the EV must end up with.
    Returns (dense output, EV output, EV table) of the first run.
    """
    dense = tf.get_variable("dense", initializer=INIT, use_resource=True)
    params, shards = _ev_params(kind)
    out_dense, out_ev = lookup(dense), lookup(params)
    assert out_ev.shape.is_compatible_with(out_dense.shape)
    make = {"sgd": lambda m: m.GradientDescentOptimizer(LR),
            "adagrad": lambda m: m.AdagradOptimizer(LR, initial_accumulator_value=0.2)}
    train_dense = make[optimizer](stock_tf.compat.v1.train).minimize(
        _loss(out_dense), var_list=[dense])
    train_ev = make[optimizer](tf.train).minimize(_loss(out_ev), var_list=shards)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got_dense, got_ev = sess.run([out_dense, out_ev], feed)
        np.testing.assert_allclose(got_ev, got_dense, rtol=1e-6, atol=1e-6)
        assert sorted(_ev_table(sess, shards)) == sorted(expected_keys)
        for _ in range(steps):
            sess.run([train_dense, train_ev], feed)
        table = _ev_table(sess, shards)
        dense_table = sess.run(dense)
    assert sorted(table) == sorted(expected_keys)
    for key, row in table.items():
        np.testing.assert_allclose(row, dense_table[key], rtol=1e-6, atol=1e-6,
                                   err_msg=f"key {key}")
    untouched = np.setdiff1d(np.arange(ROWS), list(table))
    np.testing.assert_array_equal(dense_table[untouched], INIT[untouched])
    moved = [k for k in table if not np.array_equal(table[k], INIT[k])]
    assert moved, "training moved no EV row"
    return got_dense, got_ev, table


# --- embedding_lookup ---------------------------------------------------------

@pytest.mark.parametrize("kind", PARAM_KINDS)
@pytest.mark.parametrize("ids", [IDS_1D, IDS_2D], ids=["rank1", "rank2"])
@pytest.mark.parametrize("max_norm", [None, 0.9])
def test_embedding_lookup(kind, ids, max_norm):
    ids_t = tf.constant(ids, tf.int64)
    got_dense, got_ev, _ = _compare(
        kind, lambda p: tf.nn.embedding_lookup(p, ids_t, max_norm=max_norm),
        set(np.ravel(ids)))
    # Independent numpy reference.
    rows = INIT[np.asarray(ids)]
    if max_norm is not None:
        norms = np.linalg.norm(rows, axis=-1, keepdims=True)
        rows = rows * np.minimum(1.0, max_norm / norms)
        assert np.any(norms > max_norm), "max_norm clips nothing"
    np.testing.assert_allclose(got_ev, rows, rtol=1e-6, atol=1e-6)
    assert got_ev.shape == np.shape(ids) + (DIM,)


@pytest.mark.parametrize("kind", ["ev", "pev4"])
def test_embedding_lookup_with_dynamic_shape_ids(kind):
    ids = tf.placeholder(tf.int64, [None, None])
    _compare(kind, lambda p: tf.nn.embedding_lookup(p, ids), set(np.ravel(IDS_2D)),
             feed={ids: IDS_2D})


@pytest.mark.parametrize("kind", ["ev", "pev2"])
def test_embedding_lookup_with_empty_ids(kind):
    params, shards = _ev_params(kind)
    emb = tf.nn.embedding_lookup(params, tf.zeros([0, 3], tf.int64))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(emb).shape == (0, 3, DIM)
        assert _ev_table(sess, shards) == {}


# --- embedding_lookup_sparse ----------------------------------------------------

# Rows of a [6, 5] batch: row 1 and the trailing row 5 are empty.
SPARSE_ROWS = {0: [(3, 1.0), (1003, 2.0), (3, 0.5)],
               2: [(1998, 0.0)],
               3: [(7, 1.5), (12, 3.0)],
               4: [(2045, -1.0), (1001, 2.0), (500, 1.0), (8, 0.25)]}
SPARSE_SHAPE = [6, 5]


def _sparse(rows, shape):
    indices, ids, weights = [], [], []
    for r in sorted(rows):
        for j, (i, w) in enumerate(rows[r]):
            indices.append([r, j] if len(shape) == 2 else list(r) + [j])
            ids.append(i)
            weights.append(w)
    indices = np.asarray(indices, np.int64).reshape(-1, len(shape))
    return (tf.SparseTensor(indices, tf.constant(ids, tf.int64), shape),
            tf.SparseTensor(indices, tf.constant(weights, tf.float32), shape))


def _all_ids(rows):
    return {i for entries in rows.values() for i, _ in entries}


@pytest.mark.parametrize("kind", ["ev", "pev4", "list3"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("weighted", [False, True])
def test_embedding_lookup_sparse(kind, combiner, weighted):
    sp_ids, sp_weights = _sparse(SPARSE_ROWS, SPARSE_SHAPE)
    weights = sp_weights if weighted else None
    got_dense, got_ev, _ = _compare(
        kind, lambda p: tf.nn.embedding_lookup_sparse(p, sp_ids, weights,
                                                      combiner=combiner),
        _all_ids(SPARSE_ROWS))
    # Like TF: one output row per row up to the last non-empty one.
    assert got_ev.shape == (5, DIM)
    np.testing.assert_array_equal(got_ev[1], np.zeros(DIM))


@pytest.mark.parametrize("kind", ["ev", "pev2"])
def test_embedding_lookup_sparse_max_norm_and_default_combiner(kind):
    sp_ids, sp_weights = _sparse(SPARSE_ROWS, SPARSE_SHAPE)
    _compare(kind, lambda p: tf.nn.embedding_lookup_sparse(p, sp_ids, sp_weights,
                                                           max_norm=0.8),
             _all_ids(SPARSE_ROWS))
    tf.reset_default_graph()
    sp_ids, _ = _sparse(SPARSE_ROWS, SPARSE_SHAPE)
    _, got_ev, _ = _compare(kind, lambda p: tf.nn.embedding_lookup_sparse(p, sp_ids, None),
                            _all_ids(SPARSE_ROWS))
    # combiner=None means "mean".
    np.testing.assert_allclose(got_ev[3], (INIT[7] + INIT[12]) / 2, rtol=1e-6)


def test_embedding_lookup_sparse_counts_every_occurrence():
    sp_ids, _ = _sparse(SPARSE_ROWS, SPARSE_SHAPE)
    params, [ev] = _ev_params("ev")
    out = tf.nn.embedding_lookup_sparse(params, sp_ids, None, combiner="sum")
    probe = tf.constant([3, 1003, 8, 9], tf.int64)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(out)
        np.testing.assert_array_equal(sess.run(ev.get_frequency(probe)), [2, 1, 1, 0])


@pytest.mark.parametrize("kind", ["ev", "pev4"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_unweighted_sparse_lookup_reads_distinct_ids_in_any_entry_order(kind, combiner):
    # Without weights each distinct id is read once and the gradient holds
    # one row per distinct id; entries out of row order (which the sparse
    # segment ops reject) take the per-entry path and give the same results.
    sp_ids, _ = _sparse(SPARSE_ROWS, SPARSE_SHAPE)
    params, _ = _ev_params(kind)
    perm = np.random.RandomState(3).permutation(sum(map(len, SPARSE_ROWS.values())))
    shuffled = tf.SparseTensor(tf.gather(sp_ids.indices, perm),
                               tf.gather(sp_ids.values, perm), SPARSE_SHAPE)
    outs = [tf.nn.embedding_lookup_sparse(params, sp, None, combiner=combiner)
            for sp in (sp_ids, shuffled)]
    shards = list(params) if kind != "ev" else [params]
    grads = [tf.gradients(tf.reduce_sum(out * out), shards) for out in outs]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        (ordered, unordered), (g_ordered, g_unordered) = sess.run([outs, grads])
    np.testing.assert_allclose(unordered, ordered, rtol=1e-6)
    for a, b in zip(g_ordered, g_unordered, strict=True):
        assert len(set(a.indices.tolist())) == len(a.indices)
        want, got = _rows_by_key(a), _rows_by_key(b)
        assert want.keys() == got.keys()
        for key, row in want.items():
            np.testing.assert_allclose(got[key], row, rtol=1e-5)


def _rows_by_key(grad):
    """{key: summed gradient row} of an IndexedSlices value."""
    rows = {}
    for key, row in zip(grad.indices.tolist(), grad.values, strict=True):
        rows[key] = rows.get(key, 0) + row
    return rows


def test_embedding_lookup_sparse_rejects_unknown_combiner():
    sp_ids, _ = _sparse(SPARSE_ROWS, SPARSE_SHAPE)
    params, _ = _ev_params("ev")
    with pytest.raises(ValueError, match="combiner"):
        tf.nn.embedding_lookup_sparse(params, sp_ids, None, combiner="max")


# --- safe_embedding_lookup_sparse ------------------------------------------------

# Row 1 and 5 are empty; row 2 holds only a zero weight, row 3 a negative id,
# row 4 a negative weight, row 6 only negative ids.
SAFE_ROWS = {0: [(3, 1.0), (1003, 2.0), (3, 0.5)],
             2: [(1998, 0.0)],
             3: [(-1, 1.5), (12, 3.0)],
             4: [(2045, -1.0), (1001, 2.0), (500, 1.0), (8, 0.25)],
             6: [(-5, 1.0), (-(2**40), 1.0)]}
SAFE_SHAPE = [7, 5]


def _kept_ids(rows, num_cells, combiner, weighted, default_id):
    """Ids TF's pruning keeps, plus default_id if some cell ends up empty."""
    kept, non_empty = set(), 0
    for entries in rows.values():
        ids = [i for i, w in entries
               if i >= 0 and (combiner == "sum" or not weighted or w > 0)]
        kept |= set(ids)
        non_empty += bool(ids)
    if non_empty < num_cells and default_id is not None:
        kept.add(default_id)
    return kept


@pytest.mark.parametrize("kind", ["ev", "pev4", "list3"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("default_id", [None, 5])
def test_safe_embedding_lookup_sparse(kind, combiner, weighted, default_id):
    sp_ids, sp_weights = _sparse(SAFE_ROWS, SAFE_SHAPE)
    weights = sp_weights if weighted else None
    expected_keys = _kept_ids(SAFE_ROWS, 7, combiner, weighted, default_id)
    got_dense, got_ev, table = _compare(
        kind, lambda p: tf.nn.safe_embedding_lookup_sparse(
            p, sp_ids, weights, combiner=combiner, default_id=default_id),
        expected_keys)
    assert got_ev.shape == (7, DIM)
    empty_rows = [1, 5, 6] + ([2] if weighted and combiner != "sum" else [])
    for r in empty_rows:
        want = np.zeros(DIM) if default_id is None else INIT[default_id]
        np.testing.assert_allclose(got_ev[r], want, rtol=1e-6, err_msg=f"row {r}")
    # TF's version looks up id 0 for empty rows when default_id is None (and
    # zeroes the result); the EV version looks nothing up for them.
    assert 0 not in table


def test_safe_lookup_prunes_before_counting_frequency():
    sp_ids, sp_weights = _sparse(SAFE_ROWS, SAFE_SHAPE)
    params, [ev] = _ev_params("ev")
    out = tf.nn.safe_embedding_lookup_sparse(params, sp_ids, sp_weights, combiner="mean")
    probe = tf.constant([3, 1998, 2045, -1, -5, 0, 12], tf.int64)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(out)
        np.testing.assert_array_equal(sess.run(ev.get_frequency(probe)),
                                      [2, 0, 0, 0, 0, 0, 1])
        # Kept: 3, 1003, 12, 1001, 500, 8.
        np.testing.assert_array_equal(sess.run(ev.total_count()), [6, DIM])


# A [2, 3, 4] batch: cells (0, 1), (1, 0) and (1, 2) are empty; (1, 1) has
# only a negative id.
RANK3_ROWS = {(0, 0): [(3, 1.0), (8, 2.0)],
              (0, 2): [(1003, 0.5), (12, -2.0), (3, 1.0)],
              (1, 1): [(-4, 1.0)]}
RANK3_SHAPE = [2, 3, 4]


@pytest.mark.parametrize("kind", ["ev", "pev4"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("default_id", [None, 1001])
def test_safe_embedding_lookup_sparse_rank3(kind, combiner, weighted, default_id):
    sp_ids, sp_weights = _sparse(RANK3_ROWS, RANK3_SHAPE)
    weights = sp_weights if weighted else None
    expected_keys = _kept_ids(RANK3_ROWS, 6, combiner, weighted, default_id)
    got_dense, got_ev, table = _compare(
        kind, lambda p: tf.nn.safe_embedding_lookup_sparse(
            p, sp_ids, weights, combiner=combiner, default_id=default_id, max_norm=0.9),
        expected_keys)
    assert got_ev.shape == (2, 3, DIM)
    if default_id is None:
        for cell in [(0, 1), (1, 0), (1, 1), (1, 2)]:
            np.testing.assert_array_equal(got_ev[cell], np.zeros(DIM))
    assert 0 not in table


def test_safe_lookup_static_shape_matches_stock():
    params, _ = _ev_params("ev")
    dense = tf.get_variable("dense", initializer=INIT)
    sp = tf.sparse_placeholder(tf.int64, shape=[None, None, None])
    got = tf.nn.safe_embedding_lookup_sparse(params, sp)
    want = tf.nn.safe_embedding_lookup_sparse(dense, sp)
    assert got.shape.as_list() == want.shape.as_list() == [None, None, DIM]


# --- gradient aggregation ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["ev", "pev2"])
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_same_ev_looked_up_twice_in_one_loss(kind, optimizer):
    ids_a = tf.constant([3, 1003, 3, 8], tf.int64)
    ids_b = tf.constant([[8, 1998], [3, 12]], tf.int64)
    sp_ids, sp_weights = _sparse(SPARSE_ROWS, SPARSE_SHAPE)

    def lookup(p):
        a = tf.nn.embedding_lookup(p, ids_a)
        b = tf.reduce_sum(tf.nn.embedding_lookup(p, ids_b), axis=1)
        c = tf.nn.embedding_lookup_sparse(p, sp_ids, sp_weights, combiner="sqrtn")[:4]
        return tf.concat([a, 2.0 * b, c], axis=0)

    # Adagrad's accumulator makes the result depend on duplicates being
    # summed before the update.
    _compare(kind, lookup, {3, 1003, 8, 1998, 12} | _all_ids(SPARSE_ROWS),
             optimizer=optimizer, steps=3)


def test_gradient_is_indexed_slices_keyed_by_raw_ids():
    params, _ = _ev_params("ev")
    ids = tf.constant([[5, 1999], [5, -7]], tf.int64)
    emb = tf.nn.embedding_lookup(params, ids)
    [grad] = tf.gradients(tf.reduce_sum(emb * 3.0), [params])
    assert isinstance(grad, tf.IndexedSlices)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        indices, values = sess.run([grad.indices, grad.values])
    np.testing.assert_array_equal(indices, [5, 1999, 5, -7])
    np.testing.assert_array_equal(values, np.full((4, DIM), 3.0))


# --- dispatch entry points ------------------------------------------------------

def _dispatch_paths():
    from tensorflow.python.ops import embedding_ops as tf_embedding_ops

    from deeprec.python.ops import embedding_ops as deeprec_embedding_ops
    # deeprec's module adds the fused lookups; TF's functions are its own objects.
    for name in ("embedding_lookup", "embedding_lookup_sparse", "safe_embedding_lookup_sparse"):
        assert getattr(deeprec_embedding_ops, name) is getattr(tf_embedding_ops, name)
    return {
        "deeprec.python.ops": deeprec_embedding_ops,
        "tf.nn v2": stock_tf.nn,
        "tf.compat.v1.nn": stock_tf.compat.v1.nn,
    }


@pytest.mark.parametrize("path", ["deeprec.python.ops", "tf.nn v2", "tf.compat.v1.nn"])
def test_dispatch_through_every_path(path):
    module = _dispatch_paths()[path]
    v2 = path == "tf.nn v2"
    ids = tf.constant(IDS_2D, tf.int64)
    sp_ids, sp_weights = _sparse(SAFE_ROWS, SAFE_SHAPE)
    sp_ok, sp_ok_weights = _sparse(SPARSE_ROWS, SPARSE_SHAPE)

    def lookups(p):
        dense = module.embedding_lookup(p, ids, max_norm=0.9)
        sparse = module.embedding_lookup_sparse(p, sp_ok, sp_ok_weights, combiner="sqrtn")
        safe = module.safe_embedding_lookup_sparse(p, sp_ids, sp_weights,
                                                   combiner="sum", default_id=7)
        if not v2:  # the v1 signatures take partition_strategy
            module.embedding_lookup(p, ids, partition_strategy="div")
        return dense, sparse, safe

    dense = tf.get_variable("dense", initializer=INIT)
    pev = tf.get_embedding_variable("pev", DIM, initializer=INIT, ev_option=_option(),
                                    partitioner=tf.fixed_size_partitioner(2))
    want = lookups(dense)
    got = lookups(pev)
    gather_ops = [op for op in tf.get_default_graph().get_operations()
                  if op.type == "KvResourceGather"]
    assert gather_ops, "no EV lookup was built"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for g, w in zip(sess.run(got), sess.run(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_non_ev_lists_still_use_stock_lookup():
    dense = [tf.get_variable(f"d{i}", initializer=INIT[i::2]) for i in range(2)]
    emb = tf.nn.embedding_lookup(dense, tf.constant([0, 1, 2, 3], tf.int64))
    assert not [op for op in tf.get_default_graph().get_operations()
                if op.type.startswith("Kv")]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb), INIT[:4])


def test_mixed_shard_lists_are_rejected():
    ev = tf.get_embedding_variable("ev", DIM)
    other = tf.get_embedding_variable("other", DIM + 1)
    with pytest.raises(ValueError, match="different dims"):
        tf.nn.embedding_lookup([ev, other], tf.constant([1], tf.int64))
