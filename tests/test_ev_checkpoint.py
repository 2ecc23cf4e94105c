"""EmbeddingVariable checkpoints: DeepRec's tensor names, re-sharding, stock savers."""

import os
import re

import numpy as np
import pytest
import tensorflow as stock_tf
from deeprec.python.framework import meta_graph
from tensorflow.python.client import session as session_lib

import deeprec as tf

DIM = 3
BATCHES = [[1, 5, 5, 1002, -7, 3000000001], [5, 8, 13, 1002, 2002], [-7, 8, 999, 1999, 42]]


def _build(num_shards, dim=DIM):
    """An EV trained with Adagrad: returns (var, optimizer, ids placeholder, train op)."""
    ids = tf.placeholder(tf.int64, [None])
    partitioner = tf.fixed_size_partitioner(num_shards) if num_shards else None
    var = tf.get_embedding_variable(
        "emb", dim, partitioner=partitioner,
        initializer=tf.random_uniform_initializer(-1, 1, seed=7),
        ev_option=tf.EmbeddingVariableOption(
            init_option=tf.InitializerOption(default_value_dim=64)))
    emb = tf.nn.embedding_lookup(var, ids)
    opt = tf.train.AdagradOptimizer(0.1)
    step = tf.train.get_or_create_global_step()
    train_op = opt.minimize(tf.reduce_sum(emb * emb), global_step=step)
    return var, opt, ids, train_op


def _contents(sess, var, opt):
    """{key: (value, freq, version, accumulator)} over all shards."""
    shards = list(var) if isinstance(var, tf.PartitionedEmbeddingVariable) else [var]
    out = {}
    for shard in shards:
        keys, values, versions, freqs = sess.run(shard.export())
        s_keys, s_values, _, _ = sess.run(opt.get_slot(shard, "accumulator").export())
        np.testing.assert_array_equal(keys, s_keys)
        for i, k in enumerate(keys):
            out[int(k)] = (values[i].tolist(), int(freqs[i]), int(versions[i]),
                           s_values[i].tolist())
    return out


def _train_and_save(tmp_path, num_shards, saver_cls=None):
    var, opt, ids, train_op = _build(num_shards)
    saver = (saver_cls or tf.train.Saver)()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for batch in BATCHES:
            sess.run(train_op, {ids: batch})
        path = saver.save(sess, str(tmp_path / "ckpt" / "model"))
        return path, _contents(sess, var, opt)


SHARDS = [None, 1, 2, 4]


@pytest.mark.parametrize("save_shards", SHARDS)
@pytest.mark.parametrize("restore_shards", SHARDS)
def test_restore_into_any_shard_count(tmp_path, save_shards, restore_shards):
    path, saved = _train_and_save(tmp_path, save_shards)
    tf.reset_default_graph()
    var, opt, ids, train_op = _build(restore_shards)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {ids: [123456, 5]})  # state that the restore replaces
        saver.restore(sess, path)
        assert _contents(sess, var, opt) == saved
        assert sess.run(tf.train.get_global_step()) == len(BATCHES)
    assert len(saved) == 11


def test_tensor_names_and_partition_offsets(tmp_path):
    path, saved = _train_and_save(tmp_path, 2)
    names = dict(tf.train.list_variables(path))
    for part in ("emb/part_0", "emb/part_1"):
        for suffix in ("-keys", "-values", "-freqs", "-versions", "-partition_offset",
                       "/Adagrad-keys", "/Adagrad-values", "/Adagrad-partition_offset"):
            assert part + suffix in names
        keys = tf.train.load_variable(path, part + "-keys")
        offsets = tf.train.load_variable(path, part + "-partition_offset")
        assert offsets.shape == (1001,) and offsets.dtype == np.int32
        assert offsets[0] == 0 and offsets[-1] == len(keys)
        for bucket in range(1000):
            group = keys[offsets[bucket]:offsets[bucket + 1]]
            assert all(k % 1000 == bucket for k in group)
        # Shard i holds exactly the keys with (k mod 1000) mod 2 == i.
        assert all((k % 1000) % 2 == int(part[-1]) for k in keys)
        values = tf.train.load_variable(path, part + "-values")
        freqs = tf.train.load_variable(path, part + "-freqs")
        for k, v, f in zip(keys, values, freqs, strict=True):
            np.testing.assert_array_equal(v, np.float32(saved[int(k)][0]))
            assert f == saved[int(k)][1]


