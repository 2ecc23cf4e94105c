"""MMoE, Multi-gate Mixture-of-Experts (Ma et al., 2018): one model, one tower per label.

The shared input concatenates the user profile, the mean of the behaviour
vectors and the candidate item's features (`modelzoo.common.behaviour`).
`--num_experts` experts, each a ReLU MLP (`--expert_units`), read it. Each
task (label: `click` and `buy` on the Taobao-like data) has its own gate, a
softmax over the experts computed from the input, mixes the experts'
outputs with those weights, and feeds the mixture to its own tower (ReLU
layers `--tower_units` and a linear unit). The loss is the sum of the
tasks' log losses; evaluation reports AUC and log loss per task.
"""

from modelzoo.common import layers
from modelzoo.common.behaviour import BehaviourModel
from modelzoo.common.model import dense_layers
from modelzoo.common.tfapi import tf


def mixture_of_experts(net, num_experts: int, expert_units, tasks, training: bool,
                       seed: int = 0) -> dict:
    """`{task: [batch, expert_units[-1]]}` gated mixtures of `num_experts` MLP experts.

    Variables: `expert_<e>/hidden_<i>` for the experts and `gate_<task>` for
    each task's gate, in the current variable scope.
    """
    outputs = []
    for e in range(num_experts):
        with tf.variable_scope(f"expert_{e}"):
            outputs.append(dense_layers(net, expert_units, training, seed=seed + 10 * e))
    experts = tf.stack(outputs, axis=1)  # [batch, experts, units]
    mixtures = {}
    for k, task in enumerate(tasks):
        # Distinct seeds: gates that start equal would mix the experts alike.
        gate = tf.nn.softmax(tf.layers.dense(
            net, num_experts, name=f"gate_{task}",
            kernel_initializer=tf.glorot_uniform_initializer(seed=seed + 1000 + k)), axis=-1)
        mixtures[task] = tf.reduce_sum(gate[:, :, None] * experts, axis=1)
    return mixtures


class MMoE(BehaviourModel):
    """MMoE; see the module docstring. `args` needs the flags of `mmoe/train.py`.

    Raises:
      ValueError: If the data set has fewer than two labels.
    """

    name = "mmoe"

    def __init__(self, args, meta):
        labels = tuple(meta["schema"].labels)
        if len(labels) < 2:
            raise ValueError(f"MMoE trains several tasks; data set '{meta['name']}' has "
                             f"one label {labels}")
        super().__init__(args, meta)
        self.labels = labels

    def head(self, tensors, training):
        args = self.args
        net = tf.concat([tensors.user, tensors.pooled_history(), tensors.item], axis=1)
        with tf.variable_scope("mmoe"):
            mixtures = mixture_of_experts(net, args.num_experts, args.expert_units,
                                          self.labels, training, args.seed)
        logits = {}
        for k, task in enumerate(self.labels):
            seed = args.seed + 2000 + 100 * k  # towers start different, as the gates do
            with tf.variable_scope(f"tower_{task}"):
                hidden = dense_layers(mixtures[task], args.tower_units, training, seed=seed)
                logits[task] = layers.logit_layer(hidden, seed)
        return logits
