"""AdagradDecayOptimizer: Adagrad whose accumulators decay once per period (§3.23)."""

from tensorflow.python.framework import dtypes, ops
from tensorflow.python.ops import init_ops, math_ops
from tensorflow.python.training import optimizer as optimizer_lib

from deeprec._native import ops as kv_ops
from deeprec.embedding.variable import EmbeddingVariable
from deeprec.train._checks import check_number
from deeprec.train.optimizers import _cast, _EmbeddingVariableSupport


class AdagradDecayOptimizer(_EmbeddingVariableSupport, optimizer_lib.Optimizer):
    """Adagrad with accumulator decay per period of `accumulator_decay_step` steps.

    Each time `global_step // accumulator_decay_step` (the period) advances,
    the accumulator is multiplied by `accumulator_decay_rate` (once per period
    passed since the row's last update, so sparse rows decay as if they had
    been updated every step), never below `initial_accumulator_value`; then
    accum += g^2 and var -= lr * g / sqrt(accum). Dense variables keep one
    decay period per row in the `accumulator_decay_power` slot; an
    EmbeddingVariable row derives it from its version (the step of its last
    update), so its only slot is `accumulator`.

    Args:
      learning_rate: A float or float Tensor.
      global_step: The global step variable (the period clock).
      initial_accumulator_value: Starting value and lower bound of the
        accumulators; must be positive.
      accumulator_decay_step: Period length in steps; a positive integer.
      accumulator_decay_rate: Decay factor per period, in (0, 1].
      use_locking: Lock variables during updates.
      name: Prefix of the ops and slots.

    Raises:
      ValueError: For a missing global_step or an invalid number above.

    Example:
      >>> import deeprec as tf
      >>> gs = tf.train.get_or_create_global_step()
      >>> opt = tf.train.AdagradDecayOptimizer(0.1, global_step=gs,
      ...                                      accumulator_decay_step=1000)
    """

    def __init__(self, learning_rate, global_step, initial_accumulator_value=0.1,
                 accumulator_decay_step=100000, accumulator_decay_rate=0.9,
                 use_locking=False, name="AdagradDecay"):
        cls = type(self).__name__
        if global_step is None:
            raise ValueError(f"{cls}: global_step is required (the decay period clock)")
        check_number(cls, "learning_rate", learning_rate, lambda v: v >= 0, ">= 0")
        check_number(cls, "initial_accumulator_value", initial_accumulator_value,
                     lambda v: v > 0, "positive")
        if (isinstance(accumulator_decay_step, bool)
                or not isinstance(accumulator_decay_step, int) or accumulator_decay_step <= 0):
            raise ValueError(f"{cls}: accumulator_decay_step must be a positive integer, "
                             f"got {accumulator_decay_step!r}")
        check_number(cls, "accumulator_decay_rate", accumulator_decay_rate,
                     lambda v: 0 < v <= 1, "in (0, 1]")
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._global_step = global_step
        self._initial_accumulator_value = initial_accumulator_value
        self._accumulator_decay_step = accumulator_decay_step
        self._accumulator_decay_rate = accumulator_decay_rate

    def _create_slots(self, var_list):
        for v in var_list:
            dtype = v.dtype.base_dtype
            init = init_ops.constant_initializer(self._initial_accumulator_value, dtype=dtype)
            self._get_or_make_slot_with_initializer(
                v, init, v.get_shape(), dtype, "accumulator", self._name)
            if not isinstance(v, EmbeddingVariable):
                self._get_or_make_slot_with_initializer(
                    v, init_ops.zeros_initializer(dtypes.int64), v.get_shape()[:1],
                    dtypes.int64, "accumulator_decay_power", self._name)

    def _prepare(self):
        self._lr_t = ops.convert_to_tensor(self._call_if_callable(self._learning_rate),
                                           name="learning_rate")
        self._decay_step_t = ops.convert_to_tensor(self._accumulator_decay_step, dtypes.int64,
                                                   name="accumulator_decay_step")
        self._decay_rate_t = ops.convert_to_tensor(
            self._call_if_callable(self._accumulator_decay_rate), name="accumulator_decay_rate")
        self._baseline_t = ops.convert_to_tensor(
            self._call_if_callable(self._initial_accumulator_value), name="accumulator_baseline")

    def _step(self):
        return math_ops.cast(ops.convert_to_tensor(self._global_step), dtypes.int64)

    def _args(self, grad):
        """Inputs after the variables: lr, decay step, rate, baseline, global step."""
        return (_cast(self._lr_t, grad), self._decay_step_t, _cast(self._decay_rate_t, grad),
                _cast(self._baseline_t, grad), self._step())

    def _apply_dense(self, grad, var):
        return kv_ops.apply_adagrad_decay(
            var, self.get_slot(var, "accumulator"),
            self.get_slot(var, "accumulator_decay_power"), *self._args(grad), grad,
            use_locking=self._use_locking)

    def _resource_apply_dense(self, grad, var):
        return kv_ops.resource_apply_adagrad_decay(
            var.handle, self.get_slot(var, "accumulator").handle,
            self.get_slot(var, "accumulator_decay_power").handle, *self._args(grad),
            grad, use_locking=self._use_locking)

    def _apply_sparse(self, grad, var):
        return kv_ops.sparse_apply_adagrad_decay(
            var, self.get_slot(var, "accumulator"),
            self.get_slot(var, "accumulator_decay_power"), *self._args(grad.values),
            grad.values, grad.indices, use_locking=self._use_locking)

    def _resource_apply_sparse(self, grad, var, indices):
        return kv_ops.resource_sparse_apply_adagrad_decay(
            var.handle, self.get_slot(var, "accumulator").handle,
            self.get_slot(var, "accumulator_decay_power").handle, *self._args(grad),
            grad, indices, use_locking=self._use_locking)

    def _ev_apply_sparse(self, grad, var, indices, version):
        # The optimizer's own global step is the version, so that a row's
        # version is the decay clock of its last update.
        del version
        lr, decay_step, rate, baseline, step = self._args(grad)
        return kv_ops.kv_resource_sparse_apply_adagrad_decay(
            var.handle, self.get_slot(var, "accumulator").handle, lr, decay_step, rate,
            baseline, grad, indices, step, use_locking=self._use_locking)