def test_user_guide_export_format_example(tmp_path):
    """§3.21: save, then find EVs by op type KvVarHandleOp and read them back."""
    a = tf.get_embedding_variable("a", embedding_dim=4)
    b = tf.get_embedding_variable("b", embedding_dim=8,
                                  partitioner=tf.fixed_size_partitioner(4))
    emb_a = tf.nn.embedding_lookup(a, tf.constant([0, 1, 2, 3, 4], dtype=tf.int64))
    emb_b = tf.nn.embedding_lookup(b, tf.constant([5, 6, 7, 8, 9], dtype=tf.int64))
    emb = tf.concat([emb_a, emb_b], axis=1)
    train_op = tf.train.AdagradOptimizer(0.1).minimize(tf.reduce_sum(emb))
    saver = tf.train.Saver()
    ckpt_dir = str(tmp_path / "ckpt_test" / "ckpt")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([emb, train_op])
        saver.save(sess, ckpt_dir + "/model")
        trained = {v.op.name: sess.run(v.export()) for v in [a] + list(b)}

    graph = meta_graph.read_meta_graph_file(ckpt_dir + "/model.meta")
    ev_nodes = [n.name for n in graph.graph_def.node if n.op == "KvVarHandleOp"]
    assert ev_nodes == ["a", "b/part_0", "b/part_1", "b/part_2", "b/part_3",
                        "a/Adagrad", "b/part_0/Adagrad", "b/part_1/Adagrad",
                        "b/part_2/Adagrad", "b/part_3/Adagrad"]
    expected_keys = {"a": [0, 1, 2, 3, 4], "b/part_0": [8], "b/part_1": [5, 9],
                     "b/part_2": [6], "b/part_3": [7]}
    for name, keys in expected_keys.items():
        np.testing.assert_array_equal(tf.train.load_variable(ckpt_dir, name + "-keys"), keys)
        np.testing.assert_array_equal(tf.train.load_variable(ckpt_dir, name + "-values"),
                                      trained[name][1])
        np.testing.assert_array_equal(tf.train.load_variable(ckpt_dir, name + "-freqs"),
                                      np.ones(len(keys)))
        np.testing.assert_array_equal(
            tf.train.load_variable(ckpt_dir, name + "-versions"), -np.ones(len(keys)))


def test_stock_saver_round_trip_same_layout(tmp_path):
    path, saved = _train_and_save(tmp_path, 2, saver_cls=stock_tf.compat.v1.train.Saver)
    tf.reset_default_graph()
    var, opt, ids, train_op = _build(2)
    saver = stock_tf.compat.v1.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {ids: [77]})
        saver.restore(sess, path)
        assert _contents(sess, var, opt) == saved


def test_stock_saver_cannot_reshard_and_says_which_tensor(tmp_path):
    path, _ = _train_and_save(tmp_path, 2)
    tf.reset_default_graph()
    _build(4)
    saver = stock_tf.compat.v1.train.Saver()
    with tf.Session() as sess, pytest.raises(tf.errors.NotFoundError, match="emb/part_2"):
        saver.restore(sess, path)


def test_monitored_training_session_saves_and_restores(tmp_path):
    ckpt_dir = str(tmp_path / "mts")
    var, opt, ids, train_op = _build(2)
    with tf.train.MonitoredTrainingSession(checkpoint_dir=ckpt_dir,
                                           save_checkpoint_steps=len(BATCHES),
                                           save_summaries_steps=None) as sess:
        for batch in BATCHES:
            sess.run(train_op, {ids: batch})
        raw = sess._tf_sess()  # pylint: disable=protected-access
        saved = _contents(raw, var, opt)
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("-3")

    tf.reset_default_graph()
    var, opt, ids, train_op = _build(4)
    with tf.train.MonitoredTrainingSession(checkpoint_dir=ckpt_dir,
                                           save_checkpoint_steps=None,
                                           save_summaries_steps=None) as sess:
        raw = sess._tf_sess()  # pylint: disable=protected-access
        assert raw.run(tf.train.get_global_step()) == len(BATCHES)
        assert _contents(raw, var, opt) == saved


