"""Feature admission (CounterFilter, CBFFilter) and eviction of EmbeddingVariables."""

import numpy as np
import pytest

import deeprec as tf

DIM = 2
NO_PERMISSION = -7.0
LR = 0.5


def _filtered_ev(filter_option, name="ev", **kwargs):
    return tf.get_embedding_variable(
        name, DIM, initializer=tf.ones_initializer(),
        ev_option=tf.EmbeddingVariableOption(
            filter_option=filter_option,
            init_option=tf.InitializerOption(default_value_no_permission=NO_PERMISSION)),
        **kwargs)


def _train_graph(var, ids):
    emb = tf.nn.embedding_lookup(var, ids)
    # d loss / d emb = 1 per element: a trained row is 1 - LR * (its count).
    train_op = tf.train.GradientDescentOptimizer(LR).minimize(tf.reduce_sum(emb))
    return emb, train_op


def _check_admission(filter_option):
    ids = tf.constant([1, 1, 1, 1, 2, 2, 2, 3, 3, 4], tf.int64)
    var = _filtered_ev(filter_option)
    emb, train_op = _train_graph(var, ids)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first, _ = sess.run([emb, train_op])
        # Nothing was admitted before this batch: every row is no-permission.
        np.testing.assert_array_equal(first, np.full((10, DIM), NO_PERMISSION))
        second, _ = sess.run([emb, train_op])
        # Ids 1 (4 sightings) and 2 (3) were admitted after the first batch and
        # trained in it once (their gradient rows summed): 1 - LR * count.
        expected = np.full((10, DIM), NO_PERMISSION, np.float32)
        expected[0:4] = 1 - LR * 4
        expected[4:7] = 1 - LR * 3
        np.testing.assert_allclose(second, expected)
        keys, _, _, freqs = sess.run(var.export())
        # Id 3 reached 4 sightings in the second batch and is admitted now.
        np.testing.assert_array_equal(keys, [1, 2, 3])
        np.testing.assert_array_equal(freqs, [8, 6, 4])
        return sess.run(var.stats())


def test_counter_filter_admits_after_filter_freq_lookups():
    stats = _check_admission(tf.CounterFilter(filter_freq=3))
    np.testing.assert_array_equal(stats, [4, 3, 1, 0])  # id 4 still waits


@pytest.mark.parametrize("counter_type", [tf.uint8, tf.uint16, tf.uint32, tf.uint64,
                                          tf.int8, tf.int16, tf.int32, tf.int64])
def test_cbf_filter_admits_like_the_counter_filter(counter_type):
    cbf = tf.CBFFilter(filter_freq=3, max_element_size=1000,
                       false_positive_probability=0.001, counter_type=counter_type)
    stats = _check_admission(cbf)
    # The Bloom filter stores no ids, so none are reported as waiting.
    np.testing.assert_array_equal(stats, [3, 3, 0, 0])


def test_frequency_read_back_counts_duplicates():
    ids = tf.constant([1, 1, 1, 2, 2, 3], tf.int64)
    var = _filtered_ev(tf.CounterFilter(filter_freq=5))
    emb, train_op = _train_graph(var, ids)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([emb, train_op])
        sess.run([emb, train_op])
        np.testing.assert_array_equal(sess.run(var.get_frequency([1, 2, 3, 9])),
                                      [6, 4, 2, 0])


def test_filter_freq_zero_disables_admission():
    var = _filtered_ev(tf.CounterFilter(filter_freq=0))
    emb, _ = _train_graph(var, tf.constant([5], tf.int64))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb), [[1, 1]])


def _evicting_ev(evict_option):
    return tf.get_embedding_variable(
        "ev", DIM, initializer=tf.ones_initializer(),
        ev_option=tf.EmbeddingVariableOption(evict_option=evict_option))


def test_global_step_eviction_at_save(tmp_path):
    ids = tf.placeholder(tf.int64, [None])
    var = _evicting_ev(tf.GlobalStepEvict(steps_to_live=2))
    emb = tf.nn.embedding_lookup(var, ids)
    step = tf.train.get_or_create_global_step()
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(
        tf.reduce_sum(emb), global_step=step)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for batch in ([1, 2, 3], [2, 3], [2, 3], [2, 3]):
            sess.run(train_op, {ids: batch})
        path = saver.save(sess, str(tmp_path / "model"))
        np.testing.assert_array_equal(sorted(sess.run(var.export())[0]), [2, 3])
        assert sess.run(var.stats())[3] == 1
    np.testing.assert_array_equal(sorted(tf.train.load_variable(path, "ev-keys")), [2, 3])


