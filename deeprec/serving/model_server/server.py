"""The model server: models and versions, the gRPC services and the REST front end.

`ModelServer(options)` builds everything from `ServerOptions` (the flags of
`deeprec-model-server`, see `flags.py`); `start()` loads the models (and fails
if their first versions cannot be loaded), then listens; `stop()` stops
listening, lets requests in flight finish and unloads the models.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent import futures

import grpc
from tensorflow.core.protobuf import config_pb2

from deeprec.serving.model_server import config as config_lib
from deeprec.serving.model_server import grpc_service, warmup
from deeprec.serving.model_server.metrics import Metrics
from deeprec.serving.model_server.model_manager import ModelManager
from deeprec.serving.model_server.rest import RestServer

__all__ = ["ModelServer", "ServerOptions"]

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServerOptions:
    """The server's settings; each field is the flag of the same name."""

    port: int = 8500
    rest_api_port: int = 0
    host: str = "0.0.0.0"
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    file_system_poll_wait_seconds: float = 1.0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    session_num_per_group: int = 1
    use_per_session_threads: bool = False
    platform_config_file: str = ""
    enable_batching: bool = False
    batching_parameters_file: str = ""
    enable_model_warmup: bool = True
    saved_model_tags: str = "serve"
    grpc_max_threads: int = 64
    max_request_bytes: int = 64 << 20


def _read(path: str, flag: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise ValueError(f"--{flag}={path}: cannot read it: {err}") from err


def _models(options: ServerOptions) -> list[config_lib.ModelConfig]:
    if bool(options.model_base_path) == bool(options.model_config_file):
        raise ValueError("give exactly one of --model_base_path (one model) and "
                         "--model_config_file (a ModelServerConfig)")
    for flag in ("session_num_per_group", "tensorflow_intra_op_parallelism",
                 "tensorflow_inter_op_parallelism"):
        minimum = 1 if flag == "session_num_per_group" else 0
        if getattr(options, flag) < minimum:
            raise ValueError(f"--{flag} must be >= {minimum}, got {getattr(options, flag)}")
    if options.model_config_file:
        models = config_lib.parse_model_config(
            _read(options.model_config_file, "model_config_file"), options.model_config_file)
    else:
        models = [config_lib.ModelConfig(options.model_name, options.model_base_path)]
    if options.platform_config_file:
        sessions = config_lib.parse_platform_config(
            _read(options.platform_config_file, "platform_config_file"),
            options.platform_config_file)
        config_lib.apply_platform_config(models, sessions, options.platform_config_file)
    else:
        for model in models:
            model.session = config_lib.SessionConfig(
                options.session_num_per_group, options.use_per_session_threads,
                config_pb2.ConfigProto(
                    intra_op_parallelism_threads=options.tensorflow_intra_op_parallelism,
                    inter_op_parallelism_threads=options.tensorflow_inter_op_parallelism))
    return models


def _batching(options: ServerOptions) -> config_lib.BatchingParameters | None:
    if not options.enable_batching:
        if options.batching_parameters_file:
            raise ValueError("--batching_parameters_file needs --enable_batching")
        return None
    if not options.batching_parameters_file:
        return config_lib.BatchingParameters()
    return config_lib.parse_batching_parameters(
        _read(options.batching_parameters_file, "batching_parameters_file"),
        options.batching_parameters_file)


class ModelServer:
    """TensorFlow Serving's gRPC and REST APIs over SavedModels with EmbeddingVariables.

    Args:
      options: the settings. Port 0 picks a free port (see `grpc_port` and
        `rest_port` after `start()`); `rest_api_port=0` means no REST.

    Raises:
      ValueError/ConfigError: bad options or config files; the message names
        the flag or file and the value.

    Example (not run here: it needs a SavedModel on disk):
      server = ModelServer(ServerOptions(port=0, model_name="wdl",
                                         model_base_path="/models/wdl"))
      server.start()      # loads the latest version, then listens
      ...                 # clients call 127.0.0.1:server.grpc_port
      server.stop()
    """

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        if options.max_request_bytes < 1:
            raise ValueError(f"--max_request_bytes must be >= 1, got {options.max_request_bytes}")
        self.metrics = Metrics()
        tags = [t for t in options.saved_model_tags.split(",") if t]
        self.manager = ModelManager(
            _models(options), tags=tags, batching=_batching(options), metrics=self.metrics,
            warmup=self._warmup if options.enable_model_warmup else None,
            poll_wait_seconds=options.file_system_poll_wait_seconds)
        self._executor: futures.ThreadPoolExecutor | None = None
        self._grpc: grpc.Server | None = None
        self._rest: RestServer | None = None
        self.grpc_port = 0
        self.rest_port = 0

    def _warmup(self, servable) -> int:
        records = warmup.run_warmup(servable)
        if records:
            self.metrics.count_warmup(servable.name, records)
        return records

    def start(self) -> None:
        """Loads the models, then listens for gRPC (and REST) requests.

        Raises:
          RuntimeError: a model failed to load, or a port cannot be bound.
        """
        self.manager.start()
        try:
            self._executor = futures.ThreadPoolExecutor(self.options.grpc_max_threads,
                                                        thread_name_prefix="grpc")
            self._grpc = grpc.server(self._executor, options=[
                ("grpc.max_receive_message_length", self.options.max_request_bytes),
                ("grpc.max_send_message_length", -1)])
            grpc_service.add_services(self._grpc, self.manager, self.metrics)
            address = f"{self.options.host}:{self.options.port}"
            try:
                self.grpc_port = self._grpc.add_insecure_port(address)
            except RuntimeError as err:
                raise RuntimeError(f"cannot listen for gRPC on {address} (--port): {err}") from err
            self._grpc.start()
            if self.options.rest_api_port:
                try:
                    self._rest = RestServer(self.options.host, self.options.rest_api_port,
                                            self.manager, self.metrics,
                                            self.options.max_request_bytes)
                except OSError as err:
                    raise RuntimeError(f"cannot listen for REST on {self.options.host}:"
                                       f"{self.options.rest_api_port} (--rest_api_port): "
                                       f"{err}") from err
                self._rest.start()
                self.rest_port = self._rest.port
        except BaseException:
            self.stop()
            raise
        _log.info("serving %s: gRPC on %s:%d%s", self.manager.model_names, self.options.host,
                  self.grpc_port, f", REST on port {self.rest_port}" if self._rest else "")

    def stop(self, grace: float = 5.0) -> None:
        """Stops listening, waits up to `grace` seconds for requests, unloads the models."""
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.manager.stop()

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
