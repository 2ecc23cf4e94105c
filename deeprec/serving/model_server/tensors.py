"""Request tensors checked against a signature, and converted to and from protos/JSON.

Inputs arrive as `TensorProto`s (gRPC: typed fields or `tensor_content`) or
JSON values (REST). Both become numpy arrays checked against the signature's
`TensorInfo`s, so a wrong name, dtype or shape fails with INVALID_ARGUMENT
naming the input before anything runs.

Example:
  >>> from tensorflow.core.protobuf import meta_graph_pb2
  >>> info = meta_graph_pb2.TensorInfo(name="x:0", dtype=tf.float32.as_datatype_enum)
  >>> _ = info.tensor_shape.dim.add(size=-1)
  >>> json_to_array([1, 2.5], info, "input 'x'")
  array([1. , 2.5], dtype=float32)
  >>> json_to_array([[1]], info, "input 'x'")
  Traceback (most recent call last):
  ...
  deeprec.serving.model_server.errors.ServingError: input 'x': shape (1, 1) does not match ...
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from deeprec.serving.model_server.errors import invalid

__all__ = [
    "array_to_json",
    "array_to_tensor_proto",
    "check_shape",
    "json_to_array",
    "shape_text",
    "tensor_proto_to_array",
]


def _dtype(info: meta_graph_pb2.TensorInfo) -> tf.dtypes.DType:
    return tf.dtypes.as_dtype(info.dtype)


def shape_text(info: meta_graph_pb2.TensorInfo) -> str:
    """The signature shape as text, -1 for unknown dimensions (e.g. "(-1, 8)")."""
    if info.tensor_shape.unknown_rank:
        return "<any>"
    dims = [d.size for d in info.tensor_shape.dim]
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def check_shape(array: np.ndarray, info: meta_graph_pb2.TensorInfo, what: str) -> None:
    """Raises INVALID_ARGUMENT if `array`'s shape does not fit the signature's shape."""
    if info.tensor_shape.unknown_rank:
        return
    dims = [d.size for d in info.tensor_shape.dim]
    if len(dims) != array.ndim or any(
            d >= 0 and d != a for d, a in zip(dims, array.shape, strict=True)):
        raise invalid(f"{what}: shape {tuple(array.shape)} does not match the signature's "
                      f"{shape_text(info)}")


def tensor_proto_to_array(proto: tensor_pb2.TensorProto, info: meta_graph_pb2.TensorInfo,
                          what: str) -> np.ndarray:
    """A request `TensorProto` as a numpy array of the signature's dtype and shape.

    Raises:
      ServingError: INVALID_ARGUMENT for another dtype, a shape that does not
        fit, or contents that do not fill the shape.
    """
    expected = _dtype(info)
    if proto.dtype != expected.as_datatype_enum:
        try:
            got = tf.dtypes.as_dtype(proto.dtype).name
        except TypeError:
            got = f"dtype enum {proto.dtype}"
        raise invalid(f"{what}: expects dtype {expected.name}, got {got}")
    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError) as err:
        raise invalid(f"{what}: bad tensor contents for shape "
                      f"{[d.size for d in proto.tensor_shape.dim]}: {err}") from err
    check_shape(array, info, what)
    return array


def array_to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A response `TensorProto` (numbers in `tensor_content`, strings as `string_val`)."""
    return tf.make_tensor_proto(array)


def _decode_strings(value: Any, what: str) -> Any:
    if isinstance(value, list):
        return [_decode_strings(v, what) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise invalid(f"{what}: a JSON object value must be {{\"b64\": <base64 string>}}, "
                          f"got keys {sorted(value)}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as err:
            raise invalid(f"{what}: bad base64 in {{\"b64\": ...}}: {err}") from err
    if isinstance(value, str):
        return value.encode("utf-8")
    raise invalid(f"{what}: expects strings, got {type(value).__name__} {value!r}")


def json_to_array(value: Any, info: meta_graph_pb2.TensorInfo, what: str) -> np.ndarray:
    """A REST JSON value (nested lists of numbers, strings or `{"b64": ...}`) as an array.

    Raises:
      ServingError: INVALID_ARGUMENT for ragged lists, values of the wrong
        kind (a float for an integer input, a string for a number) or a shape
        that does not fit.
    """
    dtype = _dtype(info)
    if dtype == tf.string:
        try:
            array = np.array(_decode_strings(value, what), dtype=object)
        except ValueError as err:
            raise invalid(f"{what}: values do not form a rectangular array: {err}") from err
        if array.size and not all(isinstance(v, bytes) for v in array.flat):
            raise invalid(f"{what}: values do not form a rectangular array of strings")
    else:
        try:
            raw = np.array(value)
        except ValueError as err:
            raise invalid(f"{what}: values do not form a rectangular array: {err}") from err
        if raw.dtype == object or raw.dtype.kind in "USV":
            raise invalid(f"{what}: expects {dtype.name} numbers, got {str(value)[:80]}")
        if dtype.is_bool and raw.size and raw.dtype.kind != "b":
            raise invalid(f"{what}: expects true/false values, got {str(value)[:80]}")
        if dtype.is_integer and raw.dtype.kind == "f":
            raise invalid(f"{what}: expects {dtype.name} integers, got {str(value)[:80]}")
        array = raw.astype(dtype.as_numpy_dtype)
    check_shape(array, info, what)
    return array


def array_to_json(array: np.ndarray, name: str) -> Any:
    """An output array as JSON: nested lists; strings as text, or `{"b64"}` if `name` ends "_bytes".

    Example:
      >>> array_to_json(np.array([b"a", b"b"], dtype=object), "out_bytes")
      [{'b64': 'YQ=='}, {'b64': 'Yg=='}]
    """
    if array.dtype == object or array.dtype.kind == "S":
        as_b64 = name.endswith("_bytes")

        def convert(v):
            if isinstance(v, list):
                return [convert(x) for x in v]
            if as_b64:
                return {"b64": base64.b64encode(v).decode("ascii")}
            return v.decode("utf-8", errors="backslashreplace")
        return convert(array.tolist())
    return array.tolist()
