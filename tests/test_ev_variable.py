"""EmbeddingVariable creation, scoping, initialization, statistics and errors.

Expected values come from hand-written formulas or numpy, never from the
code under test: the guide's Adagrad demo (user guide §3.1.3) is checked
against the Adagrad update written out by hand, initial rows against
`floormod(key, default_value_dim)` of the initializer's matrix.
"""

import numpy as np
import pytest

import deeprec as tf

DIM = 3


def _ids(values, dtype=None):
    return tf.constant(np.asarray(values), dtype or tf.int64)


def _export(sess, ev):
    """{key: (value row, version, freq)} of one EV shard."""
    keys, values, versions, freqs = sess.run(ev.export())
    return {int(k): (v, int(ver), int(f))
            for k, v, ver, f in zip(keys, values, versions, freqs, strict=True)}


# --- the guide's get_embedding_variable demo (§3.1.3) --------------------------

def test_guide_demo_adagrad_values_and_shard_counts():
    var = tf.get_embedding_variable(
        "var_0", embedding_dim=3, initializer=tf.ones_initializer(tf.float32),
        partitioner=tf.fixed_size_partitioner(num_shards=4))
    assert isinstance(var, tf.PartitionedEmbeddingVariable)
    assert [v.op.name for v in var] == [f"var_0/part_{i}" for i in range(4)]
    shape = [v.total_count() for v in var]
    emb = tf.nn.embedding_lookup(var, tf.cast([0, 1, 2, 5, 6, 7], tf.int64))
    fun = tf.multiply(emb, 2.0, name="multiply")
    loss = tf.reduce_sum(fun, name="reduce_sum")
    opt = tf.train.AdagradOptimizer(0.1)
    g_v = opt.compute_gradients(loss)
    train_op = opt.apply_gradients(g_v)
    init = tf.global_variables_initializer()

    # Adagrad by hand: d loss / d emb = 2 for every element (each id occurs
    # once), accumulator starts at 0.1 (TF1's default initial value).
    lr, grad = 0.1, 2.0
    value, accum = 1.0, 0.1
    expected = []
    for _ in range(3):
        expected.append(value)
        accum += grad * grad
        value -= lr * grad / np.sqrt(accum)

    sess_config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    with tf.Session(config=sess_config) as sess:
        sess.run([init])
        for step in range(3):
            # As in the guide, one run fetches emb, the update and the loss.
            # The read precedes the update: compute_gradients gates Mul's two
            # input gradients together, and d/d(2.0) reads emb.
            got_emb, _, got_loss = sess.run([emb, train_op, loss])
            np.testing.assert_allclose(got_emb, np.full((6, 3), expected[step]),
                                       rtol=0, atol=1e-6)
            np.testing.assert_allclose(got_loss, 36 * expected[step], rtol=1e-6)
        np.testing.assert_allclose(sess.run(emb), np.full((6, 3), value),
                                   rtol=0, atol=1e-6)
        counts = sess.run(shape)
        np.testing.assert_array_equal(counts, [[1, 3], [2, 3], [2, 3], [1, 3]])
        np.testing.assert_array_equal(sess.run(var.total_count()), [6, 3])
        # key k lives in shard (k mod 1000) mod 4.
        exported = [_export(sess, v) for v in var]
        assert [sorted(e) for e in exported] == [[0], [1, 5], [2, 6], [7]]
        # One lookup per step (plus the final read); no global step: no versions.
        assert {(ver, freq) for e in exported for _, ver, freq in e.values()} == {(-1, 4)}
        for shard in var:
            slot = opt.get_slot(shard, "accumulator")
            assert slot is not None and slot.primary is shard
            _, slot_values, _, _ = sess.run(slot.export())
            np.testing.assert_allclose(slot_values, np.full_like(slot_values, accum),
                                       rtol=1e-6)


# --- scoping like tf.get_variable -------------------------------------------

