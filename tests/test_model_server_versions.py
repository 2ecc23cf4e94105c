"""Model server: several models, version policies and labels, hot reload, warmup, bad versions."""

import os
import shutil
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from model_server_client import Served, predict_request
from model_server_models import batch, export_model, reference_predict
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_log_pb2

from deeprec.serving.model_server import config

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Versions 1 and 2 of model "a" and version 5 of model "b" (different weights)."""
    root = tmp_path_factory.mktemp("exports")
    a, b = str(root / "a"), str(root / "b")
    paths = {("a", 1): export_model(a, 1, seed=1), ("a", 2): export_model(a, 2, seed=2),
             ("b", 5): export_model(b, 5, seed=3)}
    return root, paths


def _status(served, name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    response = served.models.GetModelStatus(request, timeout=30)
    return {s.version: (s.state, s.status.error_message) for s in response.model_version_status}


def test_model_config_file_routes_models_with_policies_and_labels(exports, tmp_path):
    root, paths = exports
    config_file = tmp_path / "models.config"
    config_file.write_text(f"""
        model_config_list {{
          config {{ name: "a" base_path: "{root / 'a'}" model_platform: "tensorflow"
                   model_version_policy {{ all {{}} }}
                   version_labels {{ key: "stable" value: 1 }}
                   version_labels {{ key: "canary" value: 2 }} }}
          config {{ name: "b" base_path: "{root / 'b'}" model_platform: "tensorflow" }}
        }}""")
    feed = batch(8, seed=4)
    with Served(model_config_file=str(config_file), file_system_poll_wait_seconds=0) as served:
        assert _status(served, "a") == {1: (AVAILABLE, ""), 2: (AVAILABLE, "")}
        for (name, version), path in paths.items():
            expected = reference_predict(path, feed)["logit"]
            outputs, spec = served.predict(name, feed, version=version)
            assert spec.version.value == version
            np.testing.assert_allclose(outputs["logit"], expected, atol=1e-6)
        latest, spec = served.predict("a", feed)
        assert spec.version.value == 2  # empty version: the latest
        np.testing.assert_allclose(latest["logit"],
                                   reference_predict(paths["a", 2], feed)["logit"], atol=1e-6)

        request = predict_request("a", feed)
        request.model_spec.version_label = "stable"
        assert served.predictions.Predict(request, timeout=30).model_spec.version.value == 1
        status, body = served.rest("/v1/models/a/labels/canary:predict",
                                   {"inputs": {k: v.tolist() for k, v in feed.items()}})
        assert status == 200, body
        request.model_spec.version_label = "nope"
        with pytest.raises(grpc.RpcError) as err:
            served.predictions.Predict(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_specific_version_policy(exports, tmp_path):
    root, _ = exports
    config_file = tmp_path / "models.config"
    config_file.write_text(f"""
        model_config_list {{ config {{ name: "a" base_path: "{root / 'a'}"
          model_version_policy {{ specific {{ versions: 1 }} }} }} }}""")
    with Served(model_config_file=str(config_file), file_system_poll_wait_seconds=0) as served:
        assert _status(served, "a") == {1: (AVAILABLE, "")}
        _, spec = served.predict("a", batch(2, seed=1))
        assert spec.version.value == 1
        with pytest.raises(grpc.RpcError) as err:
            served.predict("a", batch(2, seed=1), version=2)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _write_warmup(path, feed):
    request = predict_pb2.PredictRequest()
    for name, value in feed.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))
    os.makedirs(os.path.join(path, "assets.extra"))
    with tf.io.TFRecordWriter(os.path.join(path, "assets.extra",
                                           "tf_serving_warmup_requests")) as writer:
        for _ in range(3):
            writer.write(log.SerializeToString())


def test_hot_reload_under_load_fails_no_request(exports, tmp_path):
    _, paths = exports
    base = tmp_path / "wdl"
    shutil.copytree(paths["a", 1], base / "1")
    feed = batch(8, seed=6)
    old = reference_predict(paths["a", 1], feed)["logit"]
    new = reference_predict(paths["a", 2], feed)["logit"]
    errors, answers, stop = [], [], threading.Event()
    new_served_20_times = threading.Event()

    with Served(model_name="wdl", model_base_path=str(base),
                file_system_poll_wait_seconds=0.2) as served:
        def client():
            request = predict_request("wdl", feed)
            while not stop.is_set():
                try:
                    response = served.predictions.Predict(request, timeout=30)
                    answers.append((response.model_spec.version.value,
                                    tf.make_ndarray(response.outputs["logit"])))
                except grpc.RpcError as err:
                    errors.append(err)
                if sum(v == 2 for v, _ in answers[-20:]) == 20:
                    new_served_20_times.set()

        clients = [threading.Thread(target=client) for _ in range(3)]
        for thread in clients:
            thread.start()
        try:
            # A new version is written aside (with warmup records), then renamed in.
            staging = tmp_path / "staging"
            shutil.copytree(paths["a", 2], staging)
            _write_warmup(str(staging), feed)
            os.rename(staging, base / "2")
            assert new_served_20_times.wait(timeout=120), "version 2 was not served"
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        assert not errors, errors[0]
        versions = [v for v, _ in answers]
        assert versions[0] == 1 and versions[-1] == 2
        for version, logit in answers:
            np.testing.assert_allclose(logit, old if version == 1 else new, atol=1e-6)
        status = _status(served, "wdl")
        assert status[2] == (AVAILABLE, "") and status[1][0] == END
        status, text = served.rest("/monitoring/prometheus/metrics")
        assert 'deeprec_serving_warmup_requests_total{model="wdl"} 3' in text


def test_bad_version_is_reported_and_old_one_keeps_serving(exports, tmp_path):
    _, paths = exports
    base = tmp_path / "wdl"
    shutil.copytree(paths["a", 1], base / "1")
    with Served(model_name="wdl", model_base_path=str(base),
                file_system_poll_wait_seconds=0) as served:
        broken = base / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        assert served.server.manager.poll()  # the failure is reported...
        status = _status(served, "wdl")
        assert status[2][0] == END and "version 2" in status[2][1]
        _, spec = served.predict("wdl", batch(2, seed=1))
        assert spec.version.value == 1  # ...and version 1 still answers
        status, body = served.rest("/v1/models/wdl/versions/2")
        assert status == 200 and body["model_version_status"][0]["state"] == "END"


def test_startup_fails_when_no_version_loads(tmp_path):
    broken = tmp_path / "wdl" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="model 'wdl' version 1"):
        Served(model_name="wdl", model_base_path=str(tmp_path / "wdl"))


def test_model_config_errors_name_the_problem(tmp_path):
    with pytest.raises(config.ConfigError, match="unsupported field 'nmae'"):
        config.parse_model_config('model_config_list { config { nmae: "a" } }')
    with pytest.raises(config.ConfigError, match="configured twice"):
        config.parse_model_config('model_config_list { config { name: "a" base_path: "/x" } '
                                  'config { name: "a" base_path: "/y" } }')
    with pytest.raises(config.ConfigError, match="num_versions must be >= 1"):
        config.parse_model_config('model_config_list { config { name: "a" base_path: "/x" '
                                  'model_version_policy { latest { num_versions: 0 } } } }')
    with pytest.raises(config.ConfigError, match=r":1: .*missing '}'"):
        config.parse_model_config('model_config_list { config { name: "a"')
