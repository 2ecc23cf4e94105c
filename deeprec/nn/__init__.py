"""`deeprec.nn`: `tf.compat.v1.nn`, whose embedding lookups accept EmbeddingVariables.

The lookups are TensorFlow's own functions; deeprec registers dispatch
targets for EmbeddingVariable arguments (see deeprec/embedding/lookup.py).
DeepRec's fused lookups (`fused_embedding_lookup_sparse`,
`fused_safe_embedding_lookup_sparse`) come from deeprec/nn/fused_embedding.py,
its grouped lookups (`group_embedding_lookup_sparse`, `group_embedding_lookup`)
from deeprec/nn/group_embedding.py.
"""

import tensorflow as _tf

import deeprec.embedding.lookup

_STOCK = _tf.compat.v1.nn
globals().update({k: getattr(_STOCK, k) for k in dir(_STOCK) if not k.startswith("_")})

from deeprec.nn.fused_embedding import (  # noqa: E402  (after the stock names)
    fused_embedding_lookup_sparse,
    fused_safe_embedding_lookup_sparse,
)
from deeprec.nn.group_embedding import (  # noqa: E402
    group_embedding_lookup,
    group_embedding_lookup_sparse,
)


def __getattr__(name):
    return getattr(_STOCK, name)
