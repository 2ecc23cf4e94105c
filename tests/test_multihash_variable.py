"""Multi-Hash Variable (user guide §3.5): lookups, training and checkpoints against numpy.

The reference is the documented Q-R composition: id x uses row
(x mod N) // rows_r of the quotient table and row (x mod N) mod rows_r of the
remainder table (N = rows_q * rows_r), combined by add, elementwise mult or
concat. Sparse lookups are compared with stock TensorFlow's functions on the
dense table that composition defines: table[y] = compose(y) for y < N.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as stock_tf
from tensorflow.python.ops.variables import PartitionedVariable

import deeprec as tf
from deeprec.embedding import multihash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.RandomState(7)
ROWS = (5, 3)  # quotient rows, remainder rows: N = 15 distinct ids
DIMS = {"add": (4, 4), "mult": (4, 4), "concat": (4, 2)}
OPS = ["add", "mult", "concat"]


def _tables(op, rows=ROWS, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.uniform(-1, 1, (r, d)).astype(np.float32)
            for r, d in zip(rows, DIMS[op], strict=True)]


def np_table_ids(ids, rows=ROWS):
    wrapped = np.mod(np.asarray(ids, np.int64), rows[0] * rows[1])  # floor modulo
    return wrapped // rows[1], wrapped % rows[1]


def np_compose(tables, ids, op, rows=ROWS):
    q, r = np_table_ids(ids, rows)
    a, b = tables[0][q], tables[1][r]
    if op == "add":
        return a + b
    if op == "mult":
        return a * b
    return np.concatenate([a, b], axis=-1)


def np_table_grads(tables, ids, op, upstream, rows=ROWS):
    """d loss / d table for loss with d loss / d embeddings = upstream."""
    q, r = np_table_ids(ids, rows)
    q, r = q.reshape(-1), r.reshape(-1)
    up = upstream.reshape(len(q), -1).astype(np.float64)
    a, b = tables[0][q].astype(np.float64), tables[1][r].astype(np.float64)
    if op == "add":
        ga, gb = up, up
    elif op == "mult":
        ga, gb = up * b, up * a
    else:
        ga, gb = up[:, :a.shape[1]], up[:, a.shape[1]:]
    grads = [np.zeros(t.shape, np.float64) for t in tables]
    np.add.at(grads[0], q, ga)
    np.add.at(grads[1], r, gb)
    return grads


def _mhv(op, name="mhv", rows=ROWS, **kwargs):
    dims = ([[rows[0], DIMS[op][0]]] if op != "concat"
            else [[r, d] for r, d in zip(rows, DIMS[op], strict=True)])
    if op != "concat" and rows[0] != rows[1]:
        # One [rows, dim] pair means equal tables; build unequal ones directly.
        return multihash.create_multihash_variable(
            name, list(zip(rows, DIMS[op], strict=True)), op, **kwargs)
    return tf.get_multihash_variable(name, dims, operation=op, **kwargs)


def _assign(sess, mhv, values):
    for table, value in zip(mhv.tables, values, strict=True):
        shards = list(table) if isinstance(table, PartitionedVariable) else [table]
        for shard in shards:
            info = shard._get_save_slice_info()
            offset = info.var_offset[0] if info else 0
            rows = shard.shape.as_list()[0]
            shard.load(value[offset:offset + rows], sess)


# --- the variable --------------------------------------------------------------------

def test_api_names():
    assert tf.get_multihash_variable is multihash.get_multihash_variable
    assert tf.MultiHashVariable is multihash.MultiHashVariable


@pytest.mark.parametrize("op", OPS)
def test_shapes_names_and_properties(op):
    with tf.variable_scope("outer"):
        mhv = _mhv(op, rows=(5, 5))
    assert mhv.name == "outer/mhv"
    assert [t.op.name for t in mhv.tables] == ["outer/mhv/quotient", "outer/mhv/remainder"]
    assert [t.shape.as_list() for t in mhv.tables] == [[5, DIMS[op][0]], [5, DIMS[op][1]]]
    assert mhv.bucket_sizes == (5, 5) and mhv.num_ids == 25
    assert mhv.table_dims == DIMS[op] and mhv.operation == op
    assert mhv.embedding_dim == (6 if op == "concat" else 4)
    assert mhv.complementary_strategy == "Q-R" and mhv.dtype == tf.float32
    assert set(mhv.tables) == set(tf.trainable_variables())


def test_single_pair_gives_both_tables_its_shape():
    mhv = tf.get_multihash_variable("m", [[6, 3]], operation="mult")
    assert [t.shape.as_list() for t in mhv.tables] == [[6, 3], [6, 3]]
    assert mhv.num_ids == 36 and mhv.embedding_dim == 3


def test_float_dtype_is_float32_and_float64_is_kept():
    assert tf.get_multihash_variable("a", [[2, 2]], dtype=float).dtype == tf.float32
    assert tf.get_multihash_variable("b", [[2, 2]], dtype=tf.float64).dtype == tf.float64


def test_table_ids_are_the_quotient_and_remainder():
    mhv = _mhv("add")
    ids = np.array([0, 1, 2, 3, 14, 15, 29, -1, -16, 2**62 + 5, -(2**62)], np.int64)
    q, r = np_table_ids(ids)
    with tf.Session() as sess:
        got_q, got_r = sess.run(mhv.table_ids(ids))
        got32 = sess.run(mhv.table_ids(ids[:7].astype(np.int32)))
    np.testing.assert_array_equal(got_q, q)
    np.testing.assert_array_equal(got_r, r)
    np.testing.assert_array_equal(got32[0], q[:7])
    # Complementary: every id below N has its own (quotient, remainder) pair.
    q, r = np_table_ids(np.arange(mhv.num_ids))
    assert len(set(zip(q.tolist(), r.tolist(), strict=True))) == mhv.num_ids
    assert q.max() == ROWS[0] - 1 and r.max() == ROWS[1] - 1


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
def test_embedding_lookup_composes_rows(op, id_dtype):
    mhv = _mhv(op)
    tables = _tables(op)
    ids = np.array([[0, 4, 14], [15, -1, 7], [3, 3, 100]], id_dtype)
    out = tf.nn.embedding_lookup(mhv, ids)
    out_v2 = stock_tf.nn.embedding_lookup(mhv, tf.constant(ids))
    assert out.shape.as_list() == [3, 3, mhv.embedding_dim]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        got, got_v2 = sess.run([out, out_v2])
    np.testing.assert_array_equal(got, np_compose(tables, ids, op))
    np.testing.assert_array_equal(got_v2, got)


def test_embedding_lookup_max_norm_clips_the_composed_embedding():
    mhv = _mhv("concat")
    tables = _tables("concat")
    ids = np.arange(15)
    out = tf.nn.embedding_lookup(mhv, ids, max_norm=0.8)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        got = sess.run(out)
    want = np_compose(tables, ids, "concat")
    norms = np.linalg.norm(want, axis=-1, keepdims=True)
    want = np.where(norms > 0.8, want * 0.8 / norms, want)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert (norms > 0.8).any() and (norms <= 0.8).any()


@pytest.mark.parametrize("op", OPS)
def test_partitioned_tables_answer_like_whole_tables(op):
    mhv = _mhv(op, rows=(7, 5), partitioner=tf.fixed_size_partitioner(3))
    assert all(isinstance(t, PartitionedVariable) for t in mhv.tables)
    assert [len(list(t)) for t in mhv.tables] == [3, 3]
    tables = [np.random.RandomState(3).uniform(-1, 1, (r, d)).astype(np.float32)
              for r, d in zip((7, 5), DIMS[op], strict=True)]
    ids = np.arange(-3, 40)
    out = tf.nn.embedding_lookup(mhv, ids)
    loss = tf.reduce_sum(out * out)
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        got, _ = sess.run([out, train])
        after = [sess.run(t.as_tensor()) for t in mhv.tables]
    want = np_compose(tables, ids, op, rows=(7, 5))
    np.testing.assert_array_equal(got, want)
    grads = np_table_grads(tables, ids, op, 2 * want, rows=(7, 5))
    for a, t, g in zip(after, tables, grads, strict=True):
        np.testing.assert_allclose(a, t - 0.1 * g, rtol=1e-5, atol=1e-6)


# --- gradients and training ------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("use_resource", [False, True])
def test_gradients_reach_the_tables(op, use_resource):
    mhv = _mhv(op, use_resource=use_resource)
    tables = _tables(op)
    ids = np.array([[1, 4, 4], [9, 20, -2]])
    out = tf.nn.embedding_lookup(mhv, ids)
    weights = RNG.uniform(0.5, 1.5, (2, 3, mhv.embedding_dim)).astype(np.float32)
    loss = tf.reduce_sum(weights * out) + 0.5 * tf.reduce_sum(out * out)
    grads = tf.gradients(loss, list(mhv.tables))
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        got = sess.run([tf.convert_to_tensor(g) for g in grads])
    emb = np_compose(tables, ids, op).astype(np.float64)
    for g, w in zip(got, np_table_grads(tables, ids, op, weights + emb), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def _np_step(tables, grads, optimizer, accumulators, lr):
    new = []
    for i, (t, g) in enumerate(zip(tables, grads, strict=True)):
        if optimizer == "adagrad":
            accumulators[i] = accumulators[i] + g * g
            new.append(t - lr * g / np.sqrt(accumulators[i]))
        else:
            new.append(t - lr * g)
    return new


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_training_matches_numpy(op, optimizer):
    mhv = _mhv(op)
    tables = [t.astype(np.float64) for t in _tables(op)]
    ids = np.array([0, 3, 3, 14, 15, 8, -4])
    out = tf.nn.embedding_lookup(mhv, ids)
    target = RNG.uniform(-1, 1, (len(ids), mhv.embedding_dim)).astype(np.float32)
    loss = 0.5 * tf.reduce_sum(tf.square(out - target))
    lr = 0.2
    opt = (tf.train.AdagradOptimizer(lr) if optimizer == "adagrad"
           else tf.train.GradientDescentOptimizer(lr))
    train = opt.minimize(loss)
    accumulators = [np.full(t.shape, 0.1) for t in tables]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, [t.astype(np.float32) for t in tables])
        for _ in range(4):
            fetched, _ = sess.run([out, train])
            emb = np_compose(tables, ids, op)
            # The step fetches the embeddings it trained on, before its update.
            np.testing.assert_allclose(fetched, emb, rtol=1e-5, atol=1e-6)
            grads = np_table_grads(tables, ids, op, emb - target)
            tables = _np_step(tables, grads, optimizer, accumulators, lr)
            for got, want in zip(sess.run(list(mhv.tables)), tables, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _ancestors(tensor):
    seen, stack = set(), [tensor.op]
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
    return seen


@pytest.mark.parametrize("op", ["add", "concat"])
def test_table_gradients_wait_for_the_lookup(op):
    # With these ops and a linear loss the gradient needs no forward value,
    # so only the lookup's own gradient makes the update wait for the read.
    mhv = _mhv(op)
    out = tf.nn.embedding_lookup(mhv, [1, 2])
    grads = tf.gradients(tf.reduce_sum(2.0 * out), list(mhv.tables))
    for grad in grads:
        assert out.op in _ancestors(grad.values)


def test_trainable_false_and_collections_reach_the_tables():
    mhv = tf.get_multihash_variable("m", [[3, 2]], trainable=False,
                                    collections=["mine", tf.GraphKeys.GLOBAL_VARIABLES])
    assert not tf.trainable_variables()
    assert set(tf.get_collection("mine")) == set(mhv.tables)


def test_regularizer_applies_to_each_table():
    tf.get_multihash_variable("m", [[3, 2]], initializer=tf.ones_initializer,
                              regularizer=lambda t: tf.reduce_sum(t))
    losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert len(losses) == 2
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(tf.add_n(losses)) == 12.0


def test_reuse_returns_the_same_tables():
    with tf.variable_scope("s"):
        first = tf.get_multihash_variable("m", [[3, 2]])
    with tf.variable_scope("s", reuse=True):
        again = tf.get_multihash_variable("m", [[3, 2]])
    with tf.variable_scope("s", reuse=tf.AUTO_REUSE):
        auto = tf.get_multihash_variable("m", [[3, 2]])
    assert again.tables == first.tables == auto.tables
    with pytest.raises(ValueError, match="already exists"), tf.variable_scope("s"):
        tf.get_multihash_variable("m", [[3, 2]])


# --- sparse lookups vs stock TF on the composed dense table ---------------------------------

def _dense_reference(op, tables):
    """The whole table the composition defines: row y is the embedding of id y."""
    return tf.constant(np_compose(tables, np.arange(ROWS[0] * ROWS[1]), op))


def _sparse(indices, values, shape):
    return tf.SparseTensor(np.array(indices, np.int64), np.array(values, np.int64), shape)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_embedding_lookup_sparse_matches_stock(op, combiner):
    mhv = _mhv(op)
    tables = _tables(op)
    dense = _dense_reference(op, tables)
    ids = _sparse([[0, 0], [0, 1], [0, 2], [2, 0], [2, 1], [3, 0]], [1, 14, 1, 7, 0, 12], [4, 3])
    weights = tf.SparseTensor(ids.indices, [0.5, 2.0, 1.5, 1.0, 3.0, 0.25], ids.dense_shape)
    pairs = [
        (tf.nn.embedding_lookup_sparse(mhv, ids, weights, combiner=combiner),
         tf.nn.embedding_lookup_sparse(dense, ids, weights, combiner=combiner)),
        (tf.nn.embedding_lookup_sparse(mhv, ids, None, combiner=combiner, max_norm=0.9),
         tf.nn.embedding_lookup_sparse(dense, ids, None, combiner=combiner, max_norm=0.9)),
        (stock_tf.nn.embedding_lookup_sparse(mhv, ids, weights, combiner=combiner),
         stock_tf.nn.embedding_lookup_sparse(dense, ids, weights, combiner=combiner)),
    ]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        for got, want in sess.run(pairs):
            assert got.shape == (4, mhv.embedding_dim)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_safe_embedding_lookup_sparse_matches_stock(op, combiner):
    mhv = _mhv(op)
    tables = _tables(op)
    dense = _dense_reference(op, tables)
    # Row 1 is empty, row 3 only holds an invalid id, row 2 a zero weight.
    ids = _sparse([[0, 0], [0, 1], [2, 0], [2, 1], [3, 0], [4, 0]], [5, 11, 2, 6, -1, 9], [5, 2])
    weights = tf.SparseTensor(ids.indices, [1.0, 2.0, 0.0, 0.5, 1.0, 1.5], ids.dense_shape)
    ids3 = _sparse([[0, 0, 0], [0, 1, 0], [0, 1, 1], [1, 1, 1]], [3, 4, 14, 8], [2, 2, 2])
    safe = tf.nn.safe_embedding_lookup_sparse
    pairs = []
    for kwargs in ({}, {"default_id": 13}, {"max_norm": 0.7}):
        for w in (None, weights):
            pairs.append((safe(mhv, ids, w, combiner=combiner, **kwargs),
                          safe(dense, ids, w, combiner=combiner, **kwargs)))
    pairs.append((safe(mhv, ids3, None, combiner=combiner),
                  safe(dense, ids3, None, combiner=combiner)))
    pairs.append((stock_tf.nn.safe_embedding_lookup_sparse(mhv, ids, weights, combiner),
                  stock_tf.nn.safe_embedding_lookup_sparse(dense, ids, weights, combiner)))
    assert pairs[-2][0].shape.as_list() == [2, 2, mhv.embedding_dim]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        for got, want in sess.run(pairs):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_sparse_lookup_trains_the_tables():
    mhv = _mhv("mult")
    tables = _tables("mult")
    ids = _sparse([[0, 0], [0, 1], [1, 0]], [2, 9, 2], [2, 2])
    out = tf.nn.safe_embedding_lookup_sparse(mhv, ids, None, combiner="mean")
    grads = tf.gradients(tf.reduce_sum(out), list(mhv.tables))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, mhv, tables)
        got = sess.run([tf.convert_to_tensor(g) for g in grads])
    # Row 0 averages ids 2 and 9, row 1 is id 2: d/d emb is 0.5, 0.5, 1.
    upstream = np.array([0.5, 0.5, 1.0])[:, None] * np.ones((3, 4))
    want = np_table_grads(tables, np.array([2, 9, 2]), "mult", upstream)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


# --- checkpoints -------------------------------------------------------------------------

def test_saver_round_trip(tmp_path):
    mhv = tf.get_multihash_variable("ckpt_mhv", [[4, 3], [2, 2]], operation="concat")
    out = tf.nn.embedding_lookup(mhv, [0, 5, 7])
    train = tf.train.AdagradOptimizer(0.3).minimize(tf.reduce_sum(out * out))
    path = str(tmp_path / "model" / "ckpt")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        saved_tables, saved_out = sess.run([list(mhv.tables), out])
        tf.train.Saver().save(sess, path)
        tf.train.Saver(var_list=list(mhv.tables)).save(sess, path + "-tables")
    names = dict(tf.train.list_variables(path))
    assert names["ckpt_mhv/quotient"] == [4, 3] and names["ckpt_mhv/remainder"] == [2, 2]
    assert "ckpt_mhv/quotient/Adagrad" in names

    for ckpt, only_tables in ((path, False), (path + "-tables", True)):
        tf.reset_default_graph()
        mhv2 = tf.get_multihash_variable("ckpt_mhv", [[4, 3], [2, 2]], operation="concat")
        out2 = tf.nn.embedding_lookup(mhv2, [0, 5, 7])
        saver = tf.train.Saver(list(mhv2.tables) if only_tables else None)
        with tf.Session() as sess:
            saver.restore(sess, ckpt)
            tables, got = sess.run([list(mhv2.tables), out2])
        for t, s in zip(tables, saved_tables, strict=True):
            np.testing.assert_array_equal(t, s)
        np.testing.assert_array_equal(got, saved_out)


# --- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"complementary_strategy": "CRT"}, r"complementary_strategy must be one of \['Q-R'\], "
                                        r"got 'CRT'"),
    ({"num_of_partitions": 3}, r"num_of_partitions must be 2 for complementary_strategy "
                               r"'Q-R', got 3"),
    ({"operation": "mul"}, r"operation must be one of \['add', 'mult', 'concat'\], got 'mul'"),
    ({"dims": []}, r"dims must be a non-empty list of \[rows, dim\] pairs, got \[\]"),
    ({"dims": 4}, r"dims must be a non-empty list of \[rows, dim\] pairs, got 4"),
    ({"dims": [4]}, r"dims\[0\] must be a \[rows, dim\] pair of positive integers, got 4"),
    ({"dims": [[4, 0]]}, r"dims\[0\] must be .* got \[4, 0\]"),
    ({"dims": [[4, 2, 1]]}, r"dims\[0\] must be .* got \[4, 2, 1\]"),
    ({"dims": [[4, True]]}, r"dims\[0\] must be .* got \[4, True\]"),
    ({"dims": [[4, 2], [2.0, 2]], "operation": "concat"}, r"dims\[1\] must be .* got \[2.0, 2\]"),
    ({"dims": [[4, 2]], "operation": "concat"},
     r"dims \[\[4, 2\]\] has one \[rows, dim\] pair, which needs operation 'add' or 'mult', "
     r"got 'concat'"),
    ({"dims": [[4, 2], [4, 2]], "operation": "add"},
     r"dims \[\[4, 2\], \[4, 2\]\] has 2 \[rows, dim\] pairs, which needs operation 'concat', "
     r"got 'add'"),
    ({"dims": [[4, 2], [4, 2], [4, 2]], "operation": "concat"},
     r"must have one \[rows, dim\] pair per partition \(2\), got 3"),
    ({"dims": [[2**32, 2]]}, r"rows \[4294967296, 4294967296\] multiply to .* more ids than "
                             r"int64 holds"),
    ({"dtype": tf.int32}, r"dtype must be a floating-point type, got int32"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    args = {"name": "bad", "dims": [[4, 2]], **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        tf.get_multihash_variable(**args)
    assert "'bad'" in str(info.value)
    assert not tf.global_variables()


def test_bad_name_raises_value_error():
    with pytest.raises(ValueError, match="name must be a non-empty string, got ''"):
        tf.get_multihash_variable("", [[4, 2]])


def test_bad_ids_and_combiners():
    mhv = tf.get_multihash_variable("m", [[4, 2]])
    with pytest.raises(TypeError, match=r"MultiHashVariable\('m'\): ids must be integers, "
                                        r"got dtype float32"):
        tf.nn.embedding_lookup(mhv, [1.5])
    with pytest.raises(TypeError, match="ids must be integers, got dtype string"):
        tf.nn.embedding_lookup(mhv, tf.constant(["a"]))
    ids = _sparse([[0, 0]], [1], [1, 1])
    with pytest.raises(TypeError, match="use tf.nn.embedding_lookup_sparse"):
        tf.nn.embedding_lookup(mhv, ids)
    with pytest.raises(ValueError, match=r"combiner must be one of \['sum', 'mean', 'sqrtn'\], "
                                         r"got 'max'"):
        tf.nn.embedding_lookup_sparse(mhv, ids, None, combiner="max")
    with pytest.raises(ValueError, match="combiner must be one of .* got 'max'"):
        tf.nn.safe_embedding_lookup_sparse(mhv, ids, combiner="max")
    with pytest.raises(TypeError, match="sparse weights must be a SparseTensor or None"):
        tf.nn.embedding_lookup_sparse(mhv, ids, tf.constant([1.0]))
    with pytest.raises(TypeError, match="sparse ids must be a SparseTensor"):
        tf.nn.safe_embedding_lookup_sparse(mhv, tf.constant([[1]], tf.int64))


def test_constructor_checks_its_tables():
    a = tf.get_variable("a", [3, 2])
    b = tf.get_variable("b", [4, 3])
    c = tf.get_variable("c", [4, 3], dtype=tf.float64)
    with pytest.raises(ValueError, match=r"operation 'add' needs tables of one dim, "
                                         r"got dims \[2, 3\]"):
        tf.MultiHashVariable("m", [a, b], "add")
    with pytest.raises(ValueError, match=r"tables have different dtypes \['float32', 'float64'\]"):
        tf.MultiHashVariable("m", [b, c], "concat")
    with pytest.raises(ValueError, match="num_of_partitions must be 2 .* got 1"):
        tf.MultiHashVariable("m", [a], "add")
    with pytest.raises(TypeError, match=r"tables\[1\] must be a tf.Variable"):
        tf.MultiHashVariable("m", [a, tf.zeros([3, 2])], "add")
    with pytest.raises(ValueError, match=r"tables\[0\] must have a static 2-D shape"):
        tf.MultiHashVariable("m", [tf.get_variable("v", [3]), a], "add")
    mhv = tf.MultiHashVariable("m", [a, b], "concat")
    assert mhv.embedding_dim == 5 and mhv.num_ids == 12


# --- the user guide's §3.5.3 script ----------------------------------------------------

# Runs a guide script with `print` recording its arguments as JSON.
_HARNESS = r"""
import builtins, json, runpy, sys
import numpy as np
printed = []
builtins.print = lambda *args, **kwargs: printed.append(list(args))
def encode(x):
    if isinstance(x, np.ndarray):
        return {"array": x.tolist()}
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    return x
sys.argv = [sys.argv[1]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit_:
    if exit_.code not in (None, 0):
        raise
sys.stdout.write(json.dumps(encode(printed)))
"""


def run_guide_script(name):
    """The values a guide script printed: one list of arguments per print call."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
    proc = subprocess.run([sys.executable, "-c", _HARNESS,
                           os.path.join(ROOT, "examples", "guide", name)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def guide_reference(rows, dims, ids, batch_rows, steps=3, lr=0.1):
    """Embeddings fetched by `sess.run([emb, train_op])` in the guide's scripts.

    Tables start at ones, the loss is sum(2 * emb), and Adagrad (initial
    accumulator 0.1) updates the tables after each fetch. `batch_rows[i]` is
    the output row of ids[i] (one id per row).
    """
    tables = [np.ones((r, d)) for r, d in zip(rows, dims, strict=True)]
    accumulators = [np.full((r, d), 0.1) for r, d in zip(rows, dims, strict=True)]
    fetched = []
    for _ in range(steps):
        emb = np_compose(tables, ids, "concat", rows)
        out = np.zeros((max(batch_rows) + 1, sum(dims)))
        out[batch_rows] = emb
        fetched.append(out)
        grads = np_table_grads(tables, ids, "concat", np.full(emb.shape, 2.0), rows)
        tables = _np_step(tables, grads, "adagrad", accumulators, lr)
    return fetched


def test_guide_get_multihash_variable_script():
    printed = run_guide_script("multihash_variable.py")
    want = guide_reference((2, 2), (2, 2), np.arange(4), [0, 1, 2, 3])
    assert len(printed) == 3
    for (line,), expected in zip(printed, want, strict=True):
        emb, train_op_result = line
        assert train_op_result is None
        np.testing.assert_allclose(np.array(emb["array"]), expected, rtol=1e-6)
    # Each table row serves two ids: gradient 4, so Adagrad moves 1 to
    # 1 - 0.1 * 4 / sqrt(16.1) after the first step.
    np.testing.assert_allclose(printed[1][0][0]["array"][0][0],
                               1 - 0.4 / np.sqrt(16.1), rtol=1e-6)
