"""`deeprec-model-server`'s command line: TensorFlow Serving's flags, plus DeepRec's.

Flags are written `--name=value` (or `--name value`); boolean flags also take
the bare `--name` for true. Unknown flags fail with their name.

Example:
  >>> options = parse_args(["--model_base_path=/models/wdl", "--rest_api_port=8501",
  ...                       "--session_num_per_group=2", "--use_per_session_threads"])
  >>> options.model_base_path, options.rest_api_port, options.use_per_session_threads
  ('/models/wdl', 8501, True)
"""

from __future__ import annotations

import argparse
import dataclasses

from deeprec.serving.model_server.server import ServerOptions

__all__ = ["make_parser", "parse_args"]

_HELP = {
    "port": "gRPC port (0: pick a free one)",
    "rest_api_port": "REST port (0: no REST API)",
    "host": "address to listen on (deeprec addition; TF Serving listens on all)",
    "model_name": "name of the model served from --model_base_path",
    "model_base_path": "directory of numbered SavedModel versions (the latest is served)",
    "model_config_file": "ModelServerConfig text file: several models, version policies "
                         "and labels (instead of --model_name/--model_base_path)",
    "file_system_poll_wait_seconds": "seconds between scans for new versions (<= 0: scan "
                                     "only at start)",
    "tensorflow_intra_op_parallelism": "threads per op (0: TensorFlow's choice)",
    "tensorflow_inter_op_parallelism": "threads running ops, per session of the group "
                                       "(0: TensorFlow's choice)",
    "session_num_per_group": "sessions in each model's SessionGroup (one model in memory)",
    "use_per_session_threads": "give each session of the group its own inter-op thread pool",
    "platform_config_file": "per-model session configs (user guide 3.39.3); overrides the "
                            "four flags above",
    "enable_batching": "merge concurrent requests into batches",
    "batching_parameters_file": "BatchingParameters text file (max_batch_size, "
                                "batch_timeout_micros, num_batch_threads, max_enqueued_batches)",
    "enable_model_warmup": "replay assets.extra/tf_serving_warmup_requests before serving "
                           "a version",
    "saved_model_tags": "comma-separated MetaGraph tags to load",
    "grpc_max_threads": "threads answering gRPC requests",
    "max_request_bytes": "largest request accepted (gRPC message or REST body); larger "
                         "ones fail with RESOURCE_EXHAUSTED / HTTP 413",
}


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser; every `ServerOptions` field is a flag."""
    parser = argparse.ArgumentParser(
        prog="deeprec-model-server",
        description="Serves SavedModels (with EmbeddingVariables) to TensorFlow Serving "
                    "clients over gRPC and REST, with DeepRec's SessionGroup.")
    for field in dataclasses.fields(ServerOptions):
        kind = type(field.default)
        if kind is bool:
            parser.add_argument(f"--{field.name}", type=_bool, nargs="?", const=True,
                                default=field.default, metavar="BOOL", help=_HELP[field.name])
        else:
            parser.add_argument(f"--{field.name}", type=kind, default=field.default,
                                help=f"{_HELP[field.name]} (default: %(default)s)")
    return parser


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    """`ServerOptions` from the command line (`argv`, default `sys.argv[1:]`).

    Raises:
      SystemExit: a flag is unknown or has a bad value (argparse prints which).
    """
    return ServerOptions(**vars(make_parser().parse_args(argv)))
