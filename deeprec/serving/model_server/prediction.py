"""TensorFlow Serving's request semantics, over protos, for one resolved model version.

Used by the gRPC service, by the REST front end (after JSON is turned into
arrays) and by warmup. The rules follow TensorFlow Serving:

- an empty `signature_name` means `serving_default`;
- Predict needs exactly the signature's inputs (each with its dtype and a
  shape that fits), `output_filter` picks outputs (all when empty);
- Classify and Regress need a signature whose `method_name` is
  `tensorflow/serving/classify` (outputs `classes` and/or `scores`) or
  `tensorflow/serving/regress` (output `outputs`), fed serialized
  `tf.Example`s through its one string input;
- responses echo the model name, the version that answered and the signature.

Errors are INVALID_ARGUMENT naming the model, signature and input (where
TensorFlow Serving answers FAILED_PRECONDITION for an unknown signature, this
server answers INVALID_ARGUMENT: both are HTTP 400).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from deeprec.serving.model_server import tensors
from deeprec.serving.model_server.errors import invalid
from deeprec.serving.model_server.servable import Servable

__all__ = [
    "CLASSIFY_METHOD",
    "REGRESS_METHOD",
    "check_inputs",
    "classify",
    "metadata",
    "output_names",
    "predict",
    "regress",
    "serialized_examples",
]

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def _spec(servable: Servable, signature_name: str | None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name)
    spec.version.value = servable.version
    if signature_name is not None:
        spec.signature_name = signature_name
    return spec


def _where(servable: Servable, signature_name: str) -> str:
    return f"model {servable.name!r} signature {signature_name!r}"


def check_inputs(servable: Servable, signature_name: str,
                 signature: meta_graph_pb2.SignatureDef, names: Iterable[str]) -> None:
    """Raises INVALID_ARGUMENT unless `names` are exactly the signature's inputs."""
    given, expected = set(names), set(signature.inputs)
    if given != expected:
        parts = []
        if given - expected:
            parts.append(f"unknown input(s) {sorted(given - expected)}")
        if expected - given:
            parts.append(f"missing input(s) {sorted(expected - given)}")
        raise invalid(f"{_where(servable, signature_name)}: {'; '.join(parts)} "
                      f"(the signature takes {sorted(expected)})")


def output_names(servable: Servable, signature_name: str,
                 signature: meta_graph_pb2.SignatureDef, requested: Iterable[str]) -> list[str]:
    """The outputs to fetch: `requested` (checked, duplicates dropped) or all, sorted."""
    requested = list(dict.fromkeys(requested))
    unknown = [n for n in requested if n not in signature.outputs]
    if unknown:
        raise invalid(f"{_where(servable, signature_name)}: unknown output(s) {unknown} in "
                      f"output_filter (the signature has {sorted(signature.outputs)})")
    return requested or sorted(signature.outputs)


