"""Field models (DeepFM, DLRM, DCN-V2): one embedding vector per feature, plus dense values.

Every categorical feature is a field with one `--embedding_dim` vector. A
sequence feature (a list of ids per row) is a field too: its ids go through
an ordinary categorical column, which takes the SparseTensor as a
multi-valent input, and the `embedding_column` averages their vectors.
`FieldModel` builds the fields and the dense input; a subclass adds the
interaction part (`head`).
"""

from __future__ import annotations

from modelzoo.common import features, layers
from modelzoo.common.model import Model
from modelzoo.common.tfapi import tf


def field_names(schema) -> tuple[str, ...]:
    """The features that become embedding fields: categorical, then sequence features."""
    return tuple(schema.categorical) + tuple(schema.sequence)


def field_embedding_columns(meta, args, names=None, dimension: int | None = None,
                            stddev: float | None = None) -> list:
    """One `embedding_column` (EV or hash bucket) per field in `names` (default
    `field_names(meta["schema"])`); sequence fields average their ids' vectors.

    `dimension` (default `--embedding_dim`) and `stddev` (of the initial
    vectors; default `features.embedding_column`'s) apply to every field.
    """
    names = field_names(meta["schema"]) if names is None else names
    return [features.embedding_column(features.categorical_column(meta, name, args), args,
                                      dimension=dimension, stddev=stddev)
            for name in names]


def field_embeddings(features_dict, columns, dimension: int):
    """`[batch, fields, dimension]`: each column's vector, fields in column-name order.

    `input_layer` concatenates the columns sorted by name, so the field order
    is the same in every graph built from the same columns.
    """
    flat = tf.feature_column.input_layer(features_dict, columns)
    return tf.reshape(flat, [-1, len(columns), dimension])


class FieldModel(Model):
    """A one-label model over the fields' vectors and the dense features.

    Subclasses implement `head`; `embedding_stddev` (None: the default of
    `features.embedding_column`) sets the fields' initial vectors.
    """

    embedding_stddev: float | None = None

    def __init__(self, args, meta):
        super().__init__(args, meta)
        self.embedding_columns = field_embedding_columns(meta, args,
                                                         stddev=self.embedding_stddev)

    def head(self, features_dict, fields, dense, training: bool):
        """`[batch]` logits from `fields` `[batch, n, dim]` and `dense` `[batch, m]` (None
        without dense features); `features_dict` for any further lookups."""
        raise NotImplementedError

    def logits(self, features_dict, training):
        with tf.variable_scope("embedding"):
            fields = field_embeddings(features_dict, self.embedding_columns,
                                      self.args.embedding_dim)
        dense = layers.dense_input(features_dict, self.meta)
        return {self.labels[0]: self.head(features_dict, fields, dense, training)}
