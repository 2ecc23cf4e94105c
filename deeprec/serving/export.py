"""Serving graphs look EmbeddingVariables up without inserting ids.

A training lookup inserts unseen ids into the table; a serving graph must not
(the table would grow with every new id a client sends, and the answers would
depend on request order). `KvResourceGather` and `KvResourceGatherWithCounts`
take `is_inference=True` for that: unseen ids then read the variable's
default value, and ids not yet admitted by a feature filter read
`default_value_no_permission`.

Once deeprec is imported, every MetaGraphDef that a SavedModel builder saves
with the "serve" tag (`SavedModelBuilder.add_meta_graph[_and_variables]`,
and so `Estimator.export_saved_model` in PREDICT mode) gets its lookups
marked. `mark_inference_lookups` does the same to any GraphDef; the serving
processor applies it again to whatever it loads.
"""

from tensorflow.core.framework import graph_pb2
from tensorflow.python.saved_model import builder_impl, tag_constants

# EmbeddingVariable lookups that insert ids unless is_inference is set.
INSERTING_LOOKUPS = ("KvResourceGather", "KvResourceGatherWithCounts")


def _mark_nodes(nodes) -> int:
    changed = 0
    for node in nodes:
        if node.op in INSERTING_LOOKUPS and not node.attr["is_inference"].b:
            node.attr["is_inference"].b = True
            changed += 1
    return changed


def mark_inference_lookups(graph_def: graph_pb2.GraphDef) -> int:
    """Sets `is_inference=True` on the EmbeddingVariable lookups of `graph_def`.

    Functions in the graph's library are rewritten too. Use it on a GraphDef
    you serve yourself (e.g. a frozen graph); SavedModels saved with the
    "serve" tag are already marked.

    Args:
      graph_def: the GraphDef, changed in place.

    Returns:
      The number of nodes changed.

    Example:
      >>> import deeprec as tf
      >>> from deeprec.serving import mark_inference_lookups
      >>> with tf.Graph().as_default() as g:
      ...     ev = tf.get_embedding_variable("served", embedding_dim=4)
      ...     emb = tf.nn.embedding_lookup(ev, tf.constant([1, 2], tf.int64))
      >>> graph_def = g.as_graph_def()
      >>> mark_inference_lookups(graph_def)
      1
      >>> mark_inference_lookups(graph_def)
      0
    """
    changed = _mark_nodes(graph_def.node)
    for function in graph_def.library.function:
        changed += _mark_nodes(function.node_def)
    return changed


_original_tag_and_add = builder_impl._SavedModelBuilder._tag_and_add_meta_graph


def _tag_and_add_meta_graph(self, meta_graph_def, tags, signature_def_map):
    if tag_constants.SERVING in tags:
        mark_inference_lookups(meta_graph_def.graph_def)
    return _original_tag_and_add(self, meta_graph_def, tags, signature_def_map)


def _install_export_hook() -> None:
    """Makes SavedModel builders mark the lookups of "serve" meta graphs (idempotent).

    Called when deeprec is imported. Every builder (`SavedModelBuilder`, the
    Estimator's) adds its meta graphs through this one method of TensorFlow's
    base builder class.
    """
    builder_impl._SavedModelBuilder._tag_and_add_meta_graph = _tag_and_add_meta_graph
