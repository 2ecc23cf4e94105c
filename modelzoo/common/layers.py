"""Graph pieces several models share: the dense-feature input and the output logit."""

from __future__ import annotations

from modelzoo.common import features
from modelzoo.common.tfapi import tf


def dense_input(features_dict, meta, names=None):
    """`[batch, dense features]` of `names` (default: all of the schema's), log1p and
    standardized as the meta says; None when there are none."""
    columns = features.dense_columns(meta, names)
    if not columns:
        return None
    return tf.feature_column.input_layer(features_dict, columns)


def logit_layer(net, seed: int, name: str = "logit"):
    """A linear layer to one unit, returned as `[batch]` logits."""
    out = tf.layers.dense(net, 1, name=name,
                          kernel_initializer=tf.glorot_uniform_initializer(seed=seed))
    return tf.reshape(out, [-1])
