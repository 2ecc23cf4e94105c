"""Serving: DeepRec's processor library, inference-mode exports and the model server.

`processor_library()` is the path of `libserving_processor.so`, the C API of
user guide §3.38 (see docs/serving_processor.md); `predict_pb2` holds its
request and response messages. SavedModels exported with the "serve" tag
look EmbeddingVariables up without inserting ids (`mark_inference_lookups`).
`deeprec.serving.model_server` is `deeprec-model-server`, which serves
SavedModels to unchanged TensorFlow Serving clients over gRPC and REST
(docs/model_server.md).

Example:
  >>> from deeprec import serving
  >>> serving.processor_library().endswith("libserving_processor.so")
  True
"""

from deeprec.serving.export import mark_inference_lookups
from deeprec.serving.library import processor_library

__all__ = ["mark_inference_lookups", "processor_library"]
