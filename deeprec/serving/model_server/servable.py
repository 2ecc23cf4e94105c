"""One loaded model version: its SessionGroup, its batcher and its in-flight requests.

A version is retired (unloaded) only after the last request using it has
finished, so a version swap never fails a request that already resolved it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from deeprec.serving.model_server.batching import Batcher
from deeprec.serving.model_server.config import BatchingParameters, ModelConfig
from deeprec.serving.model_server.errors import ServingError, from_tf_error_code, invalid
from deeprec.serving.model_server.metrics import Metrics
from deeprec.serving.model_server.session_group import SessionGroup

__all__ = ["DEFAULT_SIGNATURE", "Servable"]

DEFAULT_SIGNATURE = "serving_default"


class Servable:
    """Model `model.name` at `version`, loaded from `path`.

    Args:
      model: the model's config (name, session config).
      version: the version number.
      path: the version's SavedModel directory.
      tags: the MetaGraph tags to load.
      batching: batching parameters, or None to run each request alone.
      metrics: where batch sizes are recorded.
    """

    def __init__(self, model: ModelConfig, version: int, path: str, tags: Sequence[str],
                 batching: BatchingParameters | None, metrics: Metrics) -> None:
        self.name = model.name
        self.version = version
        self.path = path
        self.group = SessionGroup(path, tags, model.session)
        self.signatures: dict[str, meta_graph_pb2.SignatureDef] = self.group.signatures
        self._batcher = None
        if batching is not None:
            self._batcher = Batcher(batching, self.group.run,
                                    on_batch=lambda rows: metrics.observe_batch(self.name, rows),
                                    name=f"batch-{self.name}-{version}")
        self._in_flight = 0
        self._idle = threading.Condition()

    def signature(self, name: str) -> tuple[str, meta_graph_pb2.SignatureDef]:
        """(effective name, SignatureDef); an empty name means `serving_default`.

        Raises:
          ServingError: INVALID_ARGUMENT naming the model, version and the
            signatures it has, if there is no such signature.
        """
        name = name or DEFAULT_SIGNATURE
        signature = self.signatures.get(name)
        if signature is None:
            raise invalid(f"model {self.name!r} version {self.version} has no signature "
                          f"{name!r}; it has {sorted(self.signatures)}")
        return name, signature

    def run(self, signature_name: str, signature: meta_graph_pb2.SignatureDef,
            inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Runs `signature` on `inputs` (by input alias); returns the `outputs` aliases.

        Raises:
          ServingError: the graph rejected the values (its TensorFlow error
            code, e.g. INVALID_ARGUMENT), or batching refused the request.
        """
        feeds = {signature.inputs[alias].name: value for alias, value in inputs.items()}
        fetches = [signature.outputs[alias].name for alias in outputs]
        try:
            if self._batcher is not None:
                values = self._batcher.run(feeds, fetches)
            else:
                values = self.group.run(feeds, fetches)
        except tf.errors.OpError as err:
            raise ServingError(from_tf_error_code(err.error_code),
                               f"model {self.name!r} version {self.version} signature "
                               f"{signature_name!r}: {err.message}") from err
        return dict(zip(outputs, values, strict=True))

    def acquire(self) -> None:
        """Marks one more request in flight (the manager calls it under its lock)."""
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        """Marks a request finished."""
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def unload(self) -> None:
        """Waits for the requests in flight, then frees the session and batcher."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)
        if self._batcher is not None:
            self._batcher.stop()
        self.group.close()

