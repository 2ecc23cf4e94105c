"""`categorical_column_with_multihash` + `embedding_column` (user guide §3.5.3) against numpy.

The reference: input value x goes to bucket y = x mod N (N = rows_q * rows_r),
embedded as the combination of quotient row y // rows_r and remainder row
y mod rows_r; each output row combines its ids' embeddings like TensorFlow's
combiners (ids < 0 dropped, empty rows zero).
"""

import numpy as np
import pytest
import tensorflow as stock_tf
from test_multihash_variable import (
    _assign,
    _np_step,
    guide_reference,
    np_compose,
    np_table_grads,
    run_guide_script,
)

import deeprec as tf
from deeprec.feature_column import multihash_column

ROWS = (4, 3)
DIM_FOR = {"add": 3, "mult": 3, "concat": (3, 2)}


def _tables(op, seed=0):
    dims = DIM_FOR[op] if op == "concat" else (DIM_FOR[op],) * 2
    rng = np.random.RandomState(seed)
    return [rng.uniform(-1, 1, (r, d)).astype(np.float32)
            for r, d in zip(ROWS, dims, strict=True)]


def _column(op, key="item", **kwargs):
    col = tf.feature_column.categorical_column_with_multihash(key, dims=ROWS, operation=op)
    return tf.feature_column.embedding_column(col, DIM_FOR[op], **kwargs)


def _mhv_of(scope):
    """The embedding column's (quotient, remainder) tables, created under `scope`."""
    by_name = {v.op.name: v for v in tf.global_variables()}
    return [by_name[f"{scope}embedding_weights/{t}"] for t in ("quotient", "remainder")]


def _load_tables(sess, scope, tables):
    """Loads the column's tables under `scope`, whole or in partitioner shards."""
    for name, value in zip(("quotient", "remainder"), tables, strict=True):
        full_name, loaded = f"{scope}embedding_weights/{name}", 0
        for var in tf.global_variables():
            info = var._get_save_slice_info()
            if (info.full_name if info else var.op.name) == full_name:
                offset, rows = (info.var_offset[0] if info else 0), var.shape.as_list()[0]
                var.load(value[offset:offset + rows], sess)
                loaded += rows
        assert loaded == len(value), full_name


def np_rows(tables, op, rows_of_ids, combiner, weights=None):
    """Per output row: the combiner over its ids' embeddings (rows_of_ids: list of lists)."""
    dim = sum(t.shape[1] for t in tables) if op == "concat" else tables[0].shape[1]
    out = np.zeros((len(rows_of_ids), dim))
    for i, ids in enumerate(rows_of_ids):
        w = np.ones(len(ids)) if weights is None else np.asarray(weights[i], np.float64)
        keep = [j for j, x in enumerate(ids) if x >= 0 and (combiner == "sum" or w[j] > 0)]
        if not keep:
            continue
        emb = np_compose(tables, np.array([ids[j] for j in keep]), op, ROWS)
        total = (w[keep, None] * emb).sum(0)
        if combiner == "mean":
            total /= w[keep].sum()
        elif combiner == "sqrtn":
            total /= np.sqrt((w[keep] ** 2).sum())
        out[i] = total
    return out


def _ragged(rows_of_ids, dtype=np.int64):
    indices = [[i, j] for i, ids in enumerate(rows_of_ids) for j in range(len(ids))]
    values = [x for ids in rows_of_ids for x in ids]
    width = max(len(ids) for ids in rows_of_ids)
    return tf.SparseTensor(np.array(indices, np.int64).reshape(-1, 2),
                           np.array(values, dtype), [len(rows_of_ids), width])


ROWS_OF_IDS = [[0, 5, 11], [], [12, 7], [-3], [3, 3, 100, -1]]