@pytest.mark.parametrize("session", ["deeprec", "deeprec, own hook", "stock"])
def test_monitored_training_session_reads_global_step_once_per_step(
        tmp_path, monkeypatch, session):
    """deeprec's checkpoint hooks (its own, or one passed in) save on the same
    schedule as stock's without the second session.run of the global step that
    stock's makes after every step."""
    step_reads = []
    run = session_lib.BaseSession.run

    def counting_run(self, fetches, *args, **kwargs):
        if isinstance(fetches, stock_tf.Tensor):  # The hooks' own reads of the step.
            step_reads.append(fetches.name)
        return run(self, fetches, *args, **kwargs)

    monkeypatch.setattr(session_lib.BaseSession, "run", counting_run)
    train_op = tf.group(tf.assign_add(tf.train.get_or_create_global_step(), 1))
    ckpt_dir = str(tmp_path / "mts")
    scaffold = tf.train.Scaffold(saver=tf.train.Saver(max_to_keep=10))
    kwargs = dict(checkpoint_dir=ckpt_dir, save_checkpoint_steps=4, save_summaries_steps=None,
                  log_step_count_steps=None, scaffold=scaffold,
                  hooks=[tf.train.StopAtStepHook(last_step=10)])
    session_fn = tf.train.MonitoredTrainingSession
    if session == "deeprec, own hook":
        kwargs.update(save_checkpoint_steps=None, chief_only_hooks=[
            tf.train.CheckpointSaverHook(ckpt_dir, save_steps=4, scaffold=scaffold)])
    elif session == "stock":
        session_fn = stock_tf.compat.v1.train.MonitoredTrainingSession
    with session_fn(**kwargs) as sess:
        step_reads.clear()
        steps = 0
        while not sess.should_stop():
            sess.run(train_op)
            steps += 1
    state = tf.train.get_checkpoint_state(ckpt_dir)
    saved = sorted(int(path.rsplit("-", 1)[1]) for path in state.all_model_checkpoint_paths)
    assert steps == 10
    assert saved == [0, 4, 8, 10]
    # Both: StopAtStepHook's reads near the last step and the final save's.
    # The checkpoint hook reads the step when a save may be due (around steps
    # 4 and 8; the step the hooks fetch may be read before or after the
    # train op's increment) with deeprec, after every step with stock.
    if session == "stock":
        assert len(step_reads) >= steps + 2
    else:
        assert len(step_reads) < steps


@pytest.mark.parametrize("saver_cls", [tf.train.Saver, stock_tf.compat.v1.train.Saver])
def test_restore_with_other_embedding_dim_names_tensor_and_dims(tmp_path, saver_cls):
    path, _ = _train_and_save(tmp_path, None, saver_cls=saver_cls)
    tf.reset_default_graph()
    _build(None, dim=DIM + 2)
    saver = saver_cls()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError) as err:
            saver.restore(sess, path)
    message = str(err.value)
    # The value or the slot restore may fail first; either names its tensor.
    assert re.search(r"'emb(/Adagrad)?-values'", message)
    assert f"dim {DIM}" in message and f"dim {DIM + 2}" in message
    assert os.path.exists(path + ".index")


@pytest.mark.parametrize("saver_cls,restore_shards", [
    (tf.train.Saver, 4), (stock_tf.compat.v1.train.Saver, 2)])
def test_int32_keys_round_trip(tmp_path, saver_cls, restore_shards):
    def build(num_shards):
        ids = tf.placeholder(tf.int32, [None])
        var = tf.get_embedding_variable("emb32", 2, key_dtype=tf.int32,
                                        partitioner=tf.fixed_size_partitioner(num_shards))
        emb = tf.nn.embedding_lookup(var, ids)
        opt = tf.train.AdagradOptimizer(0.1)
        return var, opt, ids, opt.minimize(tf.reduce_sum(emb * emb))

    var, opt, ids, train_op = build(2)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {ids: [-3, 7, 7, 2**31 - 1, 1001]})
        path = saver_cls().save(sess, str(tmp_path / "model"))
        saved = _contents(sess, var, opt)
    tf.reset_default_graph()
    var, opt, ids, train_op = build(restore_shards)
    with tf.Session() as sess:
        saver_cls().restore(sess, path)
        assert _contents(sess, var, opt) == saved
    assert sorted(saved) == [-3, 7, 1001, 2**31 - 1]
