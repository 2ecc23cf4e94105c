"""Feature columns backed by EmbeddingVariables, against stock columns over dense tables.

A `categorical_column_with_embedding` whose EV rows start from the same
values as a stock `categorical_column_with_identity` table must give the
same outputs and the same training trajectory.
"""

import numpy as np
import pytest

import deeprec as tf
from deeprec.contrib.layers.python.layers import feature_column as contrib_fc
from deeprec.contrib.layers.python.layers import feature_column_ops

BUCKETS, DIM = 8, 3
TABLE = np.random.RandomState(3).uniform(-1, 1, (BUCKETS, DIM)).astype(np.float32)
# Rows with several ids, a repeated id and an empty row.
SPARSE = dict(indices=[[0, 0], [0, 1], [1, 0], [3, 0], [3, 1], [3, 2]],
              values=[1, 4, 4, 7, 0, 4], dense_shape=[4, 3])
WEIGHTS = [0.5, 2.0, 1.0, 1.5, -1.0, 3.0]


def _ids(dtype=tf.int64):
    return tf.SparseTensor(SPARSE["indices"], tf.constant(SPARSE["values"], dtype),
                           SPARSE["dense_shape"])


def _ev_option():
    return tf.EmbeddingVariableOption(init_option=tf.InitializerOption(
        initializer=tf.constant_initializer(TABLE), default_value_dim=BUCKETS))


def _ev_column(key="f", **kwargs):
    return tf.feature_column.categorical_column_with_embedding(
        key, dtype=tf.int64, ev_option=_ev_option(), **kwargs)


def _stock_column(key="f"):
    return tf.feature_column.categorical_column_with_identity(key, BUCKETS)


def _train(build, steps=3, lr=0.5):
    """Trains `build()` (a [batch, n] output) on sum(output * c); returns the outputs."""
    out = build()
    coef = tf.constant(np.random.RandomState(5).normal(size=out.shape.as_list()), tf.float32)
    train_op = tf.train.GradientDescentOptimizer(lr).minimize(tf.reduce_sum(out * coef))
    results = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(steps):
            results.append(sess.run(out))
            sess.run(train_op)
        results.append(sess.run(out))
    return results


