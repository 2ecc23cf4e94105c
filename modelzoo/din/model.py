"""DIN, Deep Interest Network (Zhou et al., 2018): attention of the candidate over the history.

Inputs (`modelzoo.common.behaviour`): the candidate item's vectors (item
and category ids, in the tables that also embed the user's behaviours),
the behaviour sequence, the user profile and other item features.

Local activation unit: for each behaviour vector h and the candidate's
vector t, an MLP (`--attention_units`, then one linear unit) over
[h, t, h - t, h * t] gives a weight a(h, t). The user's interest in this
candidate is sum_h a(h, t) h over the row's behaviours. As in the paper
the weights are not normalized by default, so the interest vector's size
also says how much of the history is relevant (`--attention_softmax`
normalizes them over the row's behaviours instead).

The DNN (`--dnn_hidden_units`) reads [user profile, interest, candidate
features] and a linear unit gives the logit. Hidden layers use PReLU (the
paper's alternative to Dice) or ReLU (`--activation`).
"""

from modelzoo.common import layers
from modelzoo.common.behaviour import BehaviourModel
from modelzoo.common.tfapi import tf


def prelu(x, name: str = "prelu"):
    """max(0, x) + alpha * min(0, x) with a learned alpha per unit (initially 0.25)."""
    alpha = tf.get_variable(name, [int(x.shape[-1])], initializer=tf.constant_initializer(0.25))
    return tf.nn.relu(x) - alpha * tf.nn.relu(-x)


def hidden_layers(net, units, activation: str, seed: int):
    """Dense layers `layer_<i>` of `units` with PReLU or ReLU (works on any rank >= 2)."""
    for i, size in enumerate(units):
        net = tf.layers.dense(net, size, name=f"layer_{i}",
                              kernel_initializer=tf.glorot_uniform_initializer(seed=seed + i))
        net = prelu(net, name=f"prelu_{i}") if activation == "prelu" else tf.nn.relu(net)
    return net


def attention_pooling(target, history, mask, units, activation: str, softmax: bool,
                      seed: int = 0):
    """DIN's local activation unit and weighted sum pooling.

    Args:
      target: `[batch, d]` candidate vectors.
      history: `[batch, length, d]` behaviour vectors.
      mask: `[batch, length]` bool, True where a behaviour exists.
      units: Hidden layer sizes of the attention MLP.
      activation: "prelu" or "relu".
      softmax: Normalize the weights over each row's behaviours.
      seed: Initializer seed.

    Returns:
      `[batch, d]` interest vectors (zeros for rows without behaviours).
    """
    tiled = tf.ones_like(history) * target[:, None, :]
    unit_input = tf.concat([history, tiled, history - tiled, history * tiled], axis=-1)
    hidden = hidden_layers(unit_input, units, activation, seed)
    scores = tf.squeeze(tf.layers.dense(hidden, 1, name="score"), axis=-1)
    if softmax:
        scores = tf.where(mask, scores, tf.fill(tf.shape(scores), -1e9))
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask, tf.float32)
    else:
        weights = scores * tf.cast(mask, tf.float32)
    return tf.reduce_sum(weights[:, :, None] * history, axis=1)


class DIN(BehaviourModel):
    """DIN; see the module docstring. `args` needs the flags of `din/train.py`."""

    name = "din"

    def head(self, tensors, training):
        args = self.args
        with tf.variable_scope("attention"):
            interest = attention_pooling(tensors.target, tensors.history, tensors.mask,
                                         args.attention_units, args.activation,
                                         args.attention_softmax, args.seed)
        with tf.variable_scope("dnn"):
            net = tf.concat([tensors.user, interest, tensors.item], axis=1)
            net = hidden_layers(net, args.dnn_hidden_units, args.activation, args.seed)
            if training and args.deep_dropout > 0:
                net = tf.nn.dropout(net, rate=args.deep_dropout, seed=args.seed)
            return {self.labels[0]: layers.logit_layer(net, args.seed)}
