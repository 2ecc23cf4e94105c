"""DeepFM (Guo et al., 2017): a factorization machine and a DNN sharing one set of embeddings.

Fields: every categorical (and sequence) feature has one `--embedding_dim`
vector e_i per id (a sequence field averages its ids' vectors); every dense
feature j is a field whose vector is a learned v_j scaled by its
standardized value x_j (the paper's treatment of continuous fields).

- FM, first order: one weight per id (an `embedding_column` of dimension 1
  per field, initially 0, so `--emb_fusion` fuses these lookups too), one
  weight per dense feature and a global bias.
- FM, second order: sum over field pairs i < j of <e_i, e_j>, computed in
  O(fields x dim) as 1/2 sum_d [(sum_i e_id)^2 - sum_i e_id^2].
- DNN: ReLU layers (`--dnn_hidden_units`) over the concatenated field vectors.

The logit is the sum of the three; one optimizer trains all of it, so the
embeddings learn from both the FM and the DNN.
"""

from modelzoo.common import fields as fields_lib
from modelzoo.common import layers
from modelzoo.common.fields import FieldModel
from modelzoo.common.model import dense_layers
from modelzoo.common.tfapi import tf

# Initial vectors much smaller than features.embedding_column's 1/sqrt(dim):
# the second-order term sums ~fields^2/2 products of them, and for ids the
# training never updated (common in sparse test data) those stay pure noise.
EMBEDDING_STDDEV = 0.05


def fm_second_order(fields):
    """`[batch]` sum over pairs i < j of <fields[:, i], fields[:, j]> for `[batch, n, dim]`.

    Example:
      >>> import numpy as np
      >>> from modelzoo.common.tfapi import tf
      >>> x = np.array([[[1., 2.], [3., 4.], [5., 6.]]], np.float32)
      >>> with tf.Session(graph=tf.Graph()) as sess:
      ...     print(sess.run(fm_second_order(tf.constant(x))))  # 11 + 17 + 39
      [67.]
    """
    summed = tf.reduce_sum(fields, axis=1)
    squares = tf.reduce_sum(tf.square(fields), axis=1)
    return 0.5 * tf.reduce_sum(tf.square(summed) - squares, axis=1)


class DeepFM(FieldModel):
    """DeepFM; see the module docstring. `args` needs the flags of `deepfm/train.py`."""

    name = "deepfm"
    embedding_stddev = EMBEDDING_STDDEV

    def __init__(self, args, meta):
        super().__init__(args, meta)
        # Weights initially 0, as a linear model's (truncated normal of stddev 0).
        self.weight_columns = fields_lib.field_embedding_columns(meta, args, dimension=1,
                                                                 stddev=0.0)

    def _dense_fields(self, dense):
        """(first-order term [batch], field vectors [batch, n_dense, dim]) of the dense values."""
        dim, count = self.args.embedding_dim, dense.shape[1]
        weights = tf.get_variable("weights", [count, 1], initializer=tf.zeros_initializer())
        vectors = tf.get_variable("vectors", [count, dim],
                                  initializer=tf.truncated_normal_initializer(
                                      stddev=EMBEDDING_STDDEV, seed=self.args.seed))
        first = tf.reshape(tf.matmul(dense, weights), [-1])
        return first, dense[:, :, None] * vectors[None, :, :]

    def head(self, features_dict, fields, dense, training):
        with tf.variable_scope("linear"):
            weights = tf.feature_column.input_layer(features_dict, self.weight_columns)
            bias = tf.get_variable("bias", [], initializer=tf.zeros_initializer())
            first_order = tf.reduce_sum(weights, axis=1) + bias
        if dense is not None:
            with tf.variable_scope("dense_fields"):
                dense_first, dense_vectors = self._dense_fields(dense)
            first_order += dense_first
            fields = tf.concat([fields, dense_vectors], axis=1)
        with tf.variable_scope("fm"):
            second_order = fm_second_order(fields)
        with tf.variable_scope("dnn"):
            net = tf.reshape(fields, [-1, fields.shape[1] * self.args.embedding_dim])
            net = dense_layers(net, self.args.dnn_hidden_units, training,
                               dropout=self.args.deep_dropout, seed=self.args.seed)
            return first_order + second_order + layers.logit_layer(net, self.args.seed)
