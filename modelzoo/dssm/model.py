"""DSSM (Huang et al., 2013) as a two-tower click model: user tower, item tower, similarity.

- User tower: the user profile (`user_*` features) and the mean of the
  behaviour vectors, through ReLU layers and a last linear layer
  (`--tower_units`; the last size is the vectors' size).
- Item tower: the candidate's features (ids, category, price, ...) through
  a tower of the same shape.
- Score: `--similarity cosine` gives s * cos(u, v) + b with a learned
  scale s (the paper's smoothing factor, initially `--cosine_scale`);
  `dot` gives <u, v> + b.

The towers share no layers, and each reads only its side's features, so
item vectors can be computed once and searched for a user vector. The
candidate item and the behaviours share their id tables
(`modelzoo.common.behaviour`). The SavedModel also outputs `user_vector`
and `item_vector`.
"""

from modelzoo.common.behaviour import BehaviourModel
from modelzoo.common.model import dense_layers
from modelzoo.common.tfapi import tf


def tower(net, units, training: bool, seed: int):
    """ReLU layers of `units[:-1]`, then a linear layer of `units[-1]` (the vector)."""
    net = dense_layers(net, units[:-1], training, seed=seed)
    return tf.layers.dense(net, units[-1], name="vector",
                           kernel_initializer=tf.glorot_uniform_initializer(seed=seed))


def similarity_logit(user, item, similarity: str, cosine_scale: float):
    """`[batch]` logits from user and item vectors `[batch, d]` (see the module docstring)."""
    if similarity == "cosine":
        scale = tf.get_variable("scale", [], initializer=tf.constant_initializer(cosine_scale))
        score = scale * tf.reduce_sum(tf.nn.l2_normalize(user, axis=1)
                                      * tf.nn.l2_normalize(item, axis=1), axis=1)
    else:
        score = tf.reduce_sum(user * item, axis=1)
    bias = tf.get_variable("bias", [], initializer=tf.zeros_initializer())
    return score + bias


class DSSM(BehaviourModel):
    """Two-tower DSSM; see the module docstring. `args` needs the flags of `dssm/train.py`."""

    name = "dssm"

    def head(self, tensors, training):
        args = self.args
        with tf.variable_scope("user_tower"):
            user = tower(tf.concat([tensors.user, tensors.pooled_history()], axis=1),
                         args.tower_units, training, args.seed)
        with tf.variable_scope("item_tower"):
            item = tower(tensors.item, args.tower_units, training, args.seed + 100)
        with tf.variable_scope("similarity"):
            logit = similarity_logit(user, item, args.similarity, args.cosine_scale)
        # Extra keys (not labels) become extra SavedModel outputs.
        return {self.labels[0]: logit, "user_vector": user, "item_vector": item}