def _same_trajectory(build_ev, build_stock):
    with tf.Graph().as_default():
        ev = _train(build_ev)
    with tf.Graph().as_default():
        stock = _train(build_stock)
    np.testing.assert_allclose(ev, stock, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("ev, fused", [(True, False), (True, True), (False, True)])
def test_embedding_column_matches_stock_identity_column(combiner, ev, fused):
    def build(column, do_fusion):
        emb = tf.feature_column.embedding_column(
            column, DIM, combiner=combiner, initializer=tf.constant_initializer(TABLE),
            do_fusion=do_fusion)
        return lambda: tf.feature_column.input_layer({"f": _ids()}, [emb])
    _same_trajectory(build(_ev_column() if ev else _stock_column(), fused),
                     build(_stock_column(), False))


def test_do_fusion_builds_the_fused_ops():
    for do_fusion in (False, True):
        with tf.Graph().as_default() as graph:
            emb = tf.feature_column.embedding_column(_ev_column(), DIM, do_fusion=do_fusion)
            tf.feature_column.input_layer({"f": _ids()}, [emb])
            types = {op.type for op in graph.get_operations()}
        assert ("FusedEmbeddingSparsePostLookUp" in types) == do_fusion


def test_embedding_column_creates_an_embedding_variable():
    emb = tf.feature_column.embedding_column(_ev_column(partition_num=2), DIM)
    tf.feature_column.input_layer({"f": _ids()}, [emb])
    table = tf.global_variables()
    assert [v.op.name for v in table] == ["input_layer/f_embedding/embedding_weights/part_0",
                                          "input_layer/f_embedding/embedding_weights/part_1"]
    assert all(isinstance(v, tf.EmbeddingVariable) for v in table)


def test_weighted_column_matches_stock():
    def build(column):
        weighted = tf.feature_column.weighted_categorical_column(column, "w")
        emb = tf.feature_column.embedding_column(weighted, DIM, combiner="sum",
                                                 initializer=tf.constant_initializer(TABLE))

        def inner():
            weights = tf.SparseTensor(SPARSE["indices"], WEIGHTS, SPARSE["dense_shape"])
            return tf.feature_column.input_layer({"f": _ids(), "w": weights}, [emb])
        return inner
    _same_trajectory(build(_ev_column()), build(_stock_column()))


@pytest.mark.parametrize("do_fusion", [False, True])
def test_shared_embedding_columns_share_one_embedding_variable(do_fusion):
    def build(columns, fused=False):
        def inner():
            shared = tf.feature_column.shared_embedding_columns(
                columns, DIM, initializer=tf.constant_initializer(TABLE), do_fusion=fused)
            return tf.feature_column.input_layer({"a": _ids(), "b": _ids()}, shared)
        return inner
    _same_trajectory(build([_ev_column("a"), _ev_column("b")], do_fusion),
                     build([_stock_column("a"), _stock_column("b")]))
    evs = [v for v in tf.global_variables() if isinstance(v, tf.EmbeddingVariable)]
    assert len(evs) == 0  # the graphs above are gone; a fresh one builds one EV:
    shared = tf.feature_column.shared_embedding_columns([_ev_column("a"), _ev_column("b")], DIM)
    tf.feature_column.input_layer({"a": _ids(), "b": _ids()}, shared)
    assert [v.op.name for v in tf.global_variables()] == [
        "input_layer/a_b_shared_embedding/embedding_weights"]


def test_string_column_ids_are_64_bit_fingerprints():
    column = tf.feature_column.categorical_column_with_embedding("s", dtype=tf.string)
    emb = tf.feature_column.embedding_column(column, DIM)
    words = tf.SparseTensor([[0, 0], [1, 0], [1, 1]], ["apple", "pear", "apple"], [2, 2])
    out = tf.feature_column.input_layer({"s": words}, [emb])
    (table,) = tf.global_variables()
    expected_ids = tf.strings.to_hash_bucket_fast(["apple", "pear"], (1 << 63) - 1)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(out)
        keys, expected = sess.run([table.export()[0], expected_ids])
    assert sorted(keys.tolist()) == sorted(expected.tolist())


def test_linear_model_matches_stock():
    def build(column):
        return lambda: tf.feature_column.linear_model({"f": _ids()}, [column], units=2)
    _same_trajectory(build(_ev_column()), build(_stock_column()))
    tf.feature_column.linear_model({"f": _ids()}, [_ev_column()], units=2)
    weights = tf.global_variables()[0]
    assert isinstance(weights, tf.EmbeddingVariable)
    assert weights.op.name == "linear_model/f/weights" and weights.embedding_dim == 2
    # EV weights are looked up by the fused kernels (the trajectory above is
    # the check that they sum as TensorFlow's lookup does).
    types = {op.type for op in tf.get_default_graph().get_operations()}
    assert "FusedEmbeddingSparsePreLookUp" in types and "SparseSegmentSum" not in types


def test_sequence_input_layer_matches_stock_sequence_column():
    def build(column):
        emb = tf.feature_column.embedding_column(column, DIM,
                                                 initializer=tf.constant_initializer(TABLE))

        def inner():
            out, length = tf.contrib.feature_column.sequence_input_layer({"f": _ids()}, [emb])
            return tf.concat([tf.reshape(out, [4, -1]),
                              tf.cast(tf.reshape(length, [4, 1]), tf.float32)], 1)
        return inner
    _same_trajectory(
        build(tf.feature_column.sequence_categorical_column_with_embedding(
            "f", dtype=tf.int64, ev_option=_ev_option())),
        build(tf.feature_column.sequence_categorical_column_with_identity("f", BUCKETS)))


def test_contrib_input_from_feature_columns_matches_stock():
    def ev():
        column = contrib_fc.sparse_column_with_embedding("f", dtype=tf.int64,
                                                         ev_option=_ev_option())
        emb = contrib_fc.embedding_column(column, DIM, initializer=tf.constant_initializer(TABLE))
        return feature_column_ops.input_from_feature_columns({"f": _ids()}, [emb])

    def stock():
        emb = tf.feature_column.embedding_column(_stock_column(), DIM,
                                                 initializer=tf.constant_initializer(TABLE))
        return tf.feature_column.input_layer({"f": _ids()}, [emb])
    _same_trajectory(ev, stock)


def test_contrib_steps_to_live_becomes_global_step_eviction():
    column = contrib_fc.sparse_column_with_embedding("f", dtype=tf.int64, steps_to_live=5)
    assert column.ev_option.evict_option.steps_to_live == 5


def test_columns_checkpoint_round_trip(tmp_path):
    def build():
        emb = tf.feature_column.embedding_column(_ev_column(), DIM)
        return tf.feature_column.input_layer({"f": _ids()}, [emb])
    with tf.Graph().as_default():
        out = build()
        train_op = tf.train.AdagradOptimizer(0.3).minimize(tf.reduce_sum(out * out))
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train_op)
            trained = sess.run(out)
            saver.save(sess, str(tmp_path / "model"))
    with tf.Graph().as_default():
        out = build()
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, str(tmp_path / "model"))
            np.testing.assert_array_equal(sess.run(out), trained)


