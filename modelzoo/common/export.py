"""SavedModel export with a serving signature over the raw features.

The signature `serving_default` takes one input per feature, named as the
column: dense features float32 `[batch]`, categorical ids int64 `[batch]`,
sequence features int64 `[batch, length]` padded with -1 (negative ids are
dropped, so rows may have different lengths). It outputs `probability` and
`logit` (`[batch]`) for a one-label model, `<label>_probability` and
`<label>_logit` for each label otherwise. The export lands in a numbered
subdirectory (seconds since the epoch) of the base directory, the layout
TensorFlow Serving and DeepRec's processor watch for new versions.

Entries of the model's `logits` dict that are not labels are extra outputs
under their own names (e.g. DSSM's `user_vector` and `item_vector`).
"""

from __future__ import annotations

import os
import time

from modelzoo.common.tfapi import tf


def serving_inputs(schema):
    """(placeholders by name, features dict for `Model.logits`) for the raw features."""
    placeholders, features = {}, {}
    for name in schema.dense:
        placeholders[name] = features[name] = tf.placeholder(tf.float32, [None], name=name)
    for name in schema.categorical:
        placeholders[name] = features[name] = tf.placeholder(tf.int64, [None], name=name)
    for name in schema.sequence:
        padded = tf.placeholder(tf.int64, [None, None], name=name)
        placeholders[name] = padded
        where = tf.where(padded >= 0)
        features[name] = tf.SparseTensor(where, tf.gather_nd(padded, where),
                                         tf.shape(padded, out_type=tf.int64))
    return placeholders, features


def output_names(labels) -> dict:
    """`{label: (probability name, logit name)}` as the signature names them.

    Example:
      >>> output_names(["label"])
      {'label': ('probability', 'logit')}
      >>> output_names(["click", "buy"])["buy"]
      ('buy_probability', 'buy_logit')
    """
    if len(labels) == 1:
        return {labels[0]: ("probability", "logit")}
    return {name: (f"{name}_probability", f"{name}_logit") for name in labels}


def _version_dir(base: str) -> str:
    version = int(time.time())
    while os.path.exists(os.path.join(base, str(version))):
        version += 1
    return os.path.join(base, str(version))


def export_saved_model(model, args, checkpoint: str, export_base: str) -> str:
    """Exports `checkpoint` as a SavedModel in a new `<export_base>/<version>`; returns its path."""
    export_dir = _version_dir(export_base)
    graph = tf.Graph()
    with graph.as_default():
        placeholders, features = serving_inputs(model.schema)
        logits = model.logits(features, training=False)
        outputs = {}
        for label, (prob_name, logit_name) in output_names(model.labels).items():
            outputs[logit_name] = tf.identity(logits[label], name=logit_name)
            outputs[prob_name] = tf.sigmoid(logits[label], name=prob_name)
        for name, tensor in logits.items():
            if name not in model.labels:  # a model's extra outputs, e.g. DSSM's tower vectors
                outputs[name] = tf.identity(tensor, name=name)
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            inputs=placeholders, outputs=outputs)
        with tf.Session(config=tf.ConfigProto(inter_op_parallelism_threads=args.inter,
                                              intra_op_parallelism_threads=args.intra)) as sess:
            tf.train.Saver().restore(sess, checkpoint)
            builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
            builder.add_meta_graph_and_variables(
                sess, [tf.saved_model.tag_constants.SERVING],
                signature_def_map={"serving_default": signature},
                strip_default_attrs=True, saver=tf.train.Saver(sharded=True))
            builder.save()
    return export_dir


def load_predictor(export_dir: str):
    """A function `predict(feed: {name: array}) -> {output name: array}` over a SavedModel.

    The session lives as long as the function; used by tests and examples.
    """
    graph = tf.Graph()
    sess = tf.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING],
                                                export_dir)
    signature = meta_graph.signature_def["serving_default"]

    def predict(feed):
        feeds = {signature.inputs[name].name: value for name, value in feed.items()}
        fetches = {name: info.name for name, info in signature.outputs.items()}
        return sess.run(fetches, feeds)

    predict.signature = signature
    predict.session = sess
    return predict