def test_l2_eviction_keeps_exactly_ids_above_threshold():
    ids = tf.constant([1, 2, 3, 4], tf.int64)
    var = _evicting_ev(tf.L2WeightEvict(l2_weight_threshold=1.0))
    emb = tf.nn.embedding_lookup(var, ids)
    # Scale row i by a different factor: norms sqrt(2) * (1, 0.8, 0.6, 0.4).
    scale = tf.constant([[0.0], [0.2], [0.4], [0.6]])
    train_op = tf.train.GradientDescentOptimizer(1.0).minimize(tf.reduce_sum(emb * scale))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op)
        assert sess.run(var.evict()) == 2  # norms 0.85 and 0.57 are below 1.0
        np.testing.assert_array_equal(sorted(sess.run(var.export())[0]), [1, 2])


def test_adagrad_slots_are_evicted_with_their_ids(tmp_path):
    ids = tf.placeholder(tf.int64, [None])
    var = _evicting_ev(tf.GlobalStepEvict(steps_to_live=1))
    step = tf.train.get_or_create_global_step()
    opt = tf.train.AdagradOptimizer(0.1)
    train_op = opt.minimize(tf.reduce_sum(tf.nn.embedding_lookup(var, ids)),
                            global_step=step)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {ids: [7, 8]})
        sess.run(train_op, {ids: [8]})
        path = saver.save(sess, str(tmp_path / "model"))
    np.testing.assert_array_equal(tf.train.load_variable(path, "ev-keys"), [8])
    np.testing.assert_array_equal(tf.train.load_variable(path, "ev/Adagrad-keys"), [8])


def _counter_filter_checkpoint(tmp_path, monkeypatch, save_filtered):
    monkeypatch.setenv("TF_EV_SAVE_FILTERED_FEATURES", save_filtered)
    ids = tf.placeholder(tf.int64, [None])
    var = _filtered_ev(tf.CounterFilter(filter_freq=3))
    emb, train_op = _train_graph(var, ids)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([emb, train_op], {ids: [1, 1, 1, 2, 2, 3, 1002, 1002]})
        return saver.save(sess, str(tmp_path / "model"))


def test_filtered_ids_are_saved_unless_disabled(tmp_path, monkeypatch):
    path = _counter_filter_checkpoint(tmp_path, monkeypatch, "True")
    names = dict(tf.train.list_variables(path))
    np.testing.assert_array_equal(tf.train.load_variable(path, "ev-keys"), [1])
    keys = tf.train.load_variable(path, "ev-keys_filtered")
    freqs = tf.train.load_variable(path, "ev-freqs_filtered")
    assert dict(zip(keys.tolist(), freqs.tolist(), strict=True)) == {2: 2, 3: 1, 1002: 2}
    # Grouped by key mod 1000: ids 2 and 1002 first, then 3.
    assert sorted(keys[:2].tolist()) == [2, 1002] and keys[2] == 3
    offsets = tf.train.load_variable(path, "ev-partition_filter_offset")
    assert offsets.shape == (1001,)
    assert (offsets[2], offsets[3], offsets[4], offsets[-1]) == (0, 2, 3, 3)
    assert "ev-versions_filtered" in names

    tf.reset_default_graph()
    path = _counter_filter_checkpoint(tmp_path / "off", monkeypatch, "False")
    names = dict(tf.train.list_variables(path))
    assert not [n for n in names if "filtered" in n or "filter_offset" in n]


@pytest.mark.parametrize("restore_shards", [None, 2])
def test_restore_rejudges_filtered_ids_against_new_threshold(tmp_path, monkeypatch,
                                                              restore_shards):
    path = _counter_filter_checkpoint(tmp_path, monkeypatch, "True")
    tf.reset_default_graph()
    partitioner = tf.fixed_size_partitioner(restore_shards) if restore_shards else None
    # Threshold 2 now: ids 2 and 1002 (2 sightings) are admitted on restore, id
    # 3 (1) keeps waiting, and id 1 stays admitted although 3 > 2 anyway.
    var = _filtered_ev(tf.CounterFilter(filter_freq=2), partitioner=partitioner)
    saver = tf.train.Saver()
    with tf.Session() as sess:
        saver.restore(sess, path)
        shards = list(var) if restore_shards else [var]
        keys = sorted(k for s in shards for k in sess.run(s.export())[0])
        assert keys == [1, 2, 1002]
        freq = sess.run([s.get_frequency(tf.constant([1, 2, 3, 1002], tf.int64))
                         for s in shards])
        np.testing.assert_array_equal(np.max(freq, axis=0), [3, 2, 1, 2])


def test_admitted_ids_stay_admitted_with_higher_threshold(tmp_path, monkeypatch):
    path = _counter_filter_checkpoint(tmp_path, monkeypatch, "True")
    tf.reset_default_graph()
    var = _filtered_ev(tf.CounterFilter(filter_freq=100))
    saver = tf.train.Saver()
    with tf.Session() as sess:
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(var.export())[0], [1])
        np.testing.assert_array_equal(sess.run(var.stats()), [4, 1, 3, 0])


