"""Exports for serving: EV lookups in "serve" graphs never insert ids.

SavedModelBuilder, Estimator.export_saved_model and the model zoo's export
mark every EmbeddingVariable lookup `is_inference`; the model zoo's export
is served by the processor and checked against the Python predictor.
"""

import json
import os

import numpy as np
import pytest
import serving_models as sm
from tensorflow.python.saved_model import loader_impl
from test_serving_processor import Processor

import deeprec as tf
from deeprec._native import ops as kv_ops
from deeprec.serving import mark_inference_lookups
from modelzoo.common import export
from modelzoo.data import files
from modelzoo.wdl import train as wdl_train

LOOKUPS = {"KvResourceGather", "KvResourceGatherWithCounts"}


def _lookup_nodes(graph_def):
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return [node for node in nodes if node.op in LOOKUPS]


def _load(export_dir):
    """(session, signature) of a SavedModel loaded in Python."""
    graph = tf.Graph()
    sess = tf.Session(graph=graph)
    with graph.as_default():
        meta = tf.saved_model.loader.load(sess, ["serve"], export_dir)
    return sess, meta


def _table_sizes(sess):
    """Sizes of every EmbeddingVariable table in the session's graph."""
    with sess.graph.as_default():
        handles = [op for op in sess.graph.get_operations() if op.type == "KvVarHandleOp"]
        shapes = [kv_ops.kv_variable_shape(op.outputs[0], Tkeys=op.get_attr("Tkeys"))[0]
                  for op in handles]
    return dict(zip([op.name for op in handles], sess.run(shapes), strict=True))


def test_saved_model_builder_marks_serve_graphs_only(tmp_path):
    ids = tf.placeholder(tf.int64, [None], name="ids")
    ev = tf.get_embedding_variable("ev", embedding_dim=2)
    emb = tf.nn.embedding_lookup(ev, ids)
    grouped = tf.nn.group_embedding_lookup([ev], [ids])[0]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        builder = tf.saved_model.builder.SavedModelBuilder(str(tmp_path / "m"))
        builder.add_meta_graph_and_variables(sess, ["train"])
        builder.add_meta_graph(["serve"], signature_def_map={
            "serving_default": tf.saved_model.signature_def_utils.predict_signature_def(
                {"ids": ids}, {"emb": emb, "grouped": grouped})})
        builder.save()
    # The training graph keeps inserting lookups.
    assert all(not node.attr["is_inference"].b
               for node in _lookup_nodes(tf.get_default_graph().as_graph_def()))
    saved = loader_impl.parse_saved_model(str(tmp_path / "m"))
    marks = {tuple(m.meta_info_def.tags): {n.op: n.attr["is_inference"].b
                                           for n in _lookup_nodes(m.graph_def)}
             for m in saved.meta_graphs}
    assert marks == {("train",): {"KvResourceGather": False, "KvResourceGatherWithCounts": False},
                     ("serve",): {"KvResourceGather": True, "KvResourceGatherWithCounts": True}}


def test_mark_inference_lookups_reaches_functions():
    ev = tf.get_embedding_variable("in_function", embedding_dim=2)
    tf.nn.embedding_lookup(ev, tf.constant([1], tf.int64))
    graph_def = tf.get_default_graph().as_graph_def()
    function = graph_def.library.function.add()
    function.signature.name = "lookup"
    function.node_def.add().CopyFrom(_lookup_nodes(graph_def)[0])
    assert mark_inference_lookups(graph_def) == 2
    assert all(node.attr["is_inference"].b for node in _lookup_nodes(graph_def))
    assert mark_inference_lookups(graph_def) == 0


def _model_fn(features, labels, mode):
    user = tf.feature_column.categorical_column_with_embedding("user", dtype=tf.int64)
    net = tf.feature_column.input_layer(features, [tf.feature_column.embedding_column(user, 4)])
    logit = tf.squeeze(tf.layers.dense(net, 1), 1)
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions={"logit": logit})
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logit))
    train = tf.train.AdagradOptimizer(0.1).minimize(
        loss, global_step=tf.train.get_or_create_global_step())
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train)


