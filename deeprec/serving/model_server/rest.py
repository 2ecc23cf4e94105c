"""REST: TensorFlow Serving's HTTP/JSON API and the Prometheus metrics page.

- `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`: version status;
- `GET .../metadata`: the signature defs;
- `POST .../{name}[/versions/{v}|/labels/{l}]:predict` with `{"instances": [...]}`
  (rows; answered `{"predictions": [...]}`) or `{"inputs": ...}` (columns;
  answered `{"outputs": ...}`), optional `signature_name` and `output_filter`;
  strings may be given as `{"b64": "..."}`, and string outputs whose name ends
  in `_bytes` are answered that way;
- `POST ...:classify` / `...:regress` with `{"examples": [...], "context": {...}}`;
- `GET /monitoring/prometheus/metrics`.

Failures answer `{"error": "..."}` with the HTTP status of the gRPC code (400
invalid argument, 404 not found, 413 body over `--max_request_bytes`, ...).
Built on the standard library's `ThreadingHTTPServer` (a thread per connection).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    regression_pb2,
)

from deeprec.serving.model_server import prediction, tensors
from deeprec.serving.model_server.errors import (
    ServingError,
    http_status,
    invalid,
    not_found,
    too_large,
)
from deeprec.serving.model_server.grpc_service import status_response
from deeprec.serving.model_server.metrics import Metrics
from deeprec.serving.model_server.model_manager import ModelManager
from deeprec.serving.model_server.servable import Servable

__all__ = ["RestServer"]

_log = logging.getLogger(__name__)

_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:/(?P<metadata>metadata)|:(?P<verb>predict|classify|regress))?$")
METRICS_PATH = "/monitoring/prometheus/metrics"


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _row_inputs(servable: Servable, name: str, signature, instances: Any) -> dict:
    if not isinstance(instances, list) or not instances:
        raise invalid("'instances' must be a non-empty list")
    if all(isinstance(i, dict) and not _is_b64(i) for i in instances):
        for instance in instances:
            if set(instance) != set(signature.inputs):
                prediction.check_inputs(servable, name, signature, instance)
        columns = {alias: [i[alias] for i in instances] for alias in signature.inputs}
    elif len(signature.inputs) == 1:
        columns = {next(iter(signature.inputs)): instances}
    else:
        raise invalid(f"model {servable.name!r} signature {name!r} takes "
                      f"{sorted(signature.inputs)}: each instance must be a JSON object "
                      "with those keys")
    return columns


def _column_inputs(servable: Servable, name: str, signature, inputs: Any) -> dict:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        prediction.check_inputs(servable, name, signature, inputs)
        return inputs
    if len(signature.inputs) != 1:
        raise invalid(f"model {servable.name!r} signature {name!r} takes "
                      f"{sorted(signature.inputs)}: 'inputs' must be a JSON object with "
                      "those keys")
    return {next(iter(signature.inputs)): inputs}


def _predict(servable: Servable, body: dict) -> dict:
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request body needs exactly one of 'instances' (rows) and "
                      "'inputs' (columns)")
    name, signature = servable.signature(_string(body, "signature_name"))
    if "instances" in body:
        values = _row_inputs(servable, name, signature, body["instances"])
    else:
        values = _column_inputs(servable, name, signature, body["inputs"])
    arrays = {alias: tensors.json_to_array(
                  value, signature.inputs[alias],
                  f"model {servable.name!r} signature {name!r} input {alias!r}")
              for alias, value in values.items()}
    output_filter = body.get("output_filter", [])
    if not isinstance(output_filter, list):
        raise invalid("'output_filter' must be a list of output names")
    outputs = servable.run(name, signature, arrays,
                           prediction.output_names(servable, name, signature, output_filter))
    as_json = {alias: tensors.array_to_json(value, alias) for alias, value in outputs.items()}
    if "inputs" in body:
        return {"outputs": next(iter(as_json.values())) if len(as_json) == 1 else as_json}
    if len(as_json) == 1:
        return {"predictions": next(iter(as_json.values()))}
    rows = {len(v) if isinstance(v, list) else None for v in as_json.values()}
    if len(rows) != 1 or None in rows:
        raise invalid(f"model {servable.name!r} signature {name!r}: outputs "
                      f"{sorted(as_json)} differ in their first dimension, so they cannot "
                      "be answered as rows; send 'inputs' (columns) instead")
    return {"predictions": [{alias: value[i] for alias, value in as_json.items()}
                            for i in range(rows.pop())]}


def _string(body: dict, key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise invalid(f"{key!r} must be a string, got {value!r}")
    return value


def _feature(value: Any, key: str) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, (bool, int)) for v in values):
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    strings = tensors.json_to_array(values, _STRING_INFO, f"feature {key!r}")
    return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=list(strings)))


def _example(features: Any, what: str) -> example_pb2.Example:
    if not isinstance(features, dict):
        raise invalid(f"{what} must be a JSON object of features")
    example = example_pb2.Example()
    for key, value in features.items():
        example.features.feature[key].CopyFrom(_feature(value, key))
    return example


def _examples_request(request: Any, body: dict) -> Any:
    request.model_spec.signature_name = _string(body, "signature_name")
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("'examples' must be a non-empty list of JSON objects")
    if "context" in body:
        target = request.input.example_list_with_context
        target.context.CopyFrom(_example(body["context"], "'context'"))
    else:
        target = request.input.example_list
    for i, features in enumerate(examples):
        target.examples.add().CopyFrom(_example(features, f"example {i}"))
    return request


def _classify(servable: Servable, body: dict) -> dict:
    response = prediction.classify(
        servable, _examples_request(classification_pb2.ClassificationRequest(), body))
    return {"results": [[[c.label or str(j), c.score] for j, c in enumerate(r.classes)]
                        for r in response.result.classifications]}


def _regress(servable: Servable, body: dict) -> dict:
    response = prediction.regress(
        servable, _examples_request(regression_pb2.RegressionRequest(), body))
    return {"results": [r.value for r in response.result.regressions]}


_STRING_INFO = meta_graph_pb2.TensorInfo(
    dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(unknown_rank=True))


class _App:
    def __init__(self, manager: ModelManager, metrics: Metrics, max_request_bytes: int) -> None:
        self.manager = manager
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = urllib.parse.urlsplit(handler.path).path
        if method == "GET" and path == METRICS_PATH:
            self._send(handler, 200, self.metrics.render().encode(),
                       "text/plain; version=0.0.4; charset=utf-8")
            return
        start = time.perf_counter()
        match = _MODEL_PATH.match(path)
        model, api = "_unknown", "unknown"
        try:
            if match is None:
                raise not_found(f"malformed request: {method} {handler.path} "
                                "(see docs/model_server.md for the REST paths)")
            name = urllib.parse.unquote(match["name"])
            model = name if name in self.manager.model_names else "_unknown"
            api = match["verb"] or ("metadata" if match["metadata"] else "status")
            expected = "POST" if match["verb"] else "GET"
            if method != expected:
                raise invalid(f"{method} {path}: use {expected}")
            body = self._body(handler) if method == "POST" else None
            answer = self._answer(name, match, api, body)
            self._send_json(handler, 200, answer)
            code = "OK"
        except ServingError as err:
            code = err.code.name
            status = err.http if err.http is not None else http_status(err.code)
            self._send_json(handler, status, {"error": err.message})
        except Exception as err:  # a server bug: report it, keep serving
            _log.exception("%s %s failed", method, path)
            code = "INTERNAL"
            self._send_json(handler, 500, {"error": f"internal error: {type(err).__name__}: "
                                                   f"{err}"})
        self.metrics.observe_request(model, api, "rest", code, time.perf_counter() - start)

    def _body(self, handler: BaseHTTPRequestHandler) -> dict:
        length = handler.headers.get("Content-Length")
        if length is None or not length.isdigit():
            handler.close_connection = True
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "the request needs a Content-Length header", http=411)
        if int(length) > self.max_request_bytes:
            handler.close_connection = True  # the unread body must not be taken as a request
            raise too_large(f"request body of {length} bytes exceeds "
                            f"--max_request_bytes={self.max_request_bytes}")
        raw = handler.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise invalid(f"malformed JSON in the request body: {err}") from err
        if not isinstance(body, dict):
            raise invalid("the request body must be a JSON object")
        return body

    def _answer(self, name: str, match: re.Match, api: str, body: dict | None) -> dict:
        version = None
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise invalid(f"version {match['version']!r} in the URL is not a number")
            version = int(match["version"])
        label = urllib.parse.unquote(match["label"]) if match["label"] else None
        if api == "status":
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = name
            if version is not None:
                request.model_spec.version.value = version
            elif label:
                request.model_spec.version_label = label
            return json_format.MessageToDict(status_response(self.manager, request),
                                              preserving_proto_field_name=True,
                                              including_default_value_fields=True)
        with self.manager.servable(name, version, label) as servable:
            if api == "metadata":
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    metadata_field=["signature_def"])
                response = prediction.metadata(servable, request)
                signatures = get_model_metadata_pb2.SignatureDefMap()
                response.metadata["signature_def"].Unpack(signatures)
                return {"model_spec": json_format.MessageToDict(
                            response.model_spec, preserving_proto_field_name=True,
                            including_default_value_fields=True),
                        "metadata": {"signature_def": json_format.MessageToDict(
                            signatures, preserving_proto_field_name=True)}}
            return {"predict": _predict, "classify": _classify,
                    "regress": _regress}[api](servable, body)

    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        _App._send(handler, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes,
              content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: load generators reuse connections
    timeout = 60  # an idle kept-alive connection frees its thread after this
    # Headers and body leave in one buffered write, without Nagle's delay: a
    # separate small body write waited ~40 ms for the client's delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 (http.server's names)
        self.server.app.handle(self, "GET")

    def do_POST(self):  # noqa: N802
        self.server.app.handle(self, "POST")

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        _log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 drops connections when tens of
    # clients connect at once (they retry after a second, or fail).
    request_queue_size = socket.SOMAXCONN


class RestServer:
    """TensorFlow Serving's REST API on `host:port` (port 0: a free port), in a thread.

    Args:
      host: the address to bind.
      port: the port (0 picks a free one; see `port` after construction).
      manager: the models.
      metrics: server metrics, also rendered at `/monitoring/prometheus/metrics`.
      max_request_bytes: the largest request body accepted (413 beyond).
    """

    def __init__(self, host: str, port: int, manager: ModelManager, metrics: Metrics,
                 max_request_bytes: int) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.app = _App(manager, metrics, max_request_bytes)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest",
                                        daemon=True)

    def start(self) -> None:
        """Starts answering requests."""
        self._thread.start()

    def stop(self) -> None:
        """Stops accepting requests and closes the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
