"""Serving: the TensorFlow-Serving-compatible model server.

`deeprec.serving.model_server` is `deeprec-model-server`: it serves
SavedModels holding EmbeddingVariables to unchanged TensorFlow Serving
clients over gRPC and REST, with DeepRec's SessionGroup (docs/model_server.md).
"""