def test_estimator_export_does_not_insert(tmp_path):
    def input_fn():
        users = tf.constant(np.arange(8, dtype=np.int64))
        return {"user": users}, tf.cast(users % 2, tf.float32)

    estimator = tf.estimator.Estimator(_model_fn, model_dir=str(tmp_path / "model"))
    estimator.train(input_fn, steps=3)
    receiver = tf.estimator.export.build_raw_serving_input_receiver_fn(
        {"user": tf.placeholder(tf.int64, [None], name="user")})
    export_dir = estimator.export_saved_model(str(tmp_path / "export"), receiver).decode()
    sess, meta = _load(export_dir)
    assert [node.attr["is_inference"].b for node in _lookup_nodes(meta.graph_def)] == [True]
    sizes = _table_sizes(sess)
    assert list(sizes.values()) == [8]
    signature = meta.signature_def["serving_default"]
    feed = {signature.inputs["user"].name: np.array([3, 100, 101, 102], np.int64)}
    first = sess.run(signature.outputs["logit"].name, feed)
    assert _table_sizes(sess) == sizes
    np.testing.assert_array_equal(sess.run(signature.outputs["logit"].name, feed), first)


@pytest.fixture(scope="module")
def modelzoo_wdl(tmp_path_factory):
    root = tmp_path_factory.mktemp("modelzoo")
    data = str(root / "data")
    report = wdl_train.main([
        "--train_rows", "2000", "--test_rows", "500", "--vocab_scale", "0.001",
        "--batch_size", "64", "--dnn_hidden_units", "16", "--steps", "5", "--no_eval",
        "--data_location", data, "--output_dir", str(root / "out")])
    return report, data, str(root / "out")


def test_modelzoo_export_is_served_as_python_predicts(modelzoo_wdl):
    report, data, out = modelzoo_wdl
    saved = loader_impl.parse_saved_model(report["saved_model"])
    lookups = _lookup_nodes(saved.meta_graphs[0].graph_def)
    assert lookups and all(node.attr["is_inference"].b for node in lookups)
    meta = files.read_meta(data)
    columns = files.read_columns(files.split_files(data, "test", meta), meta["schema"])
    features = {name: columns[name][:200] for name in meta["schema"].features}
    predict = export.load_predictor(report["saved_model"])
    expected = predict(features)
    # The model zoo's checkpoint directory is one version under checkpoint_dir.
    proc = Processor(savedmodel_dir=report["saved_model"], checkpoint_dir=out, session_num=2,
                     use_per_session_threads=True)
    assert proc.model_path() == report["checkpoint"]
    served = proc.predict(sm.request(features))
    assert set(served) == set(expected)
    for name in expected:
        np.testing.assert_allclose(served[name], expected[name], rtol=0, atol=1e-6)


def test_model_config_of_the_guide_is_accepted(modelzoo_wdl):
    report, _, out = modelzoo_wdl
    # The single-machine keys of the guide's EAS example, as printed there.
    config = json.loads("""{
        "session_num": 2, "use_per_session_threads": true, "cpusets": "0;0",
        "omp_num_threads": 24, "kmp_blocktime": 0, "feature_store_type": "memory",
        "serialize_protocol": "protobuf", "inter_op_parallelism_threads": 24,
        "intra_op_parallelism_threads": 24, "init_timeout_minutes": 1,
        "signature_name": "serving_default", "model_store_type": "local"}""")
    cpu = min(os.sched_getaffinity(0))
    config.update(cpusets=f"{cpu};{cpu}", inter_op_parallelism_threads=2,
                  intra_op_parallelism_threads=2, checkpoint_dir=out,
                  savedmodel_dir=report["saved_model"])
    assert Processor(**config).handle