@pytest.mark.parametrize("op", ["add", "mult", "concat"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_input_layer_matches_numpy(op, combiner):
    emb_col = _column(op, combiner=combiner)
    out = tf.feature_column.input_layer({"item": _ragged(ROWS_OF_IDS)}, [emb_col])
    dim = 5 if op == "concat" else 3
    assert out.shape.as_list() == [5, dim]
    assert emb_col.variable_shape.as_list() == [dim] and emb_col.operation == op
    tables = _tables(op)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, tf.MultiHashVariable("m", _mhv_of("input_layer/item_embedding/"), op),
                tables)
        got = sess.run(out)
    # Column buckets wrap ids (-3 -> 9), so negative ids only vanish in the
    # variable's own sparse lookups; here each id is first mapped to a bucket.
    buckets = [[x % 12 for x in ids] for ids in ROWS_OF_IDS]
    np.testing.assert_allclose(got, np_rows(tables, op, buckets, combiner),
                               rtol=1e-6, atol=1e-6)


def test_weighted_column_and_non_safe_lookup():
    col = tf.feature_column.categorical_column_with_multihash("item", dims=ROWS)
    weighted = tf.feature_column.weighted_categorical_column(col, "w")
    safe = tf.feature_column.embedding_column(weighted, (3, 2), combiner="mean")
    plain = tf.feature_column.embedding_column(col, (3, 2), combiner="sqrtn",
                                               use_safe_embedding_lookup=False)
    assert isinstance(safe, multihash_column.MultiHashEmbeddingColumn)
    ids = [[1, 6], [], [2, 8, 9]]
    weights = [[0.5, 2.0], [], [1.0, 0.0, 3.0]]
    features = {"item": _ragged(ids),
                "w": tf.SparseTensor(_ragged(ids).indices,
                                     np.array([w for ws in weights for w in ws], np.float32),
                                     [3, 3])}
    with tf.variable_scope("a"):
        out_safe = tf.feature_column.input_layer(features, [safe])
    with tf.variable_scope("b"):
        out_plain = tf.feature_column.input_layer(features, [plain])
    tables = _tables("concat")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for scope in ("a/input_layer/item_weighted_by_w_embedding/",
                      "b/input_layer/item_embedding/"):
            _assign(sess, tf.MultiHashVariable("m", _mhv_of(scope), "concat"), tables)
        got_safe, got_plain = sess.run([out_safe, out_plain])
    np.testing.assert_allclose(got_safe, np_rows(tables, "concat", ids, "mean", weights),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_plain, np_rows(tables, "concat", ids, "sqrtn"),
                               rtol=1e-6, atol=1e-6)


def test_tables_follow_the_scope_partitioner():
    emb_col = _column("concat", combiner="sum")
    ids = [[0, 5, 11], [7], [2, 2]]
    with tf.variable_scope("p", partitioner=tf.fixed_size_partitioner(2)):
        out = tf.feature_column.input_layer({"item": _ragged(ids)}, [emb_col])
    assert len(tf.global_variables()) == 4
    train = tf.train.GradientDescentOptimizer(0.5).minimize(tf.reduce_sum(out * out))
    tables = _tables("concat")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _load_tables(sess, "p/input_layer/item_embedding/", tables)
        got, _ = sess.run([out, train])
        after = {v.op.name: sess.run(v) for v in tf.global_variables()}
    want = np_rows(tables, "concat", ids, "sum")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    flat = np.array([x for row in ids for x in row])
    row_of = np.array([i for i, row in enumerate(ids) for _ in row])
    grads = np_table_grads(tables, flat, "concat", 2 * want[row_of], ROWS)
    for name, table, grad in zip(("quotient", "remainder"), tables, grads, strict=True):
        prefix = f"p/input_layer/item_embedding/embedding_weights/{name}/part_"
        shards = [after[k] for k in sorted(after) if k.startswith(prefix)]
        np.testing.assert_allclose(np.concatenate(shards), table - 0.5 * grad,
                                   rtol=1e-5, atol=1e-6)


def test_string_values_hash_into_buckets():
    col = tf.feature_column.categorical_column_with_multihash("s", dims=ROWS, dtype=tf.string)
    emb = tf.feature_column.embedding_column(col, 3, combiner="sum")
    words = [["apple", "pear"], ["fig"]]
    values = tf.constant([w for ws in words for w in ws])
    out = tf.feature_column.input_layer(
        {"s": tf.SparseTensor([[0, 0], [0, 1], [1, 0]], values, [2, 2])}, [emb])
    buckets = tf.strings.to_hash_bucket_fast(values, 12)
    tables = _tables("add")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, tf.MultiHashVariable("m", _mhv_of("input_layer/s_embedding/"), "add"),
                tables)
        got, b = sess.run([out, buckets])
    assert col.num_buckets == 12 and len(set(b.tolist())) == 3
    np.testing.assert_allclose(got, np_rows(tables, "add", [b[:2], b[2:]], "sum"), rtol=1e-6)