def test_variable_scope_prefixes_name():
    with tf.variable_scope("a"), tf.variable_scope("b"):
        ev = tf.get_embedding_variable("emb", DIM)
    assert ev.op.name == "a/b/emb"
    assert ev.name == "a/b/emb:0"
    assert ev.op.type == "KvVarHandleOp"
    with tf.variable_scope("a"):
        pev = tf.get_embedding_variable("pemb", DIM,
                                        partitioner=tf.fixed_size_partitioner(2))
    assert pev.name == "a/pemb"
    assert [p.op.name for p in pev] == ["a/pemb/part_0", "a/pemb/part_1"]


def test_reuse_true_returns_same_object():
    with tf.variable_scope("s"):
        ev = tf.get_embedding_variable("emb", DIM)
        pev = tf.get_embedding_variable("pemb", DIM,
                                        partitioner=tf.fixed_size_partitioner(3))
    with tf.variable_scope("s", reuse=True):
        assert tf.get_embedding_variable("emb", DIM) is ev
        assert tf.get_embedding_variable("pemb", DIM) is pev
    with tf.variable_scope("s") as scope:
        scope.reuse_variables()
        assert tf.get_embedding_variable("emb", DIM) is ev
    # Nothing new was created by the reuses.
    assert len(tf.global_variables()) == 4


@pytest.mark.parametrize("reuse", [False, None])
def test_existing_name_without_reuse_raises(reuse):
    ev = tf.get_embedding_variable("emb", DIM)
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse), \
            pytest.raises(ValueError, match="emb already exists"):
        tf.get_embedding_variable("emb", DIM)
    assert tf.global_variables() == [ev]


def test_name_shared_with_dense_variable_is_rejected_both_ways():
    tf.get_variable("dense", [2, DIM])
    with pytest.raises(ValueError, match="dense already exists"):
        tf.get_embedding_variable("dense", DIM)
    with tf.variable_scope("", reuse=True), \
            pytest.raises(ValueError, match="not an EmbeddingVariable"):
        tf.get_embedding_variable("dense", DIM)
    tf.get_embedding_variable("emb", DIM)
    with pytest.raises(ValueError, match="emb already exists"):
        tf.get_variable("emb", [2, DIM])


def test_reuse_true_on_missing_name_raises():
    with tf.variable_scope("s", reuse=True), \
            pytest.raises(ValueError, match="s/missing does not exist"):
        tf.get_embedding_variable("missing", DIM)
    assert tf.global_variables() == []


def test_reuse_with_different_embedding_dim_raises():
    tf.get_embedding_variable("emb", DIM)
    with tf.variable_scope("", reuse=True), pytest.raises(ValueError, match="embedding_dim 5"):
        tf.get_embedding_variable("emb", 5)


def test_auto_reuse_creates_then_reuses():
    with tf.variable_scope("s", reuse=tf.AUTO_REUSE):
        first = tf.get_embedding_variable("emb", DIM)
        second = tf.get_embedding_variable("emb", DIM)
        other = tf.get_embedding_variable("other", DIM)
    with tf.variable_scope("s", reuse=tf.AUTO_REUSE):
        third = tf.get_embedding_variable("emb", DIM)
    assert first is second is third
    assert other is not first
    assert [v.op.name for v in tf.global_variables()] == ["s/emb", "s/other"]


def _suffix_getter(getter, name, *args, **kwargs):
    # The guide's example custom getter.
    return getter(name + "_suffix", *args, **kwargs)


def test_custom_getter_argument_is_applied():
    ev = tf.get_embedding_variable("emb", DIM, custom_getter=_suffix_getter)
    assert ev.op.name == "emb_suffix"
    # get_variable's keyword form: the getter is passed as `getter`.
    seen = {}

    def recording_getter(getter, name, *args, **kwargs):
        seen.update(kwargs, name=name)
        kwargs["trainable"] = False
        return getter(name, *args, **kwargs)

    ev2 = tf.get_embedding_variable("emb2", 5, custom_getter=recording_getter)
    assert seen["name"] == "emb2" and seen["embedding_dim"] == 5
    assert seen["trainable"] is True
    assert ev2 in tf.global_variables() and ev2 not in tf.trainable_variables()


