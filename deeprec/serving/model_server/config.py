"""What the server serves and how: models, version policies, sessions, batching.

Readers for TensorFlow Serving's config files, with DeepRec's additions:

- `--model_config_file`: a `ModelServerConfig` (`model_config_list { config {
  name base_path model_platform model_version_policy version_labels } }`)
  plus DeepRec's `model_id` (which `model_session_config` a model uses).
- `--platform_config_file`: user guide §3.39.3's `platform_configs`, whose
  `legacy_config.model_session_config[i]` configures the sessions of the model
  with `model_id` i (or the i-th model when no ids are given).
- `--batching_parameters_file`: `BatchingParameters` (`max_batch_size { value: 128 }` ...).

Example:
  >>> models = parse_model_config('''
  ...   model_config_list { config { name: "wdl" base_path: "/models/wdl"
  ...     model_platform: "tensorflow"
  ...     model_version_policy { specific { versions: 1 versions: 2 } } } }''')
  >>> models[0].name, models[0].version_policy.select([1, 2, 3])
  ('wdl', [1, 2])
  >>> parse_batching_parameters("max_batch_size { value: 64 }").max_batch_size
  64
"""

from __future__ import annotations

import dataclasses
import os

from google.protobuf import text_format
from tensorflow.core.protobuf import config_pb2

from deeprec.serving.model_server import textproto
from deeprec.serving.model_server.textproto import TextProtoError, one

__all__ = [
    "BatchingParameters",
    "ConfigError",
    "ModelConfig",
    "SessionConfig",
    "VersionPolicy",
    "apply_platform_config",
    "parse_batching_parameters",
    "parse_model_config",
    "parse_platform_config",
]

ConfigError = TextProtoError


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which of the versions on disk to serve: the `latest` N, `all`, or `specific` ones.

    Example:
      >>> VersionPolicy("latest", 2).select([3, 1, 7])
      [3, 7]
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, on_disk: list[int]) -> list[int]:
        """The versions to serve among `on_disk`, ascending."""
        available = sorted(on_disk)
        if self.kind == "all":
            return available
        if self.kind == "specific":
            return [v for v in available if v in self.versions]
        return available[-self.num_versions:]


@dataclasses.dataclass
class SessionConfig:
    """One model's SessionGroup: `session_num` members over one loaded model.

    `config` is the TensorFlow `ConfigProto` of the session (thread counts,
    graph options); `use_per_session_threads` gives each member its own
    inter-op thread pool (see `session_group.py`).
    """

    session_num: int = 1
    use_per_session_threads: bool = False
    config: config_pb2.ConfigProto = dataclasses.field(default_factory=config_pb2.ConfigProto)


