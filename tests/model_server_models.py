"""Small Wide & Deep SavedModels with EmbeddingVariables, for the model server tests.

`export_model(base, version, seed)` trains a few steps and writes
`base/<version>` with three signatures: `serving_default` (predict: int64
`user`, `item` and float32 `price`, each `[batch]`, to `probability` and
`logit`), `regress` and `classify` (serialized `tf.Example`s with the same
features). Different seeds give different weights, so tests can tell
versions apart by their answers.
"""

from __future__ import annotations

import os

import numpy as np

import deeprec as tf

FEATURES = {
    "user": tf.io.FixedLenFeature([], tf.int64),
    "item": tf.io.FixedLenFeature([], tf.int64),
    "price": tf.io.FixedLenFeature([], tf.float32),
}
EMBEDDING_SCOPES = ("user", "item")


def _logit(features):
    with tf.variable_scope("wdl", reuse=tf.AUTO_REUSE):
        user = tf.feature_column.categorical_column_with_embedding("user", dtype=tf.int64)
        item = tf.feature_column.categorical_column_with_embedding("item", dtype=tf.int64)
        deep = tf.feature_column.input_layer(features, [
            tf.feature_column.embedding_column(user, 4),
            tf.feature_column.embedding_column(item, 4),
            tf.feature_column.numeric_column("price")])
        hidden = tf.layers.dense(deep, 8, activation=tf.nn.relu, name="hidden")
        wide = tf.feature_column.linear_model(features, [user, item])
        return tf.squeeze(tf.layers.dense(hidden, 1, name="out") + wide, -1)


def batch(rows: int, seed: int, id_range: int = 50) -> dict[str, np.ndarray]:
    """A feed for `serving_default`: ids in [0, id_range), prices in [0, 1)."""
    rng = np.random.default_rng(seed)
    return {"user": rng.integers(0, id_range, rows).astype(np.int64),
            "item": rng.integers(0, id_range, rows).astype(np.int64),
            "price": rng.random(rows).astype(np.float32)}


def export_model(base: str, version: int, seed: int, steps: int = 20) -> str:
    """Trains on random data (seeded) and exports SavedModel `base/<version>`; returns its path."""
    path = os.path.join(base, str(version))
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        train = batch(256, seed)
        labels = ((train["user"] + train["item"]) % 3 == 0).astype(np.float32)
        logit = _logit({k: tf.constant(v) for k, v in train.items()})
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                      logits=logit))
        train_op = tf.train.AdagradOptimizer(0.1).minimize(loss)

        placeholders = {"user": tf.placeholder(tf.int64, [None], name="user"),
                        "item": tf.placeholder(tf.int64, [None], name="item"),
                        "price": tf.placeholder(tf.float32, [None], name="price")}
        serve_logit = _logit(placeholders)
        probability = tf.sigmoid(serve_logit)
        examples = tf.placeholder(tf.string, [None], name="examples")
        parsed_logit = _logit(tf.io.parse_example(examples, FEATURES))
        parsed_probability = tf.sigmoid(parsed_logit)
        scores = tf.stack([1 - parsed_probability, parsed_probability], axis=1)
        classes = tf.tile(tf.constant([["no", "yes"]]), [tf.shape(scores)[0], 1])
        signatures = {
            "serving_default": tf.saved_model.signature_def_utils.predict_signature_def(
                inputs=placeholders, outputs={"probability": probability, "logit": serve_logit}),
            "regress": tf.saved_model.signature_def_utils.regression_signature_def(
                examples, parsed_probability),
            "classify": tf.saved_model.signature_def_utils.classification_signature_def(
                examples, classes, scores),
        }
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op)
            builder = tf.saved_model.builder.SavedModelBuilder(path)
            builder.add_meta_graph_and_variables(
                sess, [tf.saved_model.tag_constants.SERVING], signature_def_map=signatures,
                strip_default_attrs=True, saver=tf.train.Saver(sharded=True))
            builder.save()
    return path


def reference_predictor(path: str):
    """`predict(feed) -> {output: array}`: the export's `serving_default` in a plain session."""
    graph = tf.Graph()
    sess = tf.Session(graph=graph)
    with graph.as_default():
        meta = tf.saved_model.loader.load(sess, ["serve"], path)
    signature = meta.signature_def["serving_default"]
    fetches = {k: v.name for k, v in signature.outputs.items()}

    def predict(feed):
        return sess.run(fetches, {signature.inputs[k].name: v for k, v in feed.items()})
    return predict


def reference_predict(path: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The exported model's `serving_default` outputs computed by a plain Python session."""
    return reference_predictor(path)(feed)


def unmark_inference_lookups(path: str) -> int:
    """Turns the export's EV lookups back into training lookups (`is_inference` false).

    Such SavedModels come from exporters that do not mark serving lookups
    (DeepRec 1.15's, or a graph built without deeprec's export hook); the
    server must mark them itself. Returns the number of lookups changed.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    file = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(file, "rb") as f:
        saved_model.ParseFromString(f.read())
    changed = 0
    for meta_graph in saved_model.meta_graphs:
        for node in meta_graph.graph_def.node:
            if node.op.startswith("KvResourceGather") and node.attr["is_inference"].b:
                node.attr["is_inference"].b = False
                changed += 1
    with open(file, "wb") as f:
        f.write(saved_model.SerializeToString())
    return changed
