"""deeprec-model-server over gRPC (the official tensorflow-serving-api client) and REST.

One server, one model ("wdl", a Wide & Deep SavedModel with EmbeddingVariables)
for the module: predictions equal a Python session's, metadata, status,
Classify/Regress, inference-mode EV lookups, bad requests and metrics.
"""

import base64
import re
import shutil
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from model_server_client import Served, predict_request
from model_server_models import (
    batch,
    export_model,
    reference_predict,
    unmark_inference_lookups,
)
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    regression_pb2,
)

from deeprec._native import ops as deeprec_ops

MAX_REQUEST_BYTES = 200_000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models") / "wdl")
    export_model(base, 3, seed=1)
    return base


@pytest.fixture(scope="module")
def served(model_dir):
    with Served(model_name="wdl", model_base_path=model_dir,
                max_request_bytes=MAX_REQUEST_BYTES, file_system_poll_wait_seconds=0) as s:
        yield s


def _ev_sizes(served, model="wdl"):
    """{EV name: number of ids} read from the server's own session."""
    with served.server.manager.servable(model) as servable:
        graph = servable.group.graph
        with graph.as_default():
            handles = [op for op in graph.get_operations() if op.type == "KvVarHandleOp"]
            shapes = [deeprec_ops.kv_variable_shape(op.outputs[0]) for op in handles]
        values = servable.group.session.run(shapes)
    return {op.name: int(v[0]) for op, v in zip(handles, values, strict=True)}


def _example(features):
    example = example_pb2.Example()
    for key, value in features.items():
        feature = example.features.feature[key]
        if isinstance(value, float):
            feature.float_list.value.append(value)
        else:
            feature.int64_list.value.append(value)
    return example


def test_predict_equals_python_session(served, model_dir):
    feed = batch(16, seed=5)
    expected = reference_predict(f"{model_dir}/3", feed)
    for content in (False, True):
        outputs, spec = served.predict("wdl", feed, content=content)
        assert spec.name == "wdl" and spec.version.value == 3
        assert spec.signature_name == "serving_default"
        for name in ("probability", "logit"):
            np.testing.assert_allclose(outputs[name], expected[name], rtol=0, atol=1e-6)
    outputs, _ = served.predict("wdl", feed, version=3, signature="serving_default")
    np.testing.assert_allclose(outputs["logit"], expected["logit"], atol=1e-6)

    request = predict_request("wdl", feed)
    request.output_filter.append("probability")
    response = served.predictions.Predict(request, timeout=30)
    assert list(response.outputs) == ["probability"]


def test_unseen_ids_get_defaults_and_tables_do_not_grow(served, model_dir):
    before = _ev_sizes(served)
    assert before and all(n > 0 for n in before.values())
    unseen = {"user": np.arange(10**9, 10**9 + 64, dtype=np.int64),
              "item": np.arange(2 * 10**9, 2 * 10**9 + 64, dtype=np.int64),
              "price": np.full(64, 0.5, np.float32)}
    first, _ = served.predict("wdl", unseen)
    second, _ = served.predict("wdl", unseen)
    np.testing.assert_array_equal(first["logit"], second["logit"])
    expected = reference_predict(f"{model_dir}/3", unseen)
    np.testing.assert_allclose(first["logit"], expected["logit"], atol=1e-6)
    assert _ev_sizes(served) == before


def test_exports_with_training_lookups_are_served_in_inference_mode(model_dir, tmp_path):
    base = tmp_path / "unmarked"
    shutil.copytree(f"{model_dir}/3", base / "1")
    assert unmark_inference_lookups(str(base / "1")) > 0
    unseen = {"user": np.arange(10**9, 10**9 + 8, dtype=np.int64),
              "item": np.arange(10**9, 10**9 + 8, dtype=np.int64),
              "price": np.zeros(8, np.float32)}
    with Served(model_name="unmarked", model_base_path=str(base)) as served:
        before = _ev_sizes(served, "unmarked")
        served.predict("unmarked", unseen)
        assert _ev_sizes(served, "unmarked") == before


def test_rest_predict_rows_and_columns(served, model_dir):
    feed = batch(4, seed=9)
    expected = reference_predict(f"{model_dir}/3", feed)
    instances = [{k: v[i].item() for k, v in feed.items()} for i in range(4)]
    status, body = served.rest("/v1/models/wdl:predict", {"instances": instances})
    assert status == 200, body
    got = np.array([row["probability"] for row in body["predictions"]])
    np.testing.assert_allclose(got, expected["probability"], atol=1e-6)

    columns = {k: v.tolist() for k, v in feed.items()}
    status, body = served.rest("/v1/models/wdl/versions/3:predict",
                               {"inputs": columns, "output_filter": ["logit"]})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"], expected["logit"], atol=1e-6)


