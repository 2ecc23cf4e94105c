"""DCN-V2 (Wang et al., 2021): a cross network of full-rank matrices next to (or under) a DNN.

The input x0 concatenates the dense features and the fields' embeddings
(categorical and sequence features; `--embedding_dim` each). Cross layer l
computes

    x_{l+1} = x0 * (W_l x_l + b_l) + x_l

(`*` elementwise) with a full d x d matrix W_l, so after L layers the
network holds feature crosses up to degree L+1. `--cross_rank r > 0` uses the
paper's low-rank variant W_l = U_l V_l^T (d x r each) instead. With
`--structure stacked` the DNN (`--dnn_hidden_units`) reads the cross
network's output; with `parallel` both read x0 and their outputs are
concatenated. A linear unit gives the logit.
"""

from modelzoo.common import layers
from modelzoo.common.fields import FieldModel
from modelzoo.common.model import dense_layers
from modelzoo.common.tfapi import tf


def cross_network(x0, num_layers: int, rank: int = 0, seed: int = 0):
    """DCN-V2 cross layers over `x0` `[batch, d]` (static d); `rank` 0 means full-rank W_l.

    Variables `cross_<l>/kernel` and `/bias` (full rank) or `cross_<l>_v/kernel`,
    `cross_<l>_u/kernel` and `/bias` (low rank), in the current variable scope.
    """
    width = int(x0.shape[1])
    x = x0
    for layer in range(num_layers):
        init = tf.glorot_uniform_initializer(seed=seed + layer)
        if rank:
            projected = tf.layers.dense(x, rank, use_bias=False, name=f"cross_{layer}_v",
                                        kernel_initializer=init)
            mixed = tf.layers.dense(projected, width, name=f"cross_{layer}_u",
                                    kernel_initializer=init)
        else:
            mixed = tf.layers.dense(x, width, name=f"cross_{layer}", kernel_initializer=init)
        x = x0 * mixed + x
    return x


class DCNv2(FieldModel):
    """DCN-V2; see the module docstring. `args` needs the flags of `dcnv2/train.py`."""

    name = "dcnv2"

    def head(self, features_dict, fields, dense, training):
        args = self.args
        x0 = tf.reshape(fields, [-1, fields.shape[1] * args.embedding_dim])
        if dense is not None:
            x0 = tf.concat([dense, x0], axis=1)
        with tf.variable_scope("cross"):
            crossed = cross_network(x0, args.cross_layers, args.cross_rank, args.seed)
        with tf.variable_scope("deep"):
            deep_input = crossed if args.structure == "stacked" else x0
            net = dense_layers(deep_input, args.dnn_hidden_units, training,
                               dropout=args.deep_dropout, seed=args.seed)
            if args.structure == "parallel":
                net = tf.concat([crossed, net], axis=1)
            return layers.logit_layer(net, args.seed)
