"""`tensorflow.python.ops.embedding_ops` plus DeepRec's fused lookups (§3.10.3).

Every name of TensorFlow's module is its own object here; the EV-aware
behaviour of its lookups comes from TensorFlow's type dispatch.

Example:
  >>> from deeprec.python.ops import embedding_ops
  >>> embedding_ops.fused_safe_embedding_lookup_sparse.__module__
  'deeprec.nn.fused_embedding'
"""

from tensorflow.python.ops import embedding_ops as _stock

from deeprec.nn.fused_embedding import (
    fused_embedding_lookup_sparse,
    fused_safe_embedding_lookup_sparse,
)

globals().update({k: getattr(_stock, k) for k in dir(_stock)
                  if not k.startswith("__") and k not in globals()})

__all__ = ["fused_embedding_lookup_sparse", "fused_safe_embedding_lookup_sparse"]


def __getattr__(name):
    return getattr(_stock, name)