@dataclasses.dataclass
class ModelConfig:
    """One served model: its name, version directory root and policies."""

    name: str
    base_path: str
    version_policy: VersionPolicy = dataclasses.field(default_factory=VersionPolicy)
    version_labels: dict[str, int] = dataclasses.field(default_factory=dict)
    model_id: int | None = None
    session: SessionConfig = dataclasses.field(default_factory=SessionConfig)


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """How concurrent requests are merged (TF Serving's `BatchingParameters` defaults)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = max(os.cpu_count() or 1, 1)
    max_enqueued_batches: int = 10


def _check_fields(message: textproto.Message, allowed: set[str], where: str) -> None:
    unknown = sorted(set(message) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unsupported field {unknown[0]!r} "
                          f"(supported: {', '.join(sorted(allowed))})")


def _version_policy(message: textproto.Message, where: str) -> VersionPolicy:
    _check_fields(message, {"latest", "all", "specific"}, where)
    if len(message) != 1 or len(next(iter(message.values()))) != 1:
        raise ConfigError(f"{where}: give exactly one of latest, all, specific")
    if "all" in message:
        return VersionPolicy("all")
    if "latest" in message:
        latest = message["latest"][0]
        _check_fields(latest, {"num_versions"}, f"{where}.latest")
        num = one(latest, "num_versions", 1, f"{where}.latest: ")
        if not isinstance(num, int) or num < 1:
            raise ConfigError(f"{where}.latest.num_versions must be >= 1, got {num!r}")
        return VersionPolicy("latest", num)
    specific = message["specific"][0]
    _check_fields(specific, {"versions"}, f"{where}.specific")
    versions = specific.get("versions", [])
    if not versions or not all(isinstance(v, int) for v in versions):
        raise ConfigError(f"{where}.specific.versions must list integer versions, got {versions}")
    return VersionPolicy("specific", versions=tuple(versions))


def _model(message: textproto.Message, where: str, config_dir: str) -> ModelConfig:
    _check_fields(message, {"name", "base_path", "model_platform", "model_version_policy",
                            "version_labels", "model_id"}, where)
    name = one(message, "name", "", where + ": ")
    base_path = one(message, "base_path", "", where + ": ")
    if not name or not base_path:
        raise ConfigError(f"{where}: needs a name and a base_path")
    platform = one(message, "model_platform", "tensorflow", where + ": ")
    if platform != "tensorflow":
        raise ConfigError(f"{where} ({name!r}): model_platform {platform!r} is not supported; "
                          "only 'tensorflow'")
    policy = message.get("model_version_policy")
    labels = {}
    for entry in message.get("version_labels", []):
        label, version = one(entry, "key", None, where), one(entry, "value", None, where)
        if not isinstance(label, str) or not isinstance(version, int):
            raise ConfigError(f"{where} ({name!r}): version_labels entries need a string key "
                              f"and an integer value, got {entry}")
        labels[label] = version
    return ModelConfig(
        name=name,
        base_path=os.path.join(config_dir, base_path),
        version_policy=_version_policy(policy[0], f"{where}.model_version_policy")
        if policy else VersionPolicy(),
        version_labels=labels,
        model_id=one(message, "model_id", None, where + ": "))


def parse_model_config(text: str, source: str = "<model_config>") -> list[ModelConfig]:
    """Reads a `ModelServerConfig` text file's `model_config_list`.

    Relative `base_path`s are taken relative to the file's directory.

    Raises:
      ConfigError: bad syntax, a missing name/base_path, a duplicate name,
        an unsupported field or policy; the message names it.
    """
    root = textproto.parse(text, source)
    _check_fields(root, {"model_config_list"}, source)
    config_list = one(root, "model_config_list", {}, source + ": ")
    _check_fields(config_list, {"config"}, f"{source}: model_config_list")
    config_dir = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else ""
    models = [_model(m, f"{source}: config[{i}]", config_dir)
              for i, m in enumerate(config_list.get("config", []))]
    names = [m.name for m in models]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{source}: model name {name!r} is configured twice")
    if not models:
        raise ConfigError(f"{source}: model_config_list has no config entries")
    return models


def _session_config(message: textproto.Message, where: str) -> SessionConfig:
    # cpusets and gpu_ids need native thread pinning and GPUs: refuse rather than ignore.
    _check_fields(message, {"session_config", "session_num"}, where)
    session = dict(one(message, "session_config", {}, where + ": "))
    use_per_session_threads = bool(one(session, "use_per_session_threads", False, where + ": "))
    # DeepRec-only (GPU stream) settings that stock ConfigProto lacks; no effect on CPU.
    for deeprec_only in ("use_per_session_threads", "use_per_session_stream"):
        session.pop(deeprec_only, None)
    config = config_pb2.ConfigProto()
    try:
        text_format.Parse(textproto.to_text(session), config)
    except text_format.ParseError as err:
        raise ConfigError(f"{where}.session_config: {err}") from err
    num = one(message, "session_num", 1, where + ": ")
    if not isinstance(num, int) or num < 1:
        raise ConfigError(f"{where}.session_num must be >= 1, got {num!r}")
    return SessionConfig(num, use_per_session_threads, config)


def parse_platform_config(text: str, source: str = "<platform_config>") -> list[SessionConfig]:
    """Reads §3.39.3's platform config: one `SessionConfig` per `model_session_config`.

    Raises:
      ConfigError: bad syntax, a platform other than "tensorflow", no
        `legacy_config.model_session_config`, or an unsupported field
        (`cpusets`, `gpu_ids`: this server runs on CPU without pinning).
    """
    root = textproto.parse(text, source)
    _check_fields(root, {"platform_configs"}, source)
    sessions: list[SessionConfig] = []
    for entry in root.get("platform_configs", []):
        key = one(entry, "key", None, source + ": ")
        if key != "tensorflow":
            raise ConfigError(f"{source}: platform {key!r} is not supported; only 'tensorflow'")
        adapter = one(one(entry, "value", {}, source + ": "), "source_adapter_config", {},
                      source + ": ")
        for name, bodies in adapter.items():
            for body in bodies:
                legacy = one(body, "legacy_config", {}, f"{source}: {name}: ")
                for i, msg in enumerate(legacy.get("model_session_config", [])):
                    sessions.append(_session_config(msg, f"{source}: model_session_config[{i}]"))
    if not sessions:
        raise ConfigError(f"{source}: no platform_configs ... legacy_config.model_session_config")
    return sessions


def apply_platform_config(models: list[ModelConfig], sessions: list[SessionConfig],
                          source: str = "<platform_config>") -> None:
    """Gives each model the session config at its `model_id` (or its position).

    Raises:
      ConfigError: a model's index has no `model_session_config`.
    """
    for position, model in enumerate(models):
        index = model.model_id if model.model_id is not None else position
        if not 0 <= index < len(sessions):
            raise ConfigError(f"{source}: model {model.name!r} (model_id {index}) has no "
                              f"model_session_config; the file has {len(sessions)}")
        model.session = sessions[index]


def parse_batching_parameters(text: str, source: str = "<batching_parameters>"
                              ) -> BatchingParameters:
    """Reads a `BatchingParameters` text file (wrapped `{ value: N }` or plain `N`).

    Raises:
      ConfigError: bad syntax, a non-positive value, or an unsupported field
        (the message lists the supported ones).
    """
    root = textproto.parse(text, source)
    fields = {f.name for f in dataclasses.fields(BatchingParameters)}
    _check_fields(root, fields, source)
    values = {}
    for name in fields & set(root):
        value = one(root, name, None, source + ": ")
        if isinstance(value, dict):
            _check_fields(value, {"value"}, f"{source}: {name}")
            value = one(value, "value", None, f"{source}: {name}: ")
        minimum = 0 if name == "batch_timeout_micros" else 1
        if not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{source}: {name} must be an integer >= {minimum}, got {value!r}")
        values[name] = value
    return BatchingParameters(**values)
