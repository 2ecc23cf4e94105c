"""AdamAsyncOptimizer: Adam with per-variable bias-correction powers (§3.22)."""

from tensorflow.python.framework import constant_op, ops, tensor_shape
from tensorflow.python.ops import init_ops, resource_variable_ops
from tensorflow.python.training import optimizer as optimizer_lib
from tensorflow.python.training import slot_creator

from deeprec._native import ops as kv_ops
from deeprec.embedding.variable import EmbeddingVariable
from deeprec.train._checks import check_number
from deeprec.train.optimizers import _cast, _EmbeddingVariableSupport


class AdamAsyncOptimizer(_EmbeddingVariableSupport, optimizer_lib.Optimizer):
    """Adam for asynchronous training: every variable owns its beta powers.

    Slots per variable: `m`, `v`, and the scalars `beta1_power` and
    `beta2_power` (starting at beta1 and beta2). Each apply reads the powers,
    advances them (times beta1, beta2) inside the same kernel, and updates
    m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
    var -= lr sqrt(1 - beta2_power) / (1 - beta1_power) m / (sqrt(v) + epsilon),
    so no global step or shared accumulator ties the variables together.
    Sparse applies (IndexedSlices and EmbeddingVariables) update only the rows
    in the batch; with `apply_sparse_rmsprop=True` they use RMSProp instead:
    v as above, m = beta1 m + lr g / sqrt(v + epsilon), var -= m.

    Args:
      learning_rate, beta1, beta2, epsilon: Floats or float Tensors.
      use_locking: Lock variables during updates.
      apply_sparse_rmsprop: Use RMSProp for sparse applies.
      name: Prefix of the ops and slots.

    Raises:
      ValueError: For learning_rate < 0, beta1 or beta2 outside [0, 1) or
        epsilon < 0.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.AdamAsyncOptimizer(0.1, apply_sparse_rmsprop=True)
    """

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 use_locking=False, apply_sparse_rmsprop=False, name="AdamAsync"):
        cls = type(self).__name__
        check_number(cls, "learning_rate", learning_rate, lambda v: v >= 0, ">= 0")
        check_number(cls, "beta1", beta1, lambda v: 0 <= v < 1, "in [0, 1)")
        check_number(cls, "beta2", beta2, lambda v: 0 <= v < 1, "in [0, 1)")
        check_number(cls, "epsilon", epsilon, lambda v: v >= 0, ">= 0")
        super().__init__(use_locking, name)
        self._lr = learning_rate
        self._beta1 = beta1
        self._beta2 = beta2
        self._epsilon = epsilon
        self._apply_sparse_rmsprop = bool(apply_sparse_rmsprop)

    def _create_slots(self, var_list):
        for v in var_list:
            self._zeros_slot(v, "m", self._name)
            self._zeros_slot(v, "v", self._name)
            self._power_slot(v, self._beta1, "beta1_power")
            self._power_slot(v, self._beta2, "beta2_power")

    def _power_slot(self, var, initial, slot_name):
        """A scalar slot variable of `var` (a resource variable for EVs)."""
        named_slots = self._slot_dict(slot_name)
        key = optimizer_lib._var_key(var)  # pylint: disable=protected-access
        if key in named_slots:
            return named_slots[key]
        dtype = var.dtype.base_dtype
        if isinstance(var, EmbeddingVariable):
            # slot_creator would make a ref variable for an EV primary; the
            # EV kernels take the powers as resource variables.
            with ops.name_scope(None), ops.colocate_with(var.handle):
                slot = resource_variable_ops.ResourceVariable(
                    constant_op.constant(initial, dtype), trainable=False,
                    name=f"{var.op.name}/{self._name}")
        else:
            slot = slot_creator.create_slot_with_initializer(
                var, init_ops.constant_initializer(initial, dtype=dtype),
                tensor_shape.TensorShape([]), dtype, self._name)
        named_slots[key] = slot
        return slot

    def _prepare(self):
        def tensor(value, name):
            return ops.convert_to_tensor(self._call_if_callable(value), name=name)
        self._lr_t = tensor(self._lr, "learning_rate")
        self._beta1_t = tensor(self._beta1, "beta1")
        self._beta2_t = tensor(self._beta2, "beta2")
        self._epsilon_t = tensor(self._epsilon, "epsilon")

    def _hyper(self, grad):
        return [_cast(t, grad) for t in (self._lr_t, self._beta1_t, self._beta2_t,
                                         self._epsilon_t)]

    def _slot_args(self, var, handles):
        slots = [self.get_slot(var, n) for n in ("m", "v", "beta1_power", "beta2_power")]
        return [s.handle for s in slots] if handles else slots

    def _apply_dense(self, grad, var):
        return kv_ops.apply_adam_async(var, *self._slot_args(var, False), *self._hyper(grad), grad,
                                       use_locking=self._use_locking)

    def _resource_apply_dense(self, grad, var):
        return kv_ops.resource_apply_adam_async(
            var.handle, *self._slot_args(var, True), *self._hyper(grad), grad,
            use_locking=self._use_locking)

    def _apply_sparse(self, grad, var):
        return kv_ops.sparse_apply_adam_async(
            var, *self._slot_args(var, False), *self._hyper(grad.values), grad.values,
            grad.indices, use_locking=self._use_locking,
            apply_sparse_rmsprop=self._apply_sparse_rmsprop)

    def _resource_apply_sparse(self, grad, var, indices):
        return kv_ops.resource_sparse_apply_adam_async(
            var.handle, *self._slot_args(var, True), *self._hyper(grad), grad, indices,
            use_locking=self._use_locking, apply_sparse_rmsprop=self._apply_sparse_rmsprop)

    def _ev_apply_sparse(self, grad, var, indices, version):
        return kv_ops.kv_resource_sparse_apply_adam_async(
            var.handle, *self._slot_args(var, True), *self._hyper(grad), grad, indices, version,
            use_locking=self._use_locking, apply_sparse_rmsprop=self._apply_sparse_rmsprop)