def test_dense_integer_input_drops_minus_one():
    emb = _column("mult", combiner="sum")
    out = tf.feature_column.input_layer(
        {"item": tf.constant([[3, -1], [-1, -1], [13, 25]], tf.int64)}, [emb])
    tables = _tables("mult")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, tf.MultiHashVariable("m", _mhv_of("input_layer/item_embedding/"),
                                           "mult"), tables)
        got = sess.run(out)
    np.testing.assert_allclose(got, np_rows(tables, "mult", [[3], [], [1, 1]], "sum"),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op", ["add", "mult", "concat"])
def test_training_through_input_layer_matches_numpy(op):
    emb_col = _column(op, combiner="mean")
    ids = [[0, 5], [5], [11, 2, 5]]
    out = tf.feature_column.input_layer({"item": _ragged(ids)}, [emb_col])
    target = np.random.RandomState(2).uniform(-1, 1, (3, 5 if op == "concat" else 3))
    loss = 0.5 * tf.reduce_sum(tf.square(out - target.astype(np.float32)))
    train = tf.train.AdagradOptimizer(0.3).minimize(loss)
    tables = [t.astype(np.float64) for t in _tables(op)]
    accumulators = [np.full(t.shape, 0.1) for t in tables]
    flat = np.array([x for row in ids for x in row])
    row_of = np.array([i for i, row in enumerate(ids) for _ in row])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        variables = _mhv_of("input_layer/item_embedding/")
        _assign(sess, tf.MultiHashVariable("m", variables, op), tables)
        for _ in range(3):
            fetched, _ = sess.run([out, train])
            want = np_rows(tables, op, ids, "mean")
            np.testing.assert_allclose(fetched, want, rtol=1e-5, atol=1e-6)
            # d loss / d id embedding = (row output - target) / ids in the row.
            counts = np.array([len(row) for row in ids])
            upstream = (want - target)[row_of] / counts[row_of, None]
            grads = np_table_grads(tables, flat, op, upstream, ROWS)
            tables = _np_step(tables, grads, "adagrad", accumulators, 0.3)
            for got, w in zip(sess.run(variables), tables, strict=True):
                np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_dense_features_layer():
    emb_col = _column("concat", combiner="sum")
    layer = stock_tf.compat.v1.keras.layers.DenseFeatures([emb_col])
    out = layer({"item": _ragged([[1, 7], [10]])})
    names = sorted(v.op.name for v in layer.variables)
    assert names == ["dense_features/item_embedding/embedding_weights/quotient",
                     "dense_features/item_embedding/embedding_weights/remainder"]
    tables = _tables("concat")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, tf.MultiHashVariable("m", sorted(layer.variables, key=lambda v: v.name),
                                           "concat"), tables)
        got = sess.run(out)
    np.testing.assert_allclose(got, np_rows(tables, "concat", [[1, 7], [10]], "sum"),
                               rtol=1e-6)


def test_max_norm_and_ckpt_to_load_from(tmp_path):
    tables = _tables("concat")
    saved = tf.get_multihash_variable("saved_mhv", [[4, 3], [3, 2]], operation="concat")
    path = str(tmp_path / "ckpt")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _assign(sess, saved, tables)
        tf.train.Saver().save(sess, path)
    tf.reset_default_graph()
    emb_col = _column("concat", combiner="sum", max_norm=0.5, ckpt_to_load_from=path,
                      tensor_name_in_ckpt="saved_mhv")
    out = tf.feature_column.input_layer({"item": _ragged([[1], [6]])}, [emb_col])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run(out)
    want = np_compose(tables, np.array([1, 6]), "concat", ROWS)
    norms = np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want * np.minimum(1, 0.5 / norms), rtol=1e-6)
    assert (norms > 0.5).all()


def test_guide_categorical_column_with_multihash_script():
    printed = run_guide_script("multihash_feature_column.py")
    assert printed[0] == ["init global done"]
    want = guide_reference((2, 2), (2, 3), np.arange(4), [0, 1, 2, 3])
    assert len(printed) == 4
    for (line,), expected in zip(printed[1:], want, strict=True):
        emb, train_op_result = line
        assert train_op_result is None
        assert np.array(emb["array"]).shape == (4, 5)
        np.testing.assert_allclose(np.array(emb["array"]), expected, rtol=1e-6)


# --- namespaces ----------------------------------------------------------------------

def test_feature_column_namespaces():
    from tensorflow.python.feature_column import feature_column_v2 as stock_fc2
    from tensorflow.python.feature_column import utils as stock_fc_utils

    import deeprec
    from deeprec.python.feature_column import feature_column_v2 as fc2
    from deeprec.python.feature_column import utils as fc_utils

    assert tf.feature_column is deeprec.feature_column
    assert tf.feature_column.__name__ == "deeprec.feature_column"
    assert tf.feature_column.indicator_column is stock_tf.compat.v1.feature_column.indicator_column
    assert (tf.feature_column.categorical_column_with_identity
            is stock_tf.compat.v1.feature_column.categorical_column_with_identity)
    assert fc2.categorical_column_with_multihash is \
        tf.feature_column.categorical_column_with_multihash
    assert fc2.embedding_column is tf.feature_column.embedding_column
    assert fc2.EmbeddingColumn is stock_fc2.EmbeddingColumn
    assert fc2._to_sparse_input_and_drop_ignore_values is \
        stock_fc2._to_sparse_input_and_drop_ignore_values
    assert fc_utils is stock_fc_utils