def test_custom_getter_argument_replaces_the_scope_getter_like_get_variable():
    def scope_getter(getter, name, *args, **kwargs):
        return getter(name + "_scoped", *args, **kwargs)

    with tf.variable_scope("s", custom_getter=scope_getter):
        only_scope = tf.get_embedding_variable("a", DIM)
        both = tf.get_embedding_variable("b", DIM, custom_getter=_suffix_getter)
        pev = tf.get_embedding_variable("c", DIM, custom_getter=_suffix_getter,
                                        partitioner=tf.fixed_size_partitioner(2))
        dense = tf.get_variable("d", [1], custom_getter=_suffix_getter)
    assert only_scope.op.name == "s/a_scoped"
    # Stock tf.get_variable uses the argument instead of the scope's getter.
    assert dense.op.name == "s/d_suffix"
    assert both.op.name == "s/b_suffix"
    assert [p.op.name for p in pev] == ["s/c_suffix/part_0", "s/c_suffix/part_1"]


def test_partitioner_from_scope_and_argument_override():
    with tf.variable_scope("s", partitioner=tf.fixed_size_partitioner(3)):
        from_scope = tf.get_embedding_variable("a", DIM)
        overridden = tf.get_embedding_variable(
            "b", DIM, partitioner=tf.fixed_size_partitioner(2))
    assert isinstance(from_scope, tf.PartitionedEmbeddingVariable)
    assert len(from_scope) == 3 and len(overridden) == 2
    assert [p.op.name for p in from_scope] == [f"s/a/part_{i}" for i in range(3)]
    plain = tf.get_embedding_variable("c", DIM)
    assert isinstance(plain, tf.EmbeddingVariable)


def test_partitioner_over_second_axis_is_rejected():
    def bad(shape, dtype):
        del dtype
        return [1, shape[1]]

    with pytest.raises(ValueError, match="first axis"):
        tf.get_embedding_variable("emb", DIM, partitioner=bad)


# --- collections and initialization -------------------------------------------

def test_collections_follow_trainable():
    ev = tf.get_embedding_variable("t", DIM)
    frozen = tf.get_embedding_variable("f", DIM, trainable=False)
    pev = tf.get_embedding_variable("p", DIM, partitioner=tf.fixed_size_partitioner(2))
    custom = tf.get_embedding_variable("c", DIM, collections=["mine"])
    custom_frozen = tf.get_embedding_variable("cf", DIM, collections=["mine"],
                                              trainable=False)
    assert tf.global_variables() == [ev, frozen, pev[0], pev[1]]
    assert tf.trainable_variables() == [ev, pev[0], pev[1], custom]
    assert tf.get_collection("mine") == [custom, custom_frozen]
    assert ev.trainable and not frozen.trainable and not custom_frozen.trainable


def test_initializers_and_report_uninitialized_variables():
    ev = tf.get_embedding_variable("ev", DIM)
    with tf.variable_scope("s"):
        pev = tf.get_embedding_variable("p", DIM, partitioner=tf.fixed_size_partitioner(2))
    dense = tf.get_variable("dense", [2])
    report = tf.report_uninitialized_variables()
    with tf.Session() as sess:
        assert list(sess.run(report)) == [b"ev", b"s/p/part_0", b"s/p/part_1", b"dense"]
        assert not sess.run(ev.is_initialized())
        sess.run(tf.variables_initializer([ev]))
        assert sess.run(ev.is_initialized())
        assert not sess.run(pev[0].is_initialized())
        assert list(sess.run(report)) == [b"s/p/part_0", b"s/p/part_1", b"dense"]
        assert sess.run(tf.is_variable_initialized(ev))
        sess.run(tf.global_variables_initializer())
        assert list(sess.run(report)) == []
        assert all(sess.run([p.is_initialized() for p in pev]))
        assert sess.run(dense).shape == (2,)
        # An initialized table starts empty.
        np.testing.assert_array_equal(sess.run(ev.total_count()), [0, DIM])


