"""Small models exported as SavedModels for the serving processor's tests.

`export_wdl` trains a Wide & Deep model on EmbeddingVariable columns and
writes a SavedModel plus two checkpoint versions; `export_lookups` writes a
model whose outputs are raw EmbeddingVariable lookups (plain, filtered,
grouped and fused), with a "sizes" signature reporting the tables' sizes.
"""

import os

import numpy as np

import deeprec as tf
from deeprec.serving import predict_pb2

DIM = 4
DEFAULT = 0.5  # the lookup model's EV initial value
NO_PERMISSION = -2.0  # its filtered EV's default_value_no_permission


def wdl_features(rng, n, user_range=50):
    return {
        "user": rng.integers(0, user_range, n).astype(np.int64),
        "item": np.array([f"item{i}".encode() for i in rng.integers(0, 30, n)], dtype=object),
        "price": rng.random((n, 1)).astype(np.float32),
    }


def _wdl_logit(features):
    user = tf.feature_column.categorical_column_with_embedding("user", dtype=tf.int64)
    item = tf.feature_column.categorical_column_with_embedding("item", dtype=tf.string)
    price = tf.feature_column.numeric_column("price")
    with tf.variable_scope("deep"):
        deep = tf.feature_column.input_layer(features, [
            tf.feature_column.embedding_column(user, 8),
            tf.feature_column.embedding_column(item, 8), price])
        hidden = tf.layers.dense(deep, 16, activation=tf.nn.relu)
        deep_logit = tf.layers.dense(hidden, 1)
    with tf.variable_scope("wide"):
        wide_logit = tf.feature_column.linear_model(features, [user, item])
    return tf.squeeze(deep_logit + wide_logit, 1)


def _save(sess, saver, path, step):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return saver.save(sess, path, global_step=step)


def export_wdl(root):
    """Trains Wide & Deep; returns paths and the training session's predictions.

    The SavedModel holds the variables after 10 steps (checkpoint_1); the
    training goes on to 20 steps (checkpoint_2). `probe` holds only ids seen
    in training, so the training session can predict it without inserting.
    """
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        inputs = {"user": tf.placeholder(tf.int64, [None], name="user"),
                  "item": tf.placeholder(tf.string, [None], name="item"),
                  "price": tf.placeholder(tf.float32, [None, 1], name="price")}
        label = tf.placeholder(tf.float32, [None], name="label")
        logit = _wdl_logit(dict(inputs))
        probability = tf.sigmoid(logit, name="probability")
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label,
                                                                     logits=logit))
        global_step = tf.train.get_or_create_global_step()
        train = tf.train.AdagradOptimizer(0.2).minimize(loss, global_step=global_step)
        saver = tf.train.Saver()
        paths = {"savedmodel_dir": os.path.join(root, "saved_model"),
                 "checkpoint_dir": os.path.join(root, "ckpt")}
        probe = wdl_features(rng, 64)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for step in range(20):
                batch = wdl_features(rng, 64)
                feed = {inputs[k]: v for k, v in batch.items()}
                feed[label] = (batch["user"] % 3 == 0).astype(np.float32)
                sess.run(train, feed)
                if step == 0:  # every probe id is then seen
                    sess.run(train, {**{inputs[k]: v for k, v in probe.items()},
                                     label: np.zeros(64, np.float32)})
                if step == 9:
                    paths["checkpoint_1"] = _save(sess, saver, os.path.join(
                        paths["checkpoint_dir"], "checkpoint_1", "model.ckpt"), global_step)
                    at_10 = sess.run(probability, {inputs[k]: v for k, v in probe.items()})
                    signature = tf.saved_model.signature_def_utils.predict_signature_def(
                        inputs=inputs, outputs={"probability": probability, "logit": logit})
                    builder = tf.saved_model.builder.SavedModelBuilder(paths["savedmodel_dir"])
                    builder.add_meta_graph_and_variables(
                        sess, ["serve"], signature_def_map={"serving_default": signature})
                    builder.save()
            paths["checkpoint_2"] = _save(sess, saver, os.path.join(
                paths["checkpoint_dir"], "checkpoint_2", "model.ckpt"), global_step)
            at_20 = sess.run(probability, {inputs[k]: v for k, v in probe.items()})
    return paths, probe, at_10, at_20


