"""`deeprec-model-server`: TensorFlow Serving's APIs over SavedModels with EmbeddingVariables.

Existing TensorFlow Serving clients (gRPC `tensorflow.serving.PredictionService`
and `ModelService`, and the REST API) talk to it unchanged; DeepRec's
SessionGroup (`--session_num_per_group`, `--use_per_session_threads`) runs
several sessions over one copy of each model. See docs/model_server.md.

Modules: `flags` (command line), `config` (config files), `model_manager`
(versions, polling, warmup, hot swap), `session_group`, `batching`,
`prediction` (request semantics), `grpc_service`, `rest`, `metrics`.

It needs `tensorflow-serving-api==2.15.1`, installed with `--no-deps` (its
dependency on the `tensorflow` package would replace `tensorflow-cpu`).

Example (not run here: it needs a SavedModel on disk):
  deeprec-model-server --port=8500 --rest_api_port=8501 \\
      --model_name=wdl --model_base_path=result/demo/saved_model \\
      --session_num_per_group=2 --use_per_session_threads
"""

try:
    import tensorflow_serving.apis  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "deeprec-model-server needs the TensorFlow Serving API protos: "
        "pip install --no-deps tensorflow-serving-api==2.15.1") from err

from deeprec.serving.model_server.server import ModelServer, ServerOptions

__all__ = ["ModelServer", "ServerOptions"]