def predict(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """Answers a PredictRequest with `servable`.

    Raises:
      ServingError: INVALID_ARGUMENT for an unknown signature, input or
        output, or a wrong dtype or shape; the run's error otherwise.
    """
    name, signature = servable.signature(request.model_spec.signature_name)
    check_inputs(servable, name, signature, request.inputs)
    arrays = {alias: tensors.tensor_proto_to_array(
                  proto, signature.inputs[alias], f"{_where(servable, name)} input {alias!r}")
              for alias, proto in request.inputs.items()}
    outputs = servable.run(name, signature, arrays,
                           output_names(servable, name, signature, request.output_filter))
    response = predict_pb2.PredictResponse(model_spec=_spec(servable, name))
    for alias, value in outputs.items():
        response.outputs[alias].CopyFrom(tensors.array_to_tensor_proto(value))
    return response


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """The `tf.Example`s of a Classify/Regress `Input`, serialized (context merged in).

    Example:
      >>> request_input = input_pb2.Input()
      >>> _ = request_input.example_list.examples.add()
      >>> serialized_examples(request_input)
      array([b''], dtype=object)
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        # Parsing concatenated serializations merges them: the context's
        # features, overridden by the example's own.
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in with_context.examples]
    else:
        raise invalid("the request's input is empty: give example_list or "
                      "example_list_with_context")
    if not examples:
        raise invalid("the request's input has no examples")
    return np.array(examples, dtype=object)


def _examples_signature(servable: Servable, signature_name: str, method: str
                        ) -> tuple[str, meta_graph_pb2.SignatureDef]:
    name, signature = servable.signature(signature_name)
    if signature.method_name != method:
        raise invalid(f"{_where(servable, name)}: {method.rsplit('/', 1)[1]} needs a signature "
                      f"with method_name {method!r}; it has {signature.method_name!r}")
    if len(signature.inputs) != 1:
        raise invalid(f"{_where(servable, name)}: expects one input of serialized examples, "
                      f"has {sorted(signature.inputs)}")
    return name, signature


def classify(servable: Servable, request: classification_pb2.ClassificationRequest
             ) -> classification_pb2.ClassificationResponse:
    """Answers a ClassificationRequest (signature outputs `classes` and/or `scores`).

    Raises:
      ServingError: INVALID_ARGUMENT for a signature that is not a
        classification signature, an empty input or outputs of bad shape.
    """
    name, signature = _examples_signature(servable, request.model_spec.signature_name,
                                          CLASSIFY_METHOD)
    wanted = [n for n in ("classes", "scores") if n in signature.outputs]
    if not wanted:
        raise invalid(f"{_where(servable, name)}: a classification signature needs an output "
                      f"'classes' or 'scores'; it has {sorted(signature.outputs)}")
    examples = serialized_examples(request.input)
    outputs = servable.run(name, signature, {next(iter(signature.inputs)): examples}, wanted)
    count = len(examples)
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for label, value in (("classes", classes), ("scores", scores)):
        if value is not None and (value.ndim not in (1, 2) or value.shape[0] != count):
            raise invalid(f"{_where(servable, name)}: output {label!r} has shape "
                          f"{value.shape}; expected [{count}, classes]")
    response = classification_pb2.ClassificationResponse(model_spec=_spec(servable, name))
    for i in range(count):
        classification = response.result.classifications.add()
        row_classes = None if classes is None else np.reshape(classes[i], [-1])
        row_scores = None if scores is None else np.reshape(scores[i], [-1])
        for j in range(len(row_classes if row_classes is not None else row_scores)):
            entry = classification.classes.add()
            if row_classes is not None:
                entry.label = row_classes[j].decode("utf-8", errors="replace")
            if row_scores is not None:
                entry.score = float(row_scores[j])
    return response


def regress(servable: Servable, request: regression_pb2.RegressionRequest
            ) -> regression_pb2.RegressionResponse:
    """Answers a RegressionRequest (signature output `outputs`, one value per example).

    Raises:
      ServingError: INVALID_ARGUMENT for a signature that is not a regression
        signature, an empty input or outputs of bad shape.
    """
    name, signature = _examples_signature(servable, request.model_spec.signature_name,
                                          REGRESS_METHOD)
    if "outputs" not in signature.outputs:
        raise invalid(f"{_where(servable, name)}: a regression signature needs an output "
                      f"'outputs'; it has {sorted(signature.outputs)}")
    examples = serialized_examples(request.input)
    values = servable.run(name, signature, {next(iter(signature.inputs)): examples},
                          ["outputs"])["outputs"]
    if values.size != len(examples):
        raise invalid(f"{_where(servable, name)}: output 'outputs' has shape {values.shape}; "
                      f"expected one value per example ({len(examples)})")
    response = regression_pb2.RegressionResponse(model_spec=_spec(servable, name))
    for value in values.reshape(-1):
        response.result.regressions.add(value=float(value))
    return response


def metadata(servable: Servable, request: get_model_metadata_pb2.GetModelMetadataRequest
             ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """Answers GetModelMetadata: the version's signature defs under "signature_def".

    Raises:
      ServingError: INVALID_ARGUMENT if `metadata_field` is empty or names
        anything but "signature_def".
    """
    fields = list(request.metadata_field)
    if not fields:
        raise invalid("GetModelMetadataRequest.metadata_field is empty; ask for 'signature_def'")
    unsupported = [f for f in fields if f != "signature_def"]
    if unsupported:
        raise invalid(f"metadata field(s) {unsupported} are not supported; only 'signature_def'")
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=_spec(servable, None))
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signatures.items():
        signatures.signature_def[key].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signatures)
    return response
