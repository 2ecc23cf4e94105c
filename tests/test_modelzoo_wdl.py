"""Wide & Deep in the model zoo: trains, evaluates, checkpoints, exports; shared flags."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import deeprec as tf
from modelzoo.common import evaluation, export
from modelzoo.common.flags import parse_args
from modelzoo.data import files
from modelzoo.wdl import train as wdl_train
from modelzoo.wdl.model import WideAndDeep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small vocabularies so a few hundred steps see every popular id many times.
SMALL = ["--train_rows", "60000", "--test_rows", "20000", "--vocab_scale", "0.01",
         "--batch_size", "256", "--eval_batch_size", "2048", "--dnn_hidden_units", "64,32",
         "--log_steps", "100", "--summary_steps", "50"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data") / "criteo")


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("wdl"))
    argv = SMALL + ["--data_location", data_dir, "--output_dir", out, "--steps", "300"]
    report = wdl_train.main(argv)
    return argv, out, report


def test_wdl_trains_evaluates_checkpoints_and_exports(trained):
    argv, out, report = trained
    train = report["train"]
    assert train["steps"] == 300 and train["samples"] == 300 * 256
    assert train["loss_end"] < train["loss_start"] - 0.03
    metrics = report["eval"]["label"]
    assert metrics["rows"] == 20000
    assert metrics["auc"] > 0.7  # 0.5 is chance; the ceiling is ~0.83
    assert metrics["auc"] < metrics["ceiling_auc"] + 0.01
    assert metrics["logloss"] < 0.56  # a constant 25% guess scores 0.562
    assert train["samples_per_sec"] > 0
    assert report["checkpoint"].endswith("model.ckpt-300")
    ckpt_dir = os.path.dirname(report["checkpoint"])
    assert glob.glob(os.path.join(ckpt_dir, "events.out.tfevents.*"))
    assert glob.glob(os.path.join(ckpt_dir, "eval", "events.out.tfevents.*"))
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["eval"]["label"]["auc"] == metrics["auc"]
    names = {name for name, _ in tf.train.list_variables(report["checkpoint"])}
    assert "wide/linear_model/C1/weights-keys" in names  # EV tables, DeepRec's names
    assert "deep/input_layer/C1_embedding/embedding_weights-keys" in names
    assert os.path.isfile(os.path.join(report["saved_model"], "saved_model.pb"))


def test_saved_model_predicts_as_the_checkpoint(trained, data_dir):
    argv, _, report = trained
    args = parse_args(wdl_train.make_parser(), argv)
    meta = files.read_meta(data_dir)
    model = WideAndDeep(args, meta)
    probabilities, _ = evaluation.predict(model, args, meta, data_dir, report["checkpoint"])
    columns = files.read_columns(files.split_files(data_dir, "test", meta), meta["schema"])
    predict = export.load_predictor(report["saved_model"])
    assert set(predict.signature.inputs) == set(meta["schema"].features)
    served = predict({name: columns[name][:3000] for name in meta["schema"].features})
    np.testing.assert_allclose(served["probability"], probabilities["label"][:3000],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["probability"], 1 / (1 + np.exp(-served["logit"])),
                               rtol=1e-5)


def test_wdl_on_hash_bucket_tables_and_with_ev_options(data_dir, tmp_path):
    stock = wdl_train.main(SMALL + ["--data_location", data_dir, "--steps", "120",
                                    "--output_dir", str(tmp_path / "hash"), "--ev", "false",
                                    "--emb_fusion", "false", "--optimizer", "adagrad",
                                    "--learning_rate", "0.05"])
    names = {n for n, _ in tf.train.list_variables(stock["checkpoint"])}
    assert "deep/input_layer/C3_embedding/embedding_weights" in names
    assert not any(n.endswith("-keys") for n in names)
    assert stock["eval"]["label"]["auc"] > 0.65
    filtered = wdl_train.main(SMALL + ["--data_location", data_dir, "--steps", "60",
                                       "--output_dir", str(tmp_path / "ev"),
                                       "--ev_filter", "counter", "--ev_filter_freq", "3",
                                       "--ev_evict", "gstep", "--ev_steps_to_live", "50",
                                       "--optimizer", "adagraddecay", "--no_eval",
                                       "--saved_model_path", "none"])
    names = {n for n, _ in tf.train.list_variables(filtered["checkpoint"])}
    assert "deep/input_layer/C3_embedding/embedding_weights-keys_filtered" in names
    assert "eval" not in filtered and "saved_model" not in filtered


def _wdl_step(argv, meta, features):
    """(logits, dense variables' gradients, per EV the sum of squares of its
    gradient rows) of one WDL graph built from `argv`, on `features`."""
    args = parse_args(wdl_train.make_parser(), argv)
    with tf.Graph().as_default() as graph:
        model = WideAndDeep(args, meta)
        logits = model.logits({n: tf.constant(v) for n, v in features.items()},
                              training=True)["label"]
        variables = tf.trainable_variables()
        grads = tf.gradients(tf.reduce_sum(tf.square(logits)), variables)
        dense = {v.op.name: g for v, g in zip(variables, grads, strict=True)
                 if not isinstance(g, tf.IndexedSlices)}
        # Row order may differ between lookups; the sum of squares does not.
        sparse = {v.op.name: tf.reduce_sum(tf.square(g.values))
                  for v, g in zip(variables, grads, strict=True)
                  if isinstance(g, tf.IndexedSlices)}
        op_types = {op.type for op in graph.get_operations()}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return sess.run((logits, dense, sparse)) + (op_types,)


def test_group_embedding_computes_what_the_fused_lookups_compute(trained, data_dir):
    # The same model and seeds, one batch: grouping the deep columns changes
    # how they are looked up, not what is computed.
    meta = files.read_meta(data_dir)
    columns = files.read_columns(files.split_files(data_dir, "test", meta), meta["schema"])
    features = {name: columns[name][:512] for name in meta["schema"].features}
    argv = SMALL + ["--data_location", data_dir]
    fused = _wdl_step(argv, meta, features)
    grouped = _wdl_step(argv + ["--group_embedding", "localized"], meta, features)
    np.testing.assert_allclose(grouped[0], fused[0], rtol=1e-5, atol=1e-6)
    for kind in (1, 2):
        assert grouped[kind].keys() == fused[kind].keys()
        for name, value in fused[kind].items():
            np.testing.assert_allclose(grouped[kind][name], value, rtol=1e-4, atol=1e-6,
                                       err_msg=name)
    assert len(fused[2]) == 52  # 26 deep and 26 wide EmbeddingVariables
    assert "GroupEmbeddingSparsePostLookUp" in grouped[3]
    assert "GroupEmbeddingSparsePostLookUp" not in fused[3]
    assert "FusedEmbeddingSparsePostLookUp" in grouped[3]  # the wide part stays fused


def test_stock_tensorflow_baseline_never_imports_deeprec(data_dir, tmp_path):
    code = ("import sys; from modelzoo.wdl import train; "
            "r = train.main(sys.argv[1:]); "
            "assert 'deeprec' not in sys.modules, 'deeprec was imported'; "
            "print('backend', r['backend'])")
    argv = SMALL + ["--data_location", data_dir, "--steps", "30", "--no_eval",
                    "--output_dir", str(tmp_path / "stock"), "--ev", "false",
                    "--emb_fusion", "false", "--saved_model_path", "none"]
    env = dict(os.environ, MODELZOO_STOCK_TF="1", PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-c", code] + argv, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backend stock TensorFlow" in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["--batch_size", "0"], "--batch_size must be >= 1, got 0"),
    (["--steps", "-5"], "--steps must be >= 0, got -5"),
    (["--learning_rate", "0"], "--learning_rate must be > 0, got 0.0"),
    (["--dataset", "movielens"], "--data_location is required for --dataset movielens"),
    (["--dataset", "open_bandit", "--data_location", "/no/such/dir"],
     "--data_location must be an existing directory, got '/no/such/dir'"),
    (["--ev", "false", "--ev_filter", "counter"], "--ev_filter needs --ev true, got 'counter'"),
    (["--dnn_hidden_units", "64,x"], "--dnn_hidden_units must be comma-separated"),
])
def test_bad_flags_exit_naming_the_flag_and_value(argv, message, tmp_path):
    with pytest.raises(SystemExit, match=message.replace("(", r"\(")):
        wdl_train.main(argv + ["--output_dir", str(tmp_path)])


def test_bad_flag_types_and_stock_tf_conflicts(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit):
        wdl_train.main(["--ev", "maybe"])
    assert "expected a boolean (true/false), got 'maybe'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        wdl_train.main(["--optimizer", "sgd"])
    assert "invalid choice: 'sgd'" in capsys.readouterr().err
    monkeypatch.setenv("MODELZOO_STOCK_TF", "1")
    with pytest.raises(SystemExit, match="--ev needs deeprec .*got True"):
        wdl_train.main(["--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--group_embedding needs deeprec .*got 'localized'"):
        wdl_train.main(["--ev", "false", "--emb_fusion", "false", "--group_embedding",
                        "localized", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--optimizer is DeepRec's.*got 'adamasync'"):
        wdl_train.main(["--ev", "false", "--emb_fusion", "false", "--optimizer", "adamasync",
                        "--output_dir", str(tmp_path)])


def test_serve_demo_answers_from_the_export(trained, data_dir):
    """`make demo`'s last step: the export served, one gRPC request, the answer printed."""
    _, out, _ = trained
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "serve_demo.py"), "--model_base_path",
         os.path.join(out, "saved_model"), "--data_location", data_dir, "--rows", "3"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Predict over gRPC" in result.stdout
    assert "REST :predict answers the same" in result.stdout