def test_reinitializing_clears_the_table():
    ev = tf.get_embedding_variable("ev", DIM)
    emb = tf.nn.embedding_lookup(ev, _ids([1, 2]))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(emb)
        np.testing.assert_array_equal(sess.run(ev.total_count()), [2, DIM])
        sess.run(ev.initializer)
        np.testing.assert_array_equal(sess.run(ev.total_count()), [0, DIM])


# --- EV initializer (§3.1.4) --------------------------------------------------

ROWS_D = 7
# Keys around 0, negative, huge, and the int64 extremes.
EDGE_KEYS = [0, 1, 6, 7, 13, 14, -1, -6, -7, -8, 10**12 + 3, -(10**15) - 1,
             2**63 - 1, -(2**63)]


def _matrix(rows, dim):
    return (np.arange(rows * dim, dtype=np.float32).reshape(rows, dim) * 0.25 - 3.0)


def _init_option(rows):
    return tf.EmbeddingVariableOption(init_option=tf.InitializerOption(default_value_dim=rows))


def test_new_keys_take_row_floormod_of_explicit_matrix():
    matrix = _matrix(ROWS_D, DIM)
    ev = tf.get_embedding_variable("ev", DIM, initializer=matrix,
                                   ev_option=_init_option(ROWS_D))
    emb = tf.nn.embedding_lookup(ev, _ids(EDGE_KEYS))
    expected = matrix[[k % ROWS_D for k in EDGE_KEYS]]  # Python % is floormod.
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb), expected)
        # Second read: the stored rows, unchanged.
        np.testing.assert_array_equal(sess.run(emb), expected)
        stored = _export(sess, ev)
    assert sorted(stored) == sorted(EDGE_KEYS)
    for k in EDGE_KEYS:
        np.testing.assert_array_equal(stored[k][0], matrix[k % ROWS_D])


def test_initializer_from_init_option_and_argument_precedence():
    matrix = _matrix(ROWS_D, DIM)
    option = tf.EmbeddingVariableOption(init_option=tf.InitializerOption(
        initializer=matrix, default_value_dim=ROWS_D))
    from_option = tf.get_embedding_variable("a", DIM, ev_option=option)
    overridden = tf.get_embedding_variable("b", DIM, ev_option=option,
                                           initializer=tf.zeros_initializer())
    ids = _ids([3, -2, 100])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(
            sess.run(tf.nn.embedding_lookup(from_option, ids)), matrix[[3, 5, 2]])
        np.testing.assert_array_equal(
            sess.run(tf.nn.embedding_lookup(overridden, ids)), np.zeros((3, DIM)))


def test_callable_initializer_gets_default_matrix_shape():
    calls = []

    def init(shape, dtype=None, partition_info=None):
        del partition_info
        calls.append((list(shape), dtype))
        rows = tf.cast(tf.range(shape[0]), dtype)
        cols = tf.cast(tf.range(shape[1]), dtype)
        return rows[:, None] * 10.0 + cols[None, :]

    ev = tf.get_embedding_variable("ev", DIM, initializer=init,
                                   ev_option=_init_option(ROWS_D))
    assert calls == [([ROWS_D, DIM], tf.float32)]
    emb = tf.nn.embedding_lookup(ev, _ids(EDGE_KEYS))
    reference = np.arange(ROWS_D)[:, None] * 10.0 + np.arange(DIM)[None, :]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb),
                                      reference[[k % ROWS_D for k in EDGE_KEYS]])