def test_embedding_column_of_other_columns_is_tensorflows():
    col = tf.feature_column.categorical_column_with_identity("i", 10)
    emb = tf.feature_column.embedding_column(col, 4, combiner="sum")
    assert type(emb) is stock_tf.compat.v1.feature_column.embedding_column(col, 4).__class__
    assert emb.dimension == 4 and emb.combiner == "sum"
    with pytest.raises(ValueError, match="Invalid dimension"):
        tf.feature_column.embedding_column(col, 0)


def test_config_round_trip():
    from tensorflow.python.feature_column import serialization

    emb = _column("concat", combiner="sqrtn")
    back = serialization.deserialize_feature_column(
        serialization.serialize_feature_column(emb))
    assert isinstance(back, multihash_column.MultiHashEmbeddingColumn)
    assert back.categorical_column == emb.categorical_column
    assert back.dimension == (3, 2) and back.combiner == "sqrtn"


# --- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"dims": (4,)}, r"dims must be 2 positive integers .* got \(4,\)"),
    ({"dims": (4, 0)}, r"dims must be 2 positive integers .* got \(4, 0\)"),
    ({"dims": "ab"}, r"dims must be 2 positive integers .* got 'ab'"),
    ({"dims": (2**32, 2**32)}, r"dims \(4294967296, 4294967296\) give more ids than int64 "
                               r"holds"),
    ({"complementary_strategy": "CRT"}, r"complementary_strategy must be one of .* got 'CRT'"),
    ({"operation": "max"}, r"operation must be one of .* got 'max'"),
    ({"dtype": tf.float32}, r"dtype must be an integer type or tf.string, got float32"),
])
def test_bad_column_arguments(kwargs, message):
    args = {"key": "k", "dims": (2, 2), **kwargs}
    with pytest.raises(ValueError, match=r"categorical_column_with_multihash\('k'\): " + message):
        tf.feature_column.categorical_column_with_multihash(**args)


@pytest.mark.parametrize("operation, dimension, message", [
    ("add", (2, 3), r"dimension \(2, 3\) gives one length per table, which needs operation "
                    r"'concat', got 'add'"),
    ("mult", (3, 3), r"dimension \(3, 3\) gives one length per table, .* got 'mult'"),
    ("concat", 4, r"operation 'concat' needs one dimension per table, got dimension 4"),
    (None, 0, r"dimension must be a positive integer or 2 positive integers .* got 0"),
    (None, (1, 2, 3), r"dimension must be .* got \(1, 2, 3\)"),
    (None, 2.5, r"dimension must be .* got 2.5"),
])
def test_embedding_column_dimension_must_fit_the_operation(operation, dimension, message):
    col = tf.feature_column.categorical_column_with_multihash("k", (2, 2), operation=operation)
    with pytest.raises(ValueError, match=r"embedding_column\('k'\): " + message):
        tf.feature_column.embedding_column(col, dimension)


def test_operation_follows_dimension_when_not_given():
    col = tf.feature_column.categorical_column_with_multihash("k", (2, 2))
    assert tf.feature_column.embedding_column(col, 3).operation == "add"
    assert tf.feature_column.embedding_column(col, (3,)).dimension == 3
    assert tf.feature_column.embedding_column(col, [2, 3]).operation == "concat"


def test_bad_embedding_column_arguments():
    col = tf.feature_column.categorical_column_with_multihash("k", (2, 2))
    with pytest.raises(ValueError, match="give both ckpt_to_load_from and tensor_name_in_ckpt"):
        tf.feature_column.embedding_column(col, 2, ckpt_to_load_from="x")
    with pytest.raises(ValueError, match="initializer must be callable, got 3"):
        tf.feature_column.embedding_column(col, 2, initializer=3)
    emb = tf.feature_column.embedding_column(col, 2)
    with pytest.raises(ValueError, match="input dtype string does not match the column dtype"):
        tf.feature_column.input_layer(
            {"k": tf.SparseTensor([[0, 0]], tf.constant(["a"]), [1, 1])}, [emb])
