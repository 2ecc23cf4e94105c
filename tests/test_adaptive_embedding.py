"""Adaptive Embedding: masked ids use the static hashed table, the others the EV (§3.4)."""

import numpy as np
import pytest

import deeprec as tf

DIM, BUCKETS, LR = 3, 5, 0.5
IDS = dict(indices=[[0, 0], [0, 1], [1, 0], [2, 0], [2, 1], [2, 2]],
           values=[11, 12, 13, 11, 14, 12], dense_shape=[4, 3])  # row 3 is empty
MASK = [1, 0, 1, 0, 1, 0]  # id 11 is static in row 0 and dynamic in row 2


def _build(combiner):
    column = tf.feature_column.categorical_column_with_adaptive_embedding(
        "f", hash_bucket_size=BUCKETS, dtype=tf.int64)
    emb = tf.feature_column.embedding_column(
        column, DIM, combiner=combiner,
        initializer=tf.random_uniform_initializer(-1, 1, seed=3))
    ids = tf.SparseTensor(IDS["indices"], tf.constant(IDS["values"], tf.int64),
                          IDS["dense_shape"])
    out = tf.feature_column.input_layer({"f": ids}, [emb],
                                        adaptive_mask_tensors={"f": tf.constant(MASK)})
    static, dynamic = tf.global_variables()
    return out, static, dynamic


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_adaptive_lookup_and_update_match_numpy(combiner):
    out, static, dynamic = _build(combiner)
    assert isinstance(dynamic, tf.EmbeddingVariable) and not isinstance(
        static, tf.EmbeddingVariable)
    coef = np.random.RandomState(0).normal(size=(4, DIM)).astype(np.float32)
    train_op = tf.train.GradientDescentOptimizer(LR).minimize(tf.reduce_sum(out * coef))
    values = np.array(IDS["values"])
    buckets = tf.strings.to_hash_bucket_fast(tf.strings.as_string(values), BUCKETS)
    distinct = np.unique(values)
    read_ev = tf.nn.embedding_lookup(dynamic, tf.constant(distinct, tf.int64))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        table, bucket = sess.run([static, buckets])
        ev_rows = dict(zip(distinct.tolist(), sess.run(read_ev), strict=True))
        got, _ = sess.run([out, train_op])
        table_after = sess.run(static)
        ev_after = dict(zip(distinct.tolist(), sess.run(read_ev), strict=True))
    rows = np.array([table[bucket[i]] if MASK[i] else ev_rows[v] for i, v in enumerate(values)])
    segments = np.array(IDS["indices"])[:, 0]
    counts = np.bincount(segments, minlength=4).astype(np.float32)
    norm = {"sum": np.ones(4), "mean": counts, "sqrtn": np.sqrt(counts)}[combiner]
    norm[norm == 0] = 1
    expected = np.zeros((4, DIM))
    np.add.at(expected, segments, rows)
    expected /= norm[:, None]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    grad_rows = coef[segments] / norm[segments][:, None]
    table_expected = table.astype(np.float64)
    ev_expected = {k: v.astype(np.float64) for k, v in ev_rows.items()}
    for i, v in enumerate(values):
        if MASK[i]:
            table_expected[bucket[i]] -= LR * grad_rows[i]
        else:
            ev_expected[v] -= LR * grad_rows[i]
    np.testing.assert_allclose(table_after, table_expected, rtol=1e-5, atol=1e-6)
    for v in distinct:
        np.testing.assert_allclose(ev_after[v], ev_expected[v], rtol=1e-5, atol=1e-6)


def test_masked_ids_never_enter_the_embedding_variable():
    out, _, dynamic = _build("mean")
    train_op = tf.train.AdagradOptimizer(0.1).minimize(tf.reduce_sum(out))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op)
        keys = sess.run(dynamic.export()[0])
    assert sorted(keys.tolist()) == [11, 12]  # 13 and 14 are only ever static


def test_missing_mask_is_a_clear_error():
    column = tf.feature_column.categorical_column_with_adaptive_embedding(
        "f", hash_bucket_size=BUCKETS, dtype=tf.int64)
    emb = tf.feature_column.embedding_column(column, DIM)
    ids = tf.SparseTensor([[0, 0]], tf.constant([1], tf.int64), [1, 1])
    with pytest.raises(ValueError, match="adaptive_mask_tensors"):
        tf.feature_column.input_layer({"f": ids}, [emb])


def test_mask_of_the_wrong_length_is_a_clear_error():
    column = tf.feature_column.categorical_column_with_adaptive_embedding(
        "f", hash_bucket_size=BUCKETS, dtype=tf.int64)
    emb = tf.feature_column.embedding_column(column, DIM)
    ids = tf.SparseTensor([[0, 0], [1, 0]], tf.constant([1, 2], tf.int64), [2, 1])
    with pytest.raises(ValueError, match="one entry per id: 3 entries for 2 ids"):
        tf.feature_column.input_layer({"f": ids}, [emb],
                                      adaptive_mask_tensors={"f": tf.constant([1, 0, 1])})
    mask = tf.placeholder(tf.int32, [None])
    out = tf.feature_column.input_layer({"f": ids}, [emb], adaptive_mask_tensors={"f": mask})
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per id"):
            sess.run(out, {mask: [1, 0, 1]})


@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_bad_hash_bucket_size(size):
    with pytest.raises(ValueError, match="hash_bucket_size"):
        tf.feature_column.categorical_column_with_adaptive_embedding("f", hash_bucket_size=size)
