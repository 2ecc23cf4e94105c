"""`deeprec.nn`: `tf.compat.v1.nn`, whose embedding lookups accept EmbeddingVariables.

The lookups are TensorFlow's own functions; deeprec registers dispatch
targets for EmbeddingVariable arguments (see deeprec/embedding/lookup.py).
"""

import tensorflow as _tf

import deeprec.embedding.lookup

_STOCK = _tf.compat.v1.nn
globals().update({k: getattr(_STOCK, k) for k in dir(_STOCK) if not k.startswith("_")})


def __getattr__(name):
    return getattr(_STOCK, name)