@pytest.mark.parametrize("initializer,value", [
    (tf.ones_initializer, 1.0),            # an initializer class
    (tf.constant_initializer(-2.5), -2.5),
    (0.75, 0.75),                          # a broadcastable value
])
def test_other_initializer_forms(initializer, value):
    ev = tf.get_embedding_variable("ev", DIM, initializer=initializer)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(
            sess.run(tf.nn.embedding_lookup(ev, _ids([5, -5, 2**40]))),
            np.full((3, DIM), value, np.float32))


def test_initializer_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"default-value matrix of shape \[7, 3\]"):
        tf.get_embedding_variable("ev", DIM, initializer=np.ones([5, 2]),
                                  ev_option=_init_option(ROWS_D))


def _default_rows(seed, dim=8):
    """Rows of keys 0..4095 and 4096..8191 under the default initializer."""
    tf.reset_default_graph()
    tf.set_random_seed(seed)
    ev = tf.get_embedding_variable("ev", dim)
    first = tf.nn.embedding_lookup(ev, tf.range(4096, dtype=tf.int64))
    wrapped = tf.nn.embedding_lookup(ev, tf.range(4096, 8192, dtype=tf.int64))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run([first, wrapped])


def test_default_truncated_normal_is_seeded_and_wraps_at_4096():
    first, wrapped = _default_rows(seed=123)
    again, _ = _default_rows(seed=123)
    other, _ = _default_rows(seed=321)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # default_value_dim defaults to 4096: key k + 4096 reuses key k's row.
    np.testing.assert_array_equal(wrapped, first)
    # Truncated normal, stddev 1: within 2 stddev, centred, std ~0.88.
    assert np.all(np.abs(first) <= 2.0)
    assert abs(first.mean()) < 0.03
    assert 0.84 < first.std() < 0.92
    assert len(np.unique(first)) > 0.99 * first.size


def test_op_seed_of_initializer_is_reproducible():
    def rows():
        tf.reset_default_graph()
        ev = tf.get_embedding_variable(
            "ev", DIM, initializer=tf.truncated_normal_initializer(stddev=0.1, seed=5),
            ev_option=_init_option(64))
        emb = tf.nn.embedding_lookup(ev, tf.range(64, dtype=tf.int64))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return sess.run(emb)

    a, b = rows(), rows()
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a) <= 0.2) and a.std() > 0.05


def test_int32_keys():
    matrix = _matrix(ROWS_D, DIM)
    ev = tf.get_embedding_variable("ev", DIM, key_dtype=tf.int32, initializer=matrix,
                                   ev_option=_init_option(ROWS_D))
    assert ev.key_dtype == tf.int32
    keys = [0, 9, -1, -9, 2**31 - 1, -(2**31), 9]
    ids = tf.constant(keys, tf.int32)
    emb = tf.nn.embedding_lookup(ev, ids)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb), matrix[[k % ROWS_D for k in keys]])
        np.testing.assert_array_equal(sess.run(ev.get_frequency(ids)),
                                      [1, 2, 1, 1, 1, 1, 2])
        keys_out, _, _, _ = sess.run(ev.export())
        assert keys_out.dtype == np.int32
        assert sorted(keys_out.tolist()) == sorted(set(keys))
    with pytest.raises(TypeError, match="key_dtype int32"):
        tf.nn.embedding_lookup(ev, tf.constant([1], tf.int64))


def test_sparse_read_and_rank2_ids():
    matrix = _matrix(ROWS_D, DIM)
    ev = tf.get_embedding_variable("ev", DIM, initializer=matrix,
                                   ev_option=_init_option(ROWS_D))
    ids = [[1, 8], [-1, 3], [3, 3]]
    read = ev.sparse_read(_ids(ids))
    assert read.shape.as_list() == [3, 2, DIM]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(read), matrix[np.mod(ids, ROWS_D)])
        np.testing.assert_array_equal(sess.run(ev.get_frequency(_ids(ids))),
                                      [[1, 1], [1, 3], [3, 3]])