def test_estimator_trains_evaluates_and_exports(tmp_path):
    column = tf.feature_column.categorical_column_with_embedding("user", dtype=tf.int64)
    columns = [tf.feature_column.embedding_column(column, 4)]

    def model_fn(features, labels, mode):
        logits = tf.layers.dense(tf.feature_column.input_layer(features, columns), 1)
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tf.estimator.EstimatorSpec(mode, predictions={"logits": logits})
        loss = tf.losses.sigmoid_cross_entropy(labels, logits)
        train_op = tf.train.AdagradOptimizer(0.5).minimize(
            loss, global_step=tf.train.get_global_step())
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    def input_fn():
        users = tf.data.Dataset.range(40).map(lambda i: i % 5)
        return users.map(lambda u: ({"user": tf.SparseTensor([[0]], [u], [1])},
                                    tf.cast(tf.reshape(u % 2, [1]), tf.float32))).batch(4)

    estimator = tf.estimator.Estimator(model_fn, model_dir=str(tmp_path / "model"))
    estimator.train(input_fn, steps=10)
    loss = estimator.evaluate(input_fn, steps=5)["loss"]
    assert 0 < loss < 0.69  # learnt something beyond a constant 0.5
    spec = {"user": tf.io.VarLenFeature(tf.int64)}
    export_dir = estimator.export_saved_model(
        str(tmp_path / "export"),
        tf.estimator.export.build_parsing_serving_input_receiver_fn(spec))
    predicted = [p["logits"][0] for p in estimator.predict(
        lambda: input_fn().take(2), yield_single_examples=True)][:5]
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "user": tf.train.Feature(int64_list=tf.train.Int64List(value=[u]))}))
        .SerializeToString() for u in range(5)]
    # The exported model serves the trained EV rows (restored by its own Saver).
    with tf.Graph().as_default(), tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        served = sess.run(signature.outputs["logits"].name,
                          {signature.inputs["examples"].name: examples})
    np.testing.assert_allclose(served.ravel(), predicted, rtol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: tf.feature_column.categorical_column_with_embedding("f", dtype=tf.float32),
     "dtype"),
    (lambda: tf.feature_column.categorical_column_with_embedding("f", partition_num=0),
     "partition_num"),
    (lambda: tf.feature_column.categorical_column_with_embedding("f", ev_option="opt"),
     "ev_option"),
    (lambda: tf.feature_column.embedding_column(_ev_column(), DIM, ckpt_to_load_from="/x",
                                                tensor_name_in_ckpt="t"),
     "ckpt_to_load_from"),
    (lambda: tf.feature_column.shared_embedding_columns([_ev_column("a"), _stock_column("b")],
                                                        DIM), "same type|all or none"),
    (lambda: contrib_fc.sparse_column_with_embedding("f", init_data_source="x"),
     "init_data_source"),
])
def test_bad_column_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_string_column_rejects_integer_input():
    column = tf.feature_column.categorical_column_with_embedding("s", dtype=tf.string)
    emb = tf.feature_column.embedding_column(column, DIM)
    with pytest.raises(ValueError, match="needs string values"):
        tf.feature_column.input_layer({"s": _ids()}, [emb])