def export_lookups(path):
    """Exports raw lookups of EVs trained on ids 1, 2, 3 (and a filtered EV on
    7 seen three times, 8 seen once); returns the trained rows by id."""
    graph = tf.Graph()
    with graph.as_default():
        ids = tf.placeholder(tf.int64, [None], name="ids")
        init = tf.constant_initializer(DEFAULT)
        plain = tf.get_embedding_variable("plain", embedding_dim=DIM, initializer=init)
        grouped = tf.get_embedding_variable("grouped", embedding_dim=DIM, initializer=init)
        filtered = tf.get_embedding_variable(
            "filtered", embedding_dim=DIM, initializer=init,
            ev_option=tf.EmbeddingVariableOption(
                filter_option=tf.CounterFilter(filter_freq=3),
                init_option=tf.InitializerOption(default_value_no_permission=NO_PERMISSION)))
        outputs = {"plain": tf.nn.embedding_lookup(plain, ids),
                   "grouped": tf.nn.group_embedding_lookup([grouped], [ids])[0],
                   "filtered": tf.nn.embedding_lookup(filtered, ids)}
        loss = sum(tf.reduce_sum(t) for t in outputs.values())
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        sizes = {"plain": plain.total_count()[0], "grouped": grouped.total_count()[0],
                 "filtered": filtered.stats()[0]}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for batch in ([1, 2, 3, 7, 8], [7], [7]):
                sess.run(train, {ids: batch})
            trained = sess.run(outputs, {ids: [1, 2, 3, 7, 8]})
            builder = tf.saved_model.builder.SavedModelBuilder(path)
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={
                "serving_default": tf.saved_model.signature_def_utils.predict_signature_def(
                    inputs={"ids": ids}, outputs=outputs),
                "sizes": tf.saved_model.signature_def_utils.build_signature_def(
                    outputs={k: tf.saved_model.utils.build_tensor_info(v)
                             for k, v in sizes.items()},
                    method_name=tf.saved_model.signature_constants.PREDICT_METHOD_NAME)})
            builder.save()
    return trained


def big_score(ids):
    """export_big's output for trained ids (0 gives an unseen id's)."""
    return 64 * (1 - 1e-6 * np.asarray(ids, np.float64))


def export_big(path, ids, dim):
    """Exports an EV of `ids` rows of `dim` floats: row k is 1 - 1e-6 k, so
    the output `score` (the row's sum) tells which row was read."""
    graph = tf.Graph()
    with graph.as_default():
        keys = tf.placeholder(tf.int64, [None], name="ids")
        ev = tf.get_embedding_variable("big", embedding_dim=dim, initializer=tf.ones_initializer())
        emb = tf.nn.embedding_lookup(ev, keys)
        weight = tf.cast(tf.expand_dims(keys, 1), tf.float32)
        train = tf.train.GradientDescentOptimizer(1e-6).minimize(tf.reduce_sum(emb * weight))
        score = tf.reduce_sum(emb, axis=1)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for start in range(0, ids, 100_000):
                sess.run(train, {keys: np.arange(start, min(start + 100_000, ids))})
            builder = tf.saved_model.builder.SavedModelBuilder(path)
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={
                "serving_default": tf.saved_model.signature_def_utils.predict_signature_def(
                    {"ids": keys}, {"score": score})})
            builder.save()


def array(value, dtype=None):
    """An ArrayProto of a numpy array (dtype from the array unless given)."""
    value = np.asarray(value)
    proto = predict_pb2.ArrayProto()
    proto.array_shape.dim.extend(value.shape)
    kind = dtype or {np.dtype(np.float32): "DT_FLOAT", np.dtype(np.float64): "DT_DOUBLE",
                     np.dtype(np.int32): "DT_INT32", np.dtype(np.int64): "DT_INT64",
                     np.dtype(np.bool_): "DT_BOOL"}.get(value.dtype, "DT_STRING")
    proto.dtype = predict_pb2.ArrayDataType.Value(kind)
    flat = value.reshape(-1).tolist()
    field = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val",
             "DT_INT16": "int_val", "DT_INT8": "int_val", "DT_UINT8": "int_val",
             "DT_INT64": "int64_val", "DT_BOOL": "bool_val", "DT_STRING": "string_val"}[kind]
    getattr(proto, field).extend(flat)
    return proto


def to_numpy(proto):
    """The numpy array of an ArrayProto."""
    name = predict_pb2.ArrayDataType.Name(proto.dtype)
    field, dtype = {"DT_FLOAT": ("float_val", np.float32), "DT_DOUBLE": ("double_val", np.float64),
                    "DT_INT32": ("int_val", np.int32), "DT_INT64": ("int64_val", np.int64),
                    "DT_BOOL": ("bool_val", np.bool_), "DT_STRING": ("string_val", object)}[name]
    return np.array(list(getattr(proto, field)), dtype=dtype).reshape(
        tuple(proto.array_shape.dim))


def request(features, signature_name="", output_filter=()):
    """A PredictRequest of `{name: numpy array or ArrayProto}`."""
    req = predict_pb2.PredictRequest(signature_name=signature_name,
                                     output_filter=list(output_filter))
    for name, value in features.items():
        req.inputs[name].CopyFrom(value if isinstance(value, predict_pb2.ArrayProto)
                                  else array(value))
    return req
