"""EV-aware optimizers agree with stock TensorFlow on dense variables.

An EmbeddingVariable whose default-value matrix is the dense variable's
initial value (ids < default_value_dim take row id) must follow exactly the
trajectory of a dense tf.Variable trained by the stock optimizer on the same
id batches, duplicates included.
"""

import numpy as np
import pytest
import tensorflow as stock_tf

import deeprec as tf

ROWS, DIM, STEPS = 16, 4, 5
INIT = np.random.RandomState(0).uniform(-1, 1, (ROWS, DIM)).astype(np.float32)
# Batches with repeated ids; ids stay below ROWS so dense rows exist.
VARYING = [[1, 3, 3, 7, 1, 1], [2, 3, 9, 9], [15, 0, 7, 7, 7], [4, 5, 6, 4], [3, 1, 2, 3]]
# Adam decays every dense row in TF1's sparse path, but EVs update lazily
# (as DeepRec does); both agree when every step touches the same id set.
FIXED_SET = [[1, 3, 3, 7], [7, 7, 1, 3], [3, 1, 7, 1, 1], [1, 3, 7], [7, 3, 3, 1]]

OPTIMIZERS = {
    "sgd": (lambda m: m.GradientDescentOptimizer(0.3), VARYING),
    "adagrad": (lambda m: m.AdagradOptimizer(0.2, initial_accumulator_value=0.3), VARYING),
    "momentum": (lambda m: m.MomentumOptimizer(0.1, momentum=0.9), VARYING),
    "nesterov": (lambda m: m.MomentumOptimizer(0.1, momentum=0.8, use_nesterov=True),
                 VARYING),
    "adam": (lambda m: m.AdamOptimizer(0.05), FIXED_SET),
    "ftrl": (lambda m: m.FtrlOptimizer(0.5, l1_regularization_strength=0.01,
                                        l2_regularization_strength=0.02), VARYING),
    "ftrl_shrinkage": (lambda m: m.FtrlOptimizer(
        0.5, learning_rate_power=-0.7, l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        l2_shrinkage_regularization_strength=0.03), VARYING),
}


def _loss(emb, ids):
    # A non-trivial per-row gradient: d/demb of sum(w * emb^2) = 2 w emb.
    weights = tf.cast(tf.reshape(ids, [-1, 1]) % 3 + 1, tf.float32)
    return tf.reduce_sum(weights * emb * emb)


def _train(make_opt, batches, build):
    """Runs STEPS steps; returns the final [ROWS, DIM] table."""
    ids = tf.placeholder(tf.int64, [None])
    table, emb = build(ids)
    global_step = tf.train.get_or_create_global_step()
    train_op = make_opt().minimize(_loss(emb, ids), global_step=global_step)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for batch in batches:
            sess.run(train_op, {ids: batch})
        return sess.run(table(sess)) if callable(table) else sess.run(table)


def _dense(use_resource):
    def build(ids):
        var = tf.get_variable("dense", initializer=INIT, use_resource=use_resource)
        return var, tf.nn.embedding_lookup(var, ids)
    return build


def _ev(num_shards):
    def build(ids):
        var = tf.get_embedding_variable(
            "ev", DIM, initializer=INIT,
            partitioner=tf.fixed_size_partitioner(num_shards) if num_shards else None,
            ev_option=tf.EmbeddingVariableOption(
                init_option=tf.InitializerOption(default_value_dim=ROWS)))
        all_ids = tf.constant(np.arange(ROWS), tf.int64)
        # Reading through a non-training path: Find never inserts.
        shards = list(var) if num_shards else [var]
        read = tf.nn.embedding_lookup(var, all_ids)
        del shards
        return read, tf.nn.embedding_lookup(var, ids)
    return build


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("num_shards", [None, 2])
def test_ev_matches_dense_variable(name, num_shards):
    make, batches = OPTIMIZERS[name]
    expected = _train(lambda: make(stock_tf.compat.v1.train), batches, _dense(True))
    tf.reset_default_graph()
    got = _train(lambda: make(tf.train), batches, _ev(num_shards))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(got, INIT), "training did not move the table"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("use_resource", [True, False])
def test_dense_variables_keep_stock_behaviour(name, use_resource):
    make, batches = OPTIMIZERS[name]
    expected = _train(lambda: make(stock_tf.compat.v1.train), batches,
                      _dense(use_resource))
    tf.reset_default_graph()
    got = _train(lambda: make(tf.train), batches, _dense(use_resource))
    np.testing.assert_array_equal(got, expected)


def test_slots_live_in_the_primary_table_and_versions_record_global_step():
    ids = tf.constant([3, 3, 8], tf.int64)
    ev = tf.get_embedding_variable("ev", 2, initializer=tf.ones_initializer())
    step = tf.train.get_or_create_global_step()
    opt = tf.train.AdamOptimizer(0.1)
    train_op = opt.minimize(_loss(tf.nn.embedding_lookup(ev, ids), ids),
                            global_step=step)
    m, v = opt.get_slot(ev, "m"), opt.get_slot(ev, "v")
    assert m.op.name == "ev/Adam" and v.op.name == "ev/Adam_1"
    assert m.op.type == "KvVarHandleOp"
    assert m in tf.global_variables() and m not in tf.trainable_variables()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(train_op)
        keys, m_values, versions, freqs = sess.run(m.export())
        np.testing.assert_array_equal(keys, [3, 8])
        np.testing.assert_array_equal(versions, [2, 2])  # step before increment
        np.testing.assert_array_equal(freqs, [6, 3])
        assert m_values.shape == (2, 2) and np.all(m_values > 0)
        np.testing.assert_array_equal(sess.run(ev.get_version([3, 8, 99])), [2, 2, -1])
        np.testing.assert_array_equal(sess.run(ev.total_count()), [2, 2])


def test_optimizer_rejects_slot_as_variable():
    ev = tf.get_embedding_variable("ev", 2)
    opt = tf.train.AdagradOptimizer(0.1)
    opt.minimize(tf.reduce_sum(tf.nn.embedding_lookup(ev, tf.constant([1], tf.int64))))
    slot = opt.get_slot(ev, "accumulator")
    from deeprec._native import ops as kv_ops
    bad = kv_ops.kv_resource_sparse_apply_adagrad(
        slot.handle, slot.handle, 0.1, tf.ones([1, 2]), tf.constant([1], tf.int64),
        tf.constant(-1, tf.int64))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match="is an optimizer slot"):
            sess.run(bad)


def test_training_step_counts_frequency_even_if_gradient_ignores_values():
    ev = tf.get_embedding_variable("ev", 2)
    ids = tf.constant([4, 4, 9], tf.int64)
    # d loss / d emb is constant: without the lookup's own dependency the
    # step would skip the lookup and never count these ids.
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(
        tf.reduce_sum(tf.nn.embedding_lookup(ev, ids)))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op)
        sess.run(train_op)
        np.testing.assert_array_equal(sess.run(ev.get_frequency([4, 9])), [4, 2])
