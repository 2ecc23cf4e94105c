"""DLRM (Naumov et al., 2019): bottom MLP, pairwise dot-product interactions, top MLP.

- Bottom MLP: the dense features go through ReLU layers (`--bottom_mlp`)
  and a last ReLU layer of `--embedding_dim` units, so the result is one
  more vector the size of an embedding.
- Interactions: with the categorical (and sequence) fields' embeddings that
  makes F vectors; the dot products of all F(F-1)/2 distinct pairs are the
  interaction features (no self products, as in the paper's default).
- Top MLP: ReLU layers (`--top_mlp`) over [bottom output, interactions] and
  a linear output unit.

A data set without dense features skips the bottom MLP; the top MLP then
reads the interactions alone.
"""

from modelzoo.common import layers
from modelzoo.common.fields import FieldModel
from modelzoo.common.model import dense_layers
from modelzoo.common.tfapi import tf


def pairwise_dots(vectors):
    """`[batch, n(n-1)/2]`: <v_i, v_j> for i > j, of `vectors` `[batch, n, dim]` (static n).

    Example:
      >>> import numpy as np
      >>> from modelzoo.common.tfapi import tf
      >>> x = np.array([[[1., 0.], [2., 3.], [0., 1.]]], np.float32)
      >>> with tf.Session(graph=tf.Graph()) as sess:
      ...     print(sess.run(pairwise_dots(tf.constant(x))))  # (1,0), (2,0), (2,1)
      [[2. 0. 3.]]
    """
    count = int(vectors.shape[1])
    gram = tf.matmul(vectors, vectors, transpose_b=True)
    lower = [i * count + j for i in range(count) for j in range(i)]
    return tf.gather(tf.reshape(gram, [-1, count * count]), lower, axis=1)


class DLRM(FieldModel):
    """DLRM; see the module docstring. `args` needs the flags of `dlrm/train.py`."""

    name = "dlrm"

    def head(self, features_dict, fields, dense, training):
        args = self.args
        top_inputs = []
        if dense is not None:
            with tf.variable_scope("bottom_mlp"):
                bottom = dense_layers(dense, args.bottom_mlp + (args.embedding_dim,), training,
                                      seed=args.seed)
            top_inputs.append(bottom)
            fields = tf.concat([bottom[:, None, :], fields], axis=1)
        with tf.variable_scope("interaction"):
            top_inputs.append(pairwise_dots(fields))
        with tf.variable_scope("top_mlp"):
            net = dense_layers(tf.concat(top_inputs, axis=1), args.top_mlp, training,
                               seed=args.seed)
            return layers.logit_layer(net, args.seed)