# --- frequency and version ------------------------------------------------------

def test_frequency_counts_every_occurrence_across_runs():
    ev = tf.get_embedding_variable("ev", DIM)
    emb = tf.nn.embedding_lookup(ev, _ids([4, 1, 4, 4, -3]))
    probe = _ids([4, 1, -3, 99])
    freq = ev.get_frequency(probe)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(freq), [0, 0, 0, 0])
        sess.run(emb)
        np.testing.assert_array_equal(sess.run(freq), [3, 1, 1, 0])
        sess.run(emb)
        sess.run(emb)
        np.testing.assert_array_equal(sess.run(freq), [9, 3, 3, 0])
        # Querying statistics inserts nothing.
        np.testing.assert_array_equal(sess.run(ev.total_count()), [3, DIM])


def test_frequency_and_version_under_training():
    ev = tf.get_embedding_variable("ev", DIM, initializer=tf.ones_initializer())
    ids = tf.placeholder(tf.int64, [None])
    global_step = tf.train.get_or_create_global_step()
    loss = tf.reduce_sum(tf.nn.embedding_lookup(ev, ids))
    train_op = tf.train.GradientDescentOptimizer(0.5).minimize(loss,
                                                               global_step=global_step)
    lookup_only = tf.nn.embedding_lookup(ev, _ids([42]))
    probe = _ids([1, 2, 3, 5, 42, 77])
    batches = [[1, 2, 2], [2, 3], [5, 5, 5, 1]]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(ev.get_version(probe)), [-1] * 6)
        for batch in batches:
            sess.run(train_op, {ids: batch})
        sess.run(lookup_only)
        # Versions are the global step the update ran at (before increment).
        np.testing.assert_array_equal(sess.run(ev.get_version(probe)),
                                      [2, 1, 1, 2, -1, -1])
        np.testing.assert_array_equal(sess.run(ev.get_frequency(probe)),
                                      [2, 3, 1, 3, 1, 0])
        stored = _export(sess, ev)
        assert {k: (v[1], v[2]) for k, v in stored.items()} == {
            1: (2, 2), 2: (1, 3), 3: (1, 1), 5: (2, 3), 42: (-1, 1)}
        # SGD with d loss/d row = number of occurrences in the batch.
        for key, occurrences in {1: 2, 2: 3, 3: 1, 5: 3, 42: 0}.items():
            np.testing.assert_allclose(stored[key][0],
                                       np.full(DIM, 1.0 - 0.5 * occurrences), rtol=1e-6)
        sess.run(tf.assign(global_step, 100))
        sess.run(train_op, {ids: [3]})
        np.testing.assert_array_equal(sess.run(ev.get_version(probe)),
                                      [2, 1, 100, 2, -1, -1])


def test_version_untouched_without_global_step():
    ev = tf.get_embedding_variable("ev", DIM)
    # A loss whose gradient needs the looked-up values, so the lookup runs.
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(
        tf.reduce_sum(tf.square(tf.nn.embedding_lookup(ev, _ids([1, 2])))))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op)
        np.testing.assert_array_equal(sess.run(ev.get_version(_ids([1, 2]))), [-1, -1])
        np.testing.assert_array_equal(sess.run(ev.get_frequency(_ids([1, 2]))), [1, 1])


# --- bad input ----------------------------------------------------------------

@pytest.mark.parametrize("method", ["lookup", "sparse_read", "get_frequency",
                                    "get_version", "sparse", "safe"])