def test_rest_b64_strings_through_the_examples_signature(served, model_dir):
    rows = [{"user": 3, "item": 4, "price": 0.25}, {"user": 8, "item": 1, "price": 0.75}]
    serialized = [_example(r).SerializeToString() for r in rows]
    body = {"signature_name": "regress",
            "instances": [{"b64": base64.b64encode(s).decode()} for s in serialized]}
    status, answer = served.rest("/v1/models/wdl:predict", body)
    assert status == 200, answer
    expected = reference_predict(f"{model_dir}/3", {
        "user": np.array([3, 8], np.int64), "item": np.array([4, 1], np.int64),
        "price": np.array([0.25, 0.75], np.float32)})
    np.testing.assert_allclose(answer["predictions"], expected["probability"], atol=1e-6)


def test_classify_and_regress(served, model_dir):
    rows = [{"user": 3, "item": 4, "price": 0.25}, {"user": 8, "item": 1, "price": 0.75}]
    expected = reference_predict(f"{model_dir}/3", {
        "user": np.array([3, 8], np.int64), "item": np.array([4, 1], np.int64),
        "price": np.array([0.25, 0.75], np.float32)})["probability"]

    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "wdl", "regress"
    request.input.example_list.examples.extend(_example(r) for r in rows)
    response = served.predictions.Regress(request, timeout=30)
    assert response.model_spec.version.value == 3
    np.testing.assert_allclose([r.value for r in response.result.regressions], expected,
                               atol=1e-6)

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "wdl", "classify"
    with_context = request.input.example_list_with_context
    with_context.context.CopyFrom(_example({"price": 0.25}))
    with_context.examples.extend(_example({"user": r["user"], "item": r["item"]})
                                 for r in rows[:1])
    response = served.predictions.Classify(request, timeout=30)
    classes = response.result.classifications[0].classes
    assert [c.label for c in classes] == ["no", "yes"]
    assert classes[1].score == pytest.approx(expected[0], abs=1e-6)

    status, body = served.rest("/v1/models/wdl:regress",
                               {"signature_name": "regress", "examples": rows})
    assert status == 200, body
    np.testing.assert_allclose(body["results"], expected, atol=1e-6)
    status, body = served.rest("/v1/models/wdl:classify",
                               {"signature_name": "classify", "examples": rows})
    assert status == 200 and body["results"][1][1][0] == "yes"

    request.model_spec.signature_name = ""  # serving_default is a predict signature
    with pytest.raises(grpc.RpcError) as err:
        served.predictions.Classify(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "method_name" in err.value.details()


def test_metadata(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "wdl"
    response = served.predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 3
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "regress", "classify"}
    inputs = signatures.signature_def["serving_default"].inputs
    assert inputs["user"].dtype == tf.int64.as_datatype_enum

    status, body = served.rest("/v1/models/wdl/metadata")
    assert status == 200
    assert body["model_spec"]["version"] == "3"
    predict = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert predict["inputs"]["price"]["dtype"] == "DT_FLOAT"
    assert predict["method_name"] == "tensorflow/serving/predict"


def test_status(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "wdl"
    response = served.models.GetModelStatus(request, timeout=30)
    [status] = response.model_version_status
    assert status.version == 3
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE

    code, body = served.rest("/v1/models/wdl")
    assert code == 200
    assert body == {"model_version_status": [{
        "version": "3", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}
    code, body = served.rest("/v1/models/wdl/versions/3")
    assert code == 200 and body["model_version_status"][0]["version"] == "3"


def _grpc_code(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_bad_grpc_requests(served):
    feed = batch(2, seed=1)
    predict = served.predictions.Predict

    def send(request):
        return lambda: predict(request, timeout=30)

    code, details = _grpc_code(send(predict_request("nope", feed)))
    assert code == grpc.StatusCode.NOT_FOUND and "'nope'" in details
    code, details = _grpc_code(send(predict_request("wdl", feed, version=7)))
    assert code == grpc.StatusCode.NOT_FOUND and "version 7" in details
    code, details = _grpc_code(send(predict_request("wdl", feed, signature="nope")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'nope'" in details

    wrong_dtype = dict(feed, user=feed["user"].astype(np.float32))
    code, details = _grpc_code(send(predict_request("wdl", wrong_dtype)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'user'" in details and "int64" in details and "float" in details
    wrong_shape = dict(feed, price=feed["price"].reshape(2, 1))
    code, details = _grpc_code(send(predict_request("wdl", wrong_shape)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'price'" in details
    missing = {k: v for k, v in feed.items() if k != "item"}
    code, details = _grpc_code(send(predict_request("wdl", missing)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "missing input(s) ['item']" in details
    extra = dict(feed, extra=np.zeros(2, np.float32))
    code, details = _grpc_code(send(predict_request("wdl", extra)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown input(s) ['extra']" in details
    short = predict_request("wdl", feed, content=True)
    short.inputs["price"].tensor_content = b"\0" * 4  # 1 float for shape [2]
    code, details = _grpc_code(send(short))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'price'" in details
    unknown_output = predict_request("wdl", feed)
    unknown_output.output_filter.append("nope")
    code, _ = _grpc_code(send(unknown_output))
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    big = {"user": np.zeros(MAX_REQUEST_BYTES // 8 + 10, np.int64)}
    big.update(item=big["user"], price=big["user"].astype(np.float32))
    code, _ = _grpc_code(send(predict_request("wdl", big, content=True)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "nope"
    code, _ = _grpc_code(lambda: served.models.GetModelStatus(status_request, timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["other"])
    metadata.model_spec.name = "wdl"
    code, _ = _grpc_code(lambda: served.predictions.GetModelMetadata(metadata, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    outputs, _ = served.predict("wdl", feed)  # still serving
    assert outputs["probability"].shape == (2,)


def test_bad_rest_requests(served):
    rows = [{"user": 1, "item": 2, "price": 0.5}]
    cases = [
        ("/v1/models/nope:predict", {"instances": rows}, 404, "'nope'"),
        ("/v1/models/wdl/versions/9:predict", {"instances": rows}, 404, "version 9"),
        ("/v1/models/wdl:predict", {"instances": rows, "signature_name": "x"}, 400, "'x'"),
        ("/v1/models/wdl:predict", {"instances": [{"user": 1.5, "item": 2, "price": 0.5}]},
         400, "'user'"),
        ("/v1/models/wdl:predict", {"inputs": {"user": [[1]], "item": [2], "price": [0.5]}},
         400, "'user'"),
        ("/v1/models/wdl:predict", {"instances": [{"user": 1}]}, 400, "missing input"),
        ("/v1/models/wdl:predict", {"inputs": {"user": [1, [2]], "item": [2, 3],
                                               "price": [0.5, 1]}}, 400, "'user'"),
        ("/v1/models/wdl:predict", {"instances": rows, "inputs": {}}, 400, "exactly one"),
        ("/v1/models/wdl:predict", "{not json", 400, "malformed JSON"),
        ("/v1/models/wdl:predict", {"instances": [{"b64": "!!"}], "signature_name": "regress"},
         400, "base64"),
        ("/v1/models/wdl:predict", "x" * (MAX_REQUEST_BYTES + 1), 413, "max_request_bytes"),
        ("/v1/nothing/here", None, 404, "malformed request"),
    ]
    for path, body, expected, fragment in cases:
        status, answer = served.rest(path, body, method="POST" if body is not None else "GET")
        assert status == expected, (path, body, answer)
        assert fragment in answer["error"], (fragment, answer)
    status, body = served.rest("/v1/models/wdl:predict", {"instances": rows})
    assert status == 200 and len(body["predictions"]) == 1


def test_rest_takes_many_connections_at_once(served):
    rows = {"instances": [{"user": 1, "item": 2, "price": 0.5}]}
    start = threading.Barrier(48)
    statuses = []

    def client():
        start.wait()
        statuses.append(served.rest("/v1/models/wdl:predict", rows)[0])

    clients = [threading.Thread(target=client) for _ in range(48)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert statuses == [200] * 48


def _parse_prometheus(text):
    sample = re.compile(r'^([a-zA-Z_:][\w:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? '
                        r'(-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE ")) or not line, line
            continue
        match = sample.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        samples[match[1] + (match[2] or "")] = float(match[3])
    return samples


def test_metrics(served):
    before = served.rest("/monitoring/prometheus/metrics")[1]
    served.predict("wdl", batch(2, seed=3))
    served.rest("/v1/models/nope:predict", {"instances": [1]})
    status, text = served.rest("/monitoring/prometheus/metrics")
    assert status == 200
    samples, old = _parse_prometheus(text), _parse_prometheus(before)
    ok = 'deeprec_serving_requests_total{model="wdl",api="predict",protocol="grpc",code="OK"}'
    assert samples[ok] == old.get(ok, 0) + 1
    missing = ('deeprec_serving_requests_total{model="_unknown",api="predict",'
               'protocol="rest",code="NOT_FOUND"}')
    assert samples[missing] >= 1
    count = 'deeprec_serving_request_latency_seconds_count{model="wdl",api="predict"}'
    inf = 'deeprec_serving_request_latency_seconds_bucket{model="wdl",api="predict",le="+Inf"}'
    assert samples[count] == samples[inf] >= 1
    assert samples['deeprec_serving_model_versions_available{model="wdl"}'] == 1
