"""TF 1.x contrib `embedding_ops`: `safe_embedding_lookup_sparse` and the fused lookup."""

from tensorflow.python.ops import embedding_ops

from deeprec.nn.fused_embedding import fused_safe_embedding_lookup_sparse

__all__ = ["fused_safe_embedding_lookup_sparse", "safe_embedding_lookup_sparse"]


def safe_embedding_lookup_sparse(embedding_weights, sparse_ids, sparse_weights=None,
                                 combiner=None, default_id=None, name=None,
                                 partition_strategy="div", max_norm=None):
    """Embedding lookup that tolerates empty rows and invalid (< 0) ids.

    As TF 1.x contrib's: `combiner` defaults to "mean". `embedding_weights`
    may be an EmbeddingVariable, a list of variables or a partitioned one.

    Example:
      >>> import deeprec as tf
      >>> from deeprec.contrib import layers
      >>> ev = tf.get_embedding_variable("contrib_doc", embedding_dim=2)
      >>> ids = tf.SparseTensor([[0, 0], [2, 0]], tf.constant([4, -1], tf.int64), [3, 1])
      >>> layers.safe_embedding_lookup_sparse(ev, ids).shape.as_list()
      [3, 2]
    """
    return embedding_ops.safe_embedding_lookup_sparse(
        embedding_weights, sparse_ids, sparse_weights=sparse_weights,
        combiner=combiner or "mean", default_id=default_id, name=name,
        partition_strategy=partition_strategy, max_norm=max_norm)