@pytest.mark.parametrize("dtype", [tf.int32, tf.float32, tf.string])
def test_wrong_id_dtype_fails_at_graph_construction(method, dtype):
    ev = tf.get_embedding_variable("my/ev", DIM)
    ids = tf.zeros([2], dtype) if dtype != tf.string else tf.constant(["a", "b"])
    sp = tf.SparseTensor([[0, 0], [1, 0]], ids, [2, 1])
    calls = {
        "lookup": lambda: tf.nn.embedding_lookup(ev, ids),
        "sparse_read": lambda: ev.sparse_read(ids),
        "get_frequency": lambda: ev.get_frequency(ids),
        "get_version": lambda: ev.get_version(ids),
        "sparse": lambda: tf.nn.embedding_lookup_sparse(ev, sp, None),
        "safe": lambda: tf.nn.safe_embedding_lookup_sparse(ev, sp),
    }
    ops_before = len(tf.get_default_graph().get_operations())
    with pytest.raises(TypeError, match=f"'my/ev' has key_dtype int64 .* {dtype.name}"):
        calls[method]()
    kv_ops = [op for op in tf.get_default_graph().get_operations()[ops_before:]
              if op.type.startswith("Kv")]
    assert kv_ops == []


def test_wrong_id_dtype_on_partitioned_names_the_variable():
    pev = tf.get_embedding_variable("pev", DIM, partitioner=tf.fixed_size_partitioner(2))
    with pytest.raises(TypeError, match="'pev/part_0' has key_dtype int64"):
        tf.nn.embedding_lookup(pev, tf.constant([1], tf.int32))


def test_python_ids_are_converted_to_key_dtype():
    ev = tf.get_embedding_variable("ev", DIM, key_dtype=tf.int32)
    emb = tf.nn.embedding_lookup(ev, [1, 2])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(emb).shape == (2, DIM)


def test_uninitialized_lookup_fails_and_session_recovers():
    ev = tf.get_embedding_variable("scope_x/ev", DIM, initializer=tf.ones_initializer())
    pev = tf.get_embedding_variable("pev", DIM, partitioner=tf.fixed_size_partitioner(2))
    emb = tf.nn.embedding_lookup(ev, _ids([1, 2]))
    pemb = tf.nn.embedding_lookup(pev, _ids([1, 2]))
    with tf.Session() as sess:
        for fetch in [emb, ev.total_count(), ev.get_frequency(_ids([1])),
                      ev.get_version(_ids([1])), ev.export()[0]]:
            with pytest.raises(tf.errors.FailedPreconditionError,
                               match="EmbeddingVariable 'scope_x/ev' is not initialized"):
                sess.run(fetch)
        with pytest.raises(tf.errors.FailedPreconditionError, match="'pev/part_[01]'"):
            sess.run(pemb)
        # The failed runs left nothing behind: initialize and carry on.
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb), np.ones((2, DIM)))
        assert sess.run(pemb).shape == (2, DIM)
        np.testing.assert_array_equal(sess.run(ev.total_count()), [2, DIM])


@pytest.mark.parametrize("dim", [0, -3, 2.5, True, "4", None])
def test_invalid_embedding_dim(dim):
    with pytest.raises(ValueError, match="'ev': embedding_dim must be a positive int"):
        tf.get_embedding_variable("ev", dim)
    assert tf.global_variables() == []


def test_numpy_int_dims_are_accepted():
    ev = tf.get_embedding_variable(
        "ev", np.int64(4), ev_option=tf.EmbeddingVariableOption(
            init_option=tf.InitializerOption(default_value_dim=np.int32(16))))
    assert ev.embedding_dim == 4 and type(ev.embedding_dim) is int
    emb = tf.nn.embedding_lookup(ev, _ids([1]))
    assert emb.shape.as_list() == [1, 4]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(emb).shape == (1, 4)


@pytest.mark.parametrize("rows", [0, -1, 1.5, True, None])
def test_invalid_default_value_dim(rows):
    with pytest.raises(ValueError, match="default_value_dim must be a positive int"):
        tf.InitializerOption(default_value_dim=rows)


