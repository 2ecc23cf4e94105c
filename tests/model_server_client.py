"""Clients for the model server tests: the official gRPC stubs and plain urllib for REST."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from deeprec.serving.model_server import ModelServer, ServerOptions

SERVER_THREAD_PREFIXES = ("grpc", "rest", "batch-", "version-poller")


class Served:
    """A `ModelServer` on 127.0.0.1 with free ports, and clients to it."""

    def __init__(self, **options) -> None:
        # rest_api_port=0 means "no REST" (TF Serving's flag), so pick a free port.
        options.setdefault("rest_api_port", free_port())
        self._threads_before = set(threading.enumerate())
        self.server = ModelServer(ServerOptions(port=0, host="127.0.0.1", **options))
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop()
        leaked = [t.name for t in threading.enumerate() if t not in self._threads_before
                  and t.name.startswith(SERVER_THREAD_PREFIXES)]
        assert not leaked, f"server threads left running: {leaked}"

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def predict(self, model: str, feed: dict, version: int | None = None,
                signature: str = "", content: bool = False) -> tuple[dict, object]:
        """(outputs, model_spec) of a gRPC Predict; `content` sends `tensor_content`."""
        request = predict_request(model, feed, version, signature, content)
        response = self.predictions.Predict(request, timeout=30)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}, response.model_spec

    def rest(self, path: str, body=None, method: str | None = None) -> tuple[int, object]:
        """(HTTP status, decoded JSON or text) of a REST call; `body` a dict, str or bytes."""
        url = f"http://127.0.0.1:{self.server.rest_port}{path}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else (
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, kind = response.status, response.read(), response.headers
        except urllib.error.HTTPError as err:
            status, raw, kind = err.code, err.read(), err.headers
        if "json" in kind.get("Content-Type", ""):
            return status, json.loads(raw)
        return status, raw.decode()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def predict_request(model: str, feed: dict, version: int | None = None, signature: str = "",
                    content: bool = False) -> predict_pb2.PredictRequest:
    """A PredictRequest; typed fields (`int64_val`...) unless `content`."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in feed.items():
        value = np.asarray(value)
        if content:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        else:
            proto = request.inputs[name]
            proto.dtype = tf.as_dtype(value.dtype).as_datatype_enum
            proto.tensor_shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
            field = {np.dtype(np.int64): "int64_val", np.dtype(np.float32): "float_val",
                     np.dtype(np.int32): "int_val", np.dtype(np.float64): "double_val"}
            getattr(proto, field[value.dtype]).extend(value.reshape(-1).tolist())
    return request
