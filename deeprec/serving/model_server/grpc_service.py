"""gRPC: `tensorflow.serving.PredictionService` and `tensorflow.serving.ModelService`.

Predict, Classify, Regress and GetModelMetadata are answered by the version
the request's `model_spec` selects (empty version: the latest; or
`version_label`); GetModelStatus reports the versions' states. MultiInference
and HandleReloadConfigRequest answer UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    status_pb2,
)

from deeprec.serving.model_server import prediction
from deeprec.serving.model_server.errors import ServingError, invalid
from deeprec.serving.model_server.metrics import Metrics
from deeprec.serving.model_server.model_manager import ModelManager

__all__ = ["add_services", "spec_target"]

_log = logging.getLogger(__name__)


def spec_target(spec: model_pb2.ModelSpec) -> tuple[str, int | None, str | None]:
    """(name, version or None, label or None) that a `ModelSpec` asks for.

    Example:
      >>> spec = model_pb2.ModelSpec(name="wdl", version_label="stable")
      >>> spec_target(spec)
      ('wdl', None, 'stable')
    """
    if not spec.name:
        raise invalid("model_spec.name is empty")
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.name, spec.version.value, None
    if choice == "version_label":
        return spec.name, None, spec.version_label
    return spec.name, None, None


class _Service:
    def __init__(self, manager: ModelManager, metrics: Metrics) -> None:
        self.manager = manager
        self.metrics = metrics

    def call(self, api: str, request: Any, context: grpc.ServicerContext,
             answer: Callable[[], Any]) -> Any:
        """Runs `answer()`, turning errors into gRPC statuses and recording metrics."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return answer()
        except ServingError as err:
            code = err.code
            context.abort(err.code, err.message)
        except Exception as err:  # a server bug: report it, keep serving
            _log.exception("%s failed", api)
            code = grpc.StatusCode.INTERNAL
            context.abort(code, f"{api}: internal error: {type(err).__name__}: {err}")
        finally:
            name = request.model_spec.name
            model = name if name in self.manager.model_names else "_unknown"
            self.metrics.observe_request(model, api, "grpc", code.name,
                                         time.perf_counter() - start)

    def with_servable(self, api: str, request: Any, context: grpc.ServicerContext,
                      answer: Callable[[Any], Any]) -> Any:
        """`call` with the version the request's model_spec selects."""
        def run():
            name, version, label = spec_target(request.model_spec)
            with self.manager.servable(name, version, label) as servable:
                return answer(servable)
        return self.call(api, request, context, run)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer, _Service):
    """`tensorflow.serving.PredictionService` over the manager's models."""

    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        return self.with_servable("predict", request, context,
                                  lambda s: prediction.predict(s, request))

    def Classify(self, request, context):  # noqa: N802
        return self.with_servable("classify", request, context,
                                  lambda s: prediction.classify(s, request))

    def Regress(self, request, context):  # noqa: N802
        return self.with_servable("regress", request, context,
                                  lambda s: prediction.regress(s, request))

    def GetModelMetadata(self, request, context):  # noqa: N802
        return self.with_servable("metadata", request, context,
                                  lambda s: prediction.metadata(s, request))

    def MultiInference(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "MultiInference is not supported by deeprec-model-server; "
                      "send Classify or Regress requests")


def status_response(manager: ModelManager, request: get_model_status_pb2.GetModelStatusRequest
                    ) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus's answer: every known version (newest first), or the one asked for."""
    name, version, label = spec_target(request.model_spec)
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state, error in manager.status(name, version, label):
        entry = response.model_version_status.add(version=number, state=state)
        entry.status.SetInParent()  # present even when OK, as TensorFlow Serving answers
        if error:  # error_code 2 is tensorflow.error.UNKNOWN: a load error keeps no code
            entry.status.CopyFrom(status_pb2.StatusProto(error_code=2, error_message=error))
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer, _Service):
    """`tensorflow.serving.ModelService`: GetModelStatus."""

    def GetModelStatus(self, request, context):  # noqa: N802
        return self.call("status", request, context,
                         lambda: status_response(self.manager, request))

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest is not supported yet; restart the server "
                      "with the new --model_config_file")


def add_services(server: grpc.Server, manager: ModelManager, metrics: Metrics) -> None:
    """Registers both services on `server`."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager, metrics),
                                                              server)