@pytest.mark.parametrize("key_dtype", [tf.string, tf.float32, tf.int16, tf.uint64])
def test_invalid_key_dtype(key_dtype):
    with pytest.raises(ValueError, match=f"'ev': key_dtype must be int64 or int32, got "
                                         f"{key_dtype.name}"):
        tf.get_embedding_variable("ev", DIM, key_dtype=key_dtype)


def test_invalid_value_dtype():
    with pytest.raises(ValueError, match="'ev': value_dtype must be float32, got float64"):
        tf.get_embedding_variable("ev", DIM, value_dtype=tf.float64)


@pytest.mark.parametrize("field", ["ckpt", "storage_option"])
def test_unsupported_ev_options(field):
    with pytest.raises(ValueError, match=f"EmbeddingVariableOption: {field}=.* not supported"):
        tf.EmbeddingVariableOption(**{field: object()})


@pytest.mark.parametrize("field", ["filter_option", "evict_option"])
def test_ev_options_of_the_wrong_type(field):
    with pytest.raises(ValueError, match=f"EmbeddingVariableOption: {field} must be"):
        tf.EmbeddingVariableOption(**{field: object()})


def test_invalid_ev_option_values():
    with pytest.raises(ValueError, match="ht_partition_num must be 1000"):
        tf.EmbeddingVariableOption(ht_partition_num=10)
    with pytest.raises(ValueError, match="init_option must be an InitializerOption"):
        tf.EmbeddingVariableOption(init_option={"default_value_dim": 4})


@pytest.mark.parametrize("field", ["regularizer", "constraint", "steps_to_live",
                                   "init_data_source"])
def test_unsupported_get_embedding_variable_arguments(field):
    with pytest.raises(ValueError, match=f"get_embedding_variable\\('ev'\\): {field} is not "
                                         "supported"):
        tf.get_embedding_variable("ev", DIM, **{field: 1})
    assert tf.global_variables() == []


def test_ev_has_no_dense_value():
    ev = tf.get_embedding_variable("ev", DIM)
    message = "'ev' cannot be converted to a dense tensor; read it with tf.nn.embedding_lookup"
    for convert in [lambda: tf.convert_to_tensor(ev), lambda: tf.identity(ev),
                    lambda: tf.reduce_sum(ev),
                    lambda: tf.matmul(ev, tf.ones([DIM, 1]))]:
        with pytest.raises(TypeError, match=message):
            convert()
    for read in [ev.value, ev.read_value, lambda: ev + 1.0]:
        with pytest.raises(TypeError, match="'ev' has no dense value"):
            read()
    pev = tf.get_embedding_variable("pev", DIM, partitioner=tf.fixed_size_partitioner(2))
    with pytest.raises((TypeError, ValueError)):
        tf.convert_to_tensor(pev)


def test_tf_gather_reads_through_sparse_read():
    # Stock tf.gather calls params.sparse_read(), as for resource variables.
    matrix = _matrix(ROWS_D, DIM)
    ev = tf.get_embedding_variable("ev", DIM, initializer=matrix,
                                   ev_option=_init_option(ROWS_D))
    got = tf.gather(ev, _ids([[2, -3]]))
    assert got.op.type == "KvResourceGather"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(got), matrix[[[2, 4]]])


def test_static_shape_and_repr():
    ev = tf.get_embedding_variable("ev", 5)
    assert ev.shape.as_list() == [5] and ev.embedding_dim == 5
    assert ev.dtype == tf.float32 and ev.key_dtype == tf.int64
    assert tf.nn.embedding_lookup(ev, tf.placeholder(tf.int64, [None, 2])).shape.as_list() \
        == [None, 2, 5]
    assert "EmbeddingVariable 'ev' embedding_dim=5" in repr(ev)
    pev = tf.get_embedding_variable("pev", 5, partitioner=tf.fixed_size_partitioner(2))
    assert pev.embedding_dim == 5 and len(pev) == 2 and pev[1] is list(pev)[1]
