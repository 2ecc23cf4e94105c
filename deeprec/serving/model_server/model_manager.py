"""Model versions: discovery, loading, warmup, hot swap and lookup for requests.

Each model's `base_path` holds numbered version directories (a SavedModel
each). The manager scans them at start and then every
`--file_system_poll_wait_seconds`, picks the versions its version policy
wants, and for each new one loads it, replays its warmup records, and only
then makes it servable; versions no longer wanted are removed from lookup
first and unloaded once their last request has finished. A request resolves
its version (empty = the latest available, a number, or a label) under the
manager's lock and holds it until it finishes: a swap fails no request.

As in TensorFlow Serving, a version that fails to load is reported
(GetModelStatus: END with the error) and not retried, and the versions
serving before stay until a wanted version is available; write a new version
to a temporary directory and rename it into `base_path` so that a
half-written version is never seen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence

from tensorflow_serving.apis import get_model_status_pb2

from deeprec.serving.model_server.config import BatchingParameters, ModelConfig
from deeprec.serving.model_server.errors import not_found
from deeprec.serving.model_server.metrics import Metrics
from deeprec.serving.model_server.servable import Servable

__all__ = ["ModelManager", "State"]

State = get_model_status_pb2.ModelVersionStatus.State

_log = logging.getLogger(__name__)


def versions_on_disk(base_path: str) -> dict[int, str]:
    """`{version: path}` of the numbered SavedModel directories under `base_path`."""
    found = {}
    for entry in os.listdir(base_path):
        path = os.path.join(base_path, entry)
        if entry.isdigit() and (os.path.isfile(os.path.join(path, "saved_model.pb")) or
                                os.path.isfile(os.path.join(path, "saved_model.pbtxt"))):
            found[int(entry)] = path
    return found


class _Model:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.serving: dict[int, Servable] = {}
        self.states: dict[int, tuple[int, str]] = {}  # version -> (State, error message)
        self.scan_error: str | None = None


class ModelManager:
    """Serves the versions of `models` that their policies select.

    Args:
      models: the models to serve.
      tags: the MetaGraph tags to load.
      batching: batching parameters, or None.
      metrics: server metrics.
      warmup: `warmup(servable) -> records replayed`, run before a version
        is served; raises to fail the load.
      poll_wait_seconds: seconds between scans of the base paths; <= 0
        scans only at start.
    """

    def __init__(self, models: Sequence[ModelConfig], *, tags: Sequence[str],
                 batching: BatchingParameters | None, metrics: Metrics,
                 warmup: Callable[[Servable], int] | None, poll_wait_seconds: float) -> None:
        self._models = {m.name: _Model(m) for m in models}
        self._tags = list(tags)
        self._batching = batching
        self._metrics = metrics
        self._warmup = warmup
        self._poll_wait = poll_wait_seconds
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._poll_lock = threading.Lock()  # one scan at a time (poller vs. start)
        self._poller: threading.Thread | None = None

    @property
    def model_names(self) -> list[str]:
        """The configured model names."""
        return list(self._models)

    def start(self) -> None:
        """Loads what the policies select now, then polls in the background.

        Raises:
          RuntimeError: a model's initial versions failed to load (every
            failure is named), as TensorFlow Serving refuses to start then.
        """
        failures = self.poll()
        if failures:
            self.stop()
            raise RuntimeError("models failed to load:\n  " + "\n  ".join(failures))
        if self._poll_wait > 0:
            self._poller = threading.Thread(target=self._poll_loop, name="version-poller",
                                            daemon=True)
            self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stopped.wait(self._poll_wait):
            self.poll()

    def poll(self) -> list[str]:
        """Scans every base path once and applies the changes; returns load failures."""
        failures = []
        with self._poll_lock:
            for model in self._models.values():
                if self._stopped.is_set():
                    break
                failures += self._update(model)
        return failures

    def _update(self, model: _Model) -> list[str]:
        name = model.config.name
        try:
            on_disk = versions_on_disk(model.config.base_path)
        except OSError as err:
            message = f"cannot list base path of model {name!r}: {err}"
            if model.scan_error != message:  # log a persisting problem once
                _log.error("%s", message)
            model.scan_error = message
            return []
        model.scan_error = None
        wanted = model.config.version_policy.select(list(on_disk))
        if not wanted and not model.serving:
            _log.warning("model %r: no version directories under %s", name,
                         model.config.base_path)
        failures = []
        # Newest first: with a "latest" policy the version that will serve is ready soonest.
        for version in sorted(wanted, reverse=True):
            failed_before = model.states.get(version, (0, ""))[1]
            if version in model.serving or failed_before:
                continue  # failed loads are not retried
            failure = self._load(model, version, on_disk[version])
            if failure:
                failures.append(failure)
        # Availability first: old versions go only once a wanted one serves, so
        # a broken (or deleted) newest version leaves the previous one serving.
        if any(v in model.serving for v in wanted):
            for version in [v for v in model.serving if v not in wanted]:
                self._unload(model, version)
        return failures

    def _set_state(self, model: _Model, version: int, state: int, error: str = "") -> None:
        with self._lock:
            model.states[version] = (state, error)

    def _load(self, model: _Model, version: int, path: str) -> str | None:
        name = model.config.name
        self._set_state(model, version, State.LOADING)
        _log.info("model %r: loading version %d from %s", name, version, path)
        servable = None
        try:
            servable = Servable(model.config, version, path, self._tags, self._batching,
                                self._metrics)
            if self._warmup is not None:
                records = self._warmup(servable)
                if records:
                    _log.info("model %r version %d: replayed %d warmup records", name,
                              version, records)
        except Exception as err:  # any failure is this version's, reported in its status
            if servable is not None:
                servable.unload()
            message = f"model {name!r} version {version} ({path}): {type(err).__name__}: {err}"
            _log.error("failed to load %s", message)
            self._set_state(model, version, State.END, message)
            return message
        with self._lock:
            model.serving[version] = servable
            model.states[version] = (State.AVAILABLE, "")
            self._metrics.set_available_versions(name, len(model.serving))
        _log.info("model %r: serving version %d", name, version)
        return None

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            servable = model.serving.pop(version)
            model.states[version] = (State.UNLOADING, "")
            self._metrics.set_available_versions(model.config.name, len(model.serving))
        servable.unload()  # waits for the version's requests in flight
        self._set_state(model, version, State.END)
        _log.info("model %r: unloaded version %d", model.config.name, version)

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise not_found(f"model {name!r} is not served (serving: {sorted(self._models)})")
        return model

    @staticmethod
    def _labelled_version(model: _Model, label: str) -> int:
        if label not in model.config.version_labels:
            raise not_found(f"model {model.config.name!r} has no version label {label!r}")
        return model.config.version_labels[label]

    @contextlib.contextmanager
    def servable(self, name: str, version: int | None = None,
                 label: str | None = None) -> Iterator[Servable]:
        """The servable for a request, held until the `with` block ends.

        Args:
          name: the model name.
          version: a version number, or None for the latest available.
          label: a version label from the config (when `version` is None).

        Raises:
          ServingError: NOT_FOUND for an unknown model, label or version, or
            a model with no version available (yet).
        """
        model = self._model(name)
        with self._lock:
            if label:
                version = self._labelled_version(model, label)
            if version is None:
                if not model.serving:
                    raise not_found(f"model {name!r} has no version available"
                                    + (f" ({model.scan_error})" if model.scan_error else ""))
                servable = model.serving[max(model.serving)]
            else:
                servable = model.serving.get(version)
                if servable is None:
                    raise not_found(f"model {name!r} version {version} is not available "
                                    f"(available: {sorted(model.serving)})")
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def status(self, name: str, version: int | None = None,
               label: str | None = None) -> list[tuple[int, int, str]]:
        """`[(version, State, error message)]` of a model, or of one version/label.

        Raises:
          ServingError: NOT_FOUND for an unknown model, version or label.
        """
        model = self._model(name)
        with self._lock:
            if label:
                version = self._labelled_version(model, label)
            states = dict(model.states)
        if version is not None:
            if version not in states:
                raise not_found(f"model {name!r} has no version {version} "
                                f"(known: {sorted(states)})")
            states = {version: states[version]}
        if not states:
            raise not_found(f"model {name!r} has no versions yet under "
                            f"{model.config.base_path}")
        return [(v, s, e) for v, (s, e) in sorted(states.items(), reverse=True)]

    def stop(self) -> None:
        """Stops polling and unloads every version (after its requests finish)."""
        self._stopped.set()
        if self._poller is not None:
            self._poller.join()
        with self._poll_lock:
            for model in self._models.values():
                for version in list(model.serving):
                    self._unload(model, version)
