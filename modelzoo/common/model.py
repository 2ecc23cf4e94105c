"""The base class of the model zoo's models.

A model turns a batch of raw features (the dict `modelzoo.data.reader`
yields, or the serving placeholders of `export`) into one logit per label.
The same `logits` method builds the training, evaluation and serving
graphs, so variable names must not depend on `training`.
"""

from __future__ import annotations

from modelzoo.common.optimizers import make_optimizer
from modelzoo.common.tfapi import tf


class Model:
    """Subclass and implement `logits`; override `train_op` for several optimizers.

    Attributes:
      name: Short name (used in checkpoint directory names).
      labels: The label columns the model predicts (default: the data set's first).
    """

    name = "model"

    def __init__(self, args, meta):
        self.args = args
        self.meta = meta
        self.schema = meta["schema"]
        self.labels = self.schema.labels[:1]

    def logits(self, features: dict, training: bool) -> dict:
        """`{label: float32 [batch] logits}` for `features` (dense [batch], categorical
        [batch], sequence SparseTensor [batch, length]). Entries under other names
        are extra SavedModel outputs (`export`); training and evaluation ignore them."""
        raise NotImplementedError

    def loss(self, logits: dict, labels: dict):
        """Mean sigmoid cross-entropy, summed over the model's labels."""
        losses = [tf.losses.sigmoid_cross_entropy(labels[name], logits[name],
                                                  reduction=tf.losses.Reduction.MEAN)
                  for name in self.labels]
        return tf.add_n(losses) if len(losses) > 1 else losses[0]

    def train_op(self, loss, global_step):
        """One `--optimizer` at `--learning_rate` over all trainable variables."""
        optimizer = make_optimizer(self.args.optimizer, self.args.learning_rate, global_step)
        return optimizer.minimize(loss, global_step=global_step)


def dense_layers(net, hidden_units, training: bool, dropout: float = 0.0, seed: int = 0,
                 name: str = "hidden"):
    """ReLU layers `name_0`, `name_1`, ... of `hidden_units` with optional dropout in training.

    Layers are named so that every graph (train, eval, export) gets the same
    variables; initializers are seeded for reproducible runs.
    """
    for i, units in enumerate(hidden_units):
        net = tf.layers.dense(net, units, activation=tf.nn.relu, name=f"{name}_{i}",
                              kernel_initializer=tf.glorot_uniform_initializer(seed=seed + i))
        if training and dropout > 0:
            net = tf.nn.dropout(net, rate=dropout, seed=seed + i)
    return net


def parse_hidden_units(text: str, flag: str = "--dnn_hidden_units") -> tuple[int, ...]:
    """"256,128,64" -> (256, 128, 64); exits naming the flag for anything else.

    Example:
      >>> parse_hidden_units("256, 128")
      (256, 128)
    """
    try:
        units = tuple(int(x) for x in text.split(","))
    except ValueError:
        units = ()
    if not units or min(units) < 1:
        raise SystemExit(f"error: {flag} must be comma-separated positive ints, got {text!r}")
    return units