def test_checkpoint_without_frequencies_restores(tmp_path):
    """A checkpoint with only keys and values (e.g. stripped by other tools)."""
    keys = np.array([4, 9], np.int64)
    values = np.array([[1, 2], [3, 4]], np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        sess.run(tf.raw_ops.SaveV2(
            prefix=str(tmp_path / "bare"), tensor_names=["ev-keys", "ev-values"],
            shape_and_slices=["", ""], tensors=[keys, values]))
    var = _filtered_ev(tf.CounterFilter(filter_freq=3))
    saver = tf.train.Saver()
    with tf.Session() as sess:
        saver.restore(sess, str(tmp_path / "bare"))
        got_keys, got_values, _, _ = sess.run(var.export())
        np.testing.assert_array_equal(got_keys, keys)
        np.testing.assert_array_equal(got_values, values)


@pytest.mark.parametrize("make, field", [
    (lambda: tf.CounterFilter(filter_freq=-1), "filter_freq"),
    (lambda: tf.CounterFilter(filter_freq=1.5), "filter_freq"),
    (lambda: tf.CBFFilter(filter_freq=-2), "filter_freq"),
    (lambda: tf.CBFFilter(filter_freq=3, max_element_size=0,
                          false_positive_probability=0.01), "max_element_size"),
    (lambda: tf.CBFFilter(filter_freq=3, max_element_size=100,
                          false_positive_probability=1.5), "false_positive_probability"),
    (lambda: tf.CBFFilter(filter_freq=3, max_element_size=100,
                          false_positive_probability=0.0), "false_positive_probability"),
    (lambda: tf.CBFFilter(filter_freq=3, max_element_size=100,
                          false_positive_probability=0.01, counter_type=tf.float32),
     "counter_type"),
    (lambda: tf.CBFFilter(filter_freq=300, max_element_size=100,
                          false_positive_probability=0.01, counter_type=tf.uint8),
     "filter_freq"),
    (lambda: tf.GlobalStepEvict(steps_to_live=-1), "steps_to_live"),
    (lambda: tf.L2WeightEvict(l2_weight_threshold=-0.5), "l2_weight_threshold"),
    (lambda: tf.EmbeddingVariableOption(filter_option=3), "filter_option"),
    (lambda: tf.EmbeddingVariableOption(evict_option="steps"), "evict_option"),
])
def test_invalid_options_raise_value_error_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


@pytest.mark.parametrize("attrs", [
    dict(bloom_hashes=0, bloom_counter_bits=8),
    dict(bloom_hashes=3, bloom_counter_bits=12),
    dict(bloom_hashes=3, bloom_counter_bits=8, filter_freq=256),
])
def test_init_op_rejects_inconsistent_bloom_attrs(attrs):
    from deeprec._native import ops as kv_ops
    handle = kv_ops.kv_var_handle_op(shared_name="raw", Tkeys=tf.int64,
                                     dtype=tf.float32, shape=[DIM])
    init = kv_ops.initialize_kv_variable_op(
        handle, handle, tf.ones([4, DIM]), Tkeys=tf.int64,
        filter_freq=attrs.pop("filter_freq", 3), bloom_counters=100, **attrs)
    with tf.Session() as sess, pytest.raises(
            tf.errors.InvalidArgumentError,
            match="InitializeKvVariableOp: .*bloom_counter_bits="):
        sess.run(init)


def test_cbf_sizes_follow_the_false_positive_formula():
    f = tf.CBFFilter(filter_freq=2, max_element_size=1000,
                     false_positive_probability=0.01, counter_type=tf.int64)
    # m = -n ln p / ln^2 2 = 9586 counters; k = m/n ln 2 = 6.64 -> 7 hashes.
    assert f.num_counter == 9586 and f.num_hash_func == 7 and f.counter_bits == 64


def test_strip_tool_on_a_real_filtered_checkpoint(tmp_path, monkeypatch):
    import importlib.util
    import pathlib

    path = _counter_filter_checkpoint(tmp_path, monkeypatch, "True")
    tool_path = pathlib.Path(__file__).parent.parent / "tools" / "remove_filtered_features.py"
    spec = importlib.util.spec_from_file_location("remove_filtered_features", tool_path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    stripped = str(tmp_path / "serve" / "model")
    assert tool.main(["--input_checkpoint", path, "--output_checkpoint", stripped]) == 0
    names = dict(tf.train.list_variables(stripped))
    assert "ev-keys_filtered" not in names and "ev-partition_filter_offset" not in names
    for name in ("ev-keys", "ev-values", "ev-freqs", "ev-versions"):
        np.testing.assert_array_equal(tf.train.load_variable(stripped, name),
                                      tf.train.load_variable(path, name))
    tf.reset_default_graph()
    var = _filtered_ev(tf.CounterFilter(filter_freq=3))
    with tf.Session() as sess:
        tf.train.Saver().restore(sess, stripped)
        np.testing.assert_array_equal(sess.run(var.stats()), [1, 1, 0, 0])
