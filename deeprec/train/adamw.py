"""AdamWOptimizer: Adam with decoupled weight decay (§3.24)."""

from tensorflow.python.framework import ops
from tensorflow.python.ops import state_ops

from deeprec._native import ops as kv_ops
from deeprec.train._checks import check_number
from deeprec.train.optimizers import AdamOptimizer, _cast


class AdamWOptimizer(AdamOptimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, arXiv:1711.05101).

    Each update first shrinks the variable by `weight_decay` (an absolute
    factor, not scaled by the learning rate, as in TensorFlow 1.x's
    `tf.contrib.opt.AdamWOptimizer`), then takes the Adam step:
    var -= weight_decay * var + lr_t * m / (sqrt(v) + epsilon). The beta powers
    are Adam's (shared, advanced once per `apply_gradients`). Sparse applies
    (IndexedSlices and EmbeddingVariables) are lazy: only the rows in the
    batch get their moments updated, their decay and their step, so an
    EmbeddingVariable and a dense variable trained on the same ids agree.

    Args:
      weight_decay: A float or float Tensor >= 0.
      learning_rate, beta1, beta2, epsilon: As for `AdamOptimizer`.
      use_locking: Lock variables during updates.
      name: Prefix of the ops and slots.

    Raises:
      ValueError: For weight_decay or learning_rate < 0, beta1 or beta2
        outside [0, 1) or epsilon < 0.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.AdamWOptimizer(weight_decay=0.01, learning_rate=0.1)
    """

    def __init__(self, weight_decay, learning_rate=0.001, beta1=0.9, beta2=0.999,
                 epsilon=1e-8, use_locking=False, name="AdamW"):
        cls = type(self).__name__
        check_number(cls, "weight_decay", weight_decay, lambda v: v >= 0, ">= 0")
        check_number(cls, "learning_rate", learning_rate, lambda v: v >= 0, ">= 0")
        check_number(cls, "beta1", beta1, lambda v: 0 <= v < 1, "in [0, 1)")
        check_number(cls, "beta2", beta2, lambda v: 0 <= v < 1, "in [0, 1)")
        check_number(cls, "epsilon", epsilon, lambda v: v >= 0, ">= 0")
        super().__init__(learning_rate, beta1, beta2, epsilon, use_locking, name)
        self._weight_decay = weight_decay

    def _prepare(self):
        super()._prepare()
        self._weight_decay_t = ops.convert_to_tensor(
            self._call_if_callable(self._weight_decay), name="weight_decay")

    def _apply_dense(self, grad, var):
        decay = state_ops.assign_sub(var, _cast(self._weight_decay_t, grad) * var,
                                     use_locking=self._use_locking)
        with ops.control_dependencies([decay]):
            return super()._apply_dense(grad, var)

    def _resource_apply_dense(self, grad, var):
        decay = var.assign_sub(_cast(self._weight_decay_t, grad) * var.read_value(),
                               use_locking=self._use_locking, read_value=False)
        with ops.control_dependencies([decay]):
            return super()._resource_apply_dense(grad, var)

    def _adam_args(self, grad):
        beta1_power, beta2_power = self._get_beta_accumulators()
        return [_cast(t, grad) for t in (beta1_power, beta2_power, self._lr_t, self._beta1_t,
                                         self._beta2_t, self._epsilon_t, self._weight_decay_t)]

    def _apply_sparse(self, grad, var):
        return kv_ops.sparse_apply_adam_w(
            var, self.get_slot(var, "m"), self.get_slot(var, "v"),
            *self._adam_args(grad.values), grad.values, grad.indices,
            use_locking=self._use_locking)

    def _resource_apply_sparse(self, grad, var, indices):
        return kv_ops.resource_sparse_apply_adam_w(
            var.handle, self.get_slot(var, "m").handle, self.get_slot(var, "v").handle,
            *self._adam_args(grad), grad, indices, use_locking=self._use_locking)

    def _ev_apply_sparse(self, grad, var, indices, version):
        return kv_ops.kv_resource_sparse_apply_adam_w(
            var.handle, self.get_slot(var, "m").handle, self.get_slot(var, "v").handle,
            *self._adam_args(grad), grad, indices, version, use_locking=self._use_locking)
