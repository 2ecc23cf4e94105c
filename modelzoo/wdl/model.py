"""The Wide & Deep model (Cheng et al., 2016) over the model zoo's feature columns.

The wide part is `tf.feature_column.linear_model` over the categorical
columns (EV weights of dimension 1, or hash-bucket weights with `--ev
false`), trained by Adagrad at `--linear_learning_rate`. The deep part
embeds every categorical feature (`--embedding_dim`, fused lookups with
`--emb_fusion`), appends the dense features and runs ReLU layers
(`--dnn_hidden_units`), trained by `--optimizer` at `--learning_rate`. The
logit is the sum of both parts.
"""

from modelzoo.common import features
from modelzoo.common.model import Model, dense_layers, parse_hidden_units
from modelzoo.common.optimizers import make_optimizer
from modelzoo.common.tfapi import tf


def check_args(args) -> None:
    """Exits naming the flag and value when a WDL flag is out of range."""
    if not args.linear_learning_rate > 0:
        raise SystemExit("error: --linear_learning_rate must be > 0, got "
                         f"{args.linear_learning_rate!r}")
    if not 0 <= args.deep_dropout < 1:
        raise SystemExit(f"error: --deep_dropout must be in [0, 1), got {args.deep_dropout!r}")
    parse_hidden_units(args.dnn_hidden_units)


class WideAndDeep(Model):
    """Wide & Deep; see the module docstring. `args` needs the flags of `wdl/train.py`."""

    name = "wdl"

    def __init__(self, args, meta):
        super().__init__(args, meta)
        check_args(args)
        self.hidden_units = parse_hidden_units(args.dnn_hidden_units)
        categorical = features.categorical_columns(meta, args)
        self.wide_columns = categorical
        self.deep_columns = ([features.embedding_column(c, args) for c in categorical]
                             + features.dense_columns(meta))

    def logits(self, features_dict, training):
        with tf.variable_scope("wide"):
            wide = tf.feature_column.linear_model(features_dict, self.wide_columns)
        with tf.variable_scope("deep"):
            net = tf.feature_column.input_layer(features_dict, self.deep_columns)
            net = dense_layers(net, self.hidden_units, training,
                               dropout=self.args.deep_dropout, seed=self.args.seed)
            deep = tf.layers.dense(net, 1, name="logit",
                                   kernel_initializer=tf.glorot_uniform_initializer(
                                       seed=self.args.seed))
        return {self.labels[0]: tf.reshape(wide + deep, [-1])}

    def train_op(self, loss, global_step):
        wide_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope="wide")
        deep_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope="deep")
        grads = tf.gradients(loss, wide_vars + deep_vars)
        wide_opt = tf.train.AdagradOptimizer(self.args.linear_learning_rate,
                                             initial_accumulator_value=0.1)
        deep_opt = make_optimizer(self.args.optimizer, self.args.learning_rate, global_step)
        return tf.group(
            wide_opt.apply_gradients(zip(grads[:len(wide_vars)], wide_vars, strict=True)),
            deep_opt.apply_gradients(zip(grads[len(wide_vars):], deep_vars, strict=True),
                                     global_step=global_step))
