"""Stock v1 optimizers that also train EmbeddingVariables.

Each class subclasses TensorFlow's optimizer of the same name. Dense and
sparse updates of ordinary variables go through the stock code unchanged;
for an EmbeddingVariable, slots are created as columns of its table and
sparse gradients are applied by one native kernel that sums repeated ids (as
TensorFlow does before a sparse apply), updates each id once and records the
global step as its version.
"""

from tensorflow.python.framework import constant_op, dtypes, ops
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import math_ops
from tensorflow.python.training import (
    adagrad,
    adam,
    ftrl,
    gradient_descent,
    momentum,
    training_util,
)
from tensorflow.python.training import optimizer as optimizer_lib

from deeprec._native import ops as kv_ops
from deeprec.embedding.variable import EmbeddingVariable


class _EmbeddingVariableSupport:
    """Mixin routing EmbeddingVariables to the native sparse-apply kernels."""

    _ev_global_step = None

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        self._ev_global_step = global_step
        return super().apply_gradients(grads_and_vars, global_step=global_step,
                                       name=name)

    def _ev_version(self) -> tensor_lib.Tensor:
        step = self._ev_global_step
        if step is None:
            step = training_util.get_global_step()
        if step is None:
            # Without a global step, versions are left untouched.
            return constant_op.constant(-1, dtypes.int64)
        return math_ops.cast(ops.convert_to_tensor(step), dtypes.int64)

    def _apply_sparse_duplicate_indices(self, grad, var):
        if not isinstance(var, EmbeddingVariable):
            return super()._apply_sparse_duplicate_indices(grad, var)
        # The kernels sum repeated ids themselves, inside the table's own
        # hash lookup, instead of a separate unique + segment-sum pass.
        return self._ev_apply_sparse(grad.values, var, grad.indices, self._ev_version())

    def _ev_apply_sparse(self, grad, var, indices, version):
        raise NotImplementedError(
            f"{type(self).__name__} cannot train EmbeddingVariable '{var.op.name}'")

    def _ev_slot(self, var, initializer, slot_name, op_name):
        named_slots = self._slot_dict(slot_name)
        key = optimizer_lib._var_key(var)  # pylint: disable=protected-access
        if key not in named_slots:
            named_slots[key] = EmbeddingVariable(
                f"{var.op.name}/{op_name}", var.embedding_dim,
                key_dtype=var.key_dtype, value_dtype=var.dtype,
                initializer=initializer,
                default_value_dim=var._default_value_dim,  # pylint: disable=protected-access
                trainable=False, primary=var)
        return named_slots[key]

    def _get_or_make_slot(self, var, val, slot_name, op_name):
        if not isinstance(var, EmbeddingVariable):
            return super()._get_or_make_slot(var, val, slot_name, op_name)
        return self._ev_slot(var, val, slot_name, op_name)

    def _get_or_make_slot_with_initializer(self, var, initializer, shape, dtype,
                                           slot_name, op_name):
        if not isinstance(var, EmbeddingVariable):
            return super()._get_or_make_slot_with_initializer(
                var, initializer, shape, dtype, slot_name, op_name)
        return self._ev_slot(var, initializer, slot_name, op_name)

    def _zeros_slot(self, var, slot_name, op_name):
        if not isinstance(var, EmbeddingVariable):
            return super()._zeros_slot(var, slot_name, op_name)
        return self._ev_slot(var, 0.0, slot_name, op_name)


def _cast(value, grad):
    return math_ops.cast(value, grad.dtype)


class GradientDescentOptimizer(_EmbeddingVariableSupport,
                               gradient_descent.GradientDescentOptimizer):
    """`tf.train.GradientDescentOptimizer` that also trains EmbeddingVariables.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.GradientDescentOptimizer(0.1)
    """

    def _ev_apply_sparse(self, grad, var, indices, version):
        return kv_ops.kv_resource_sparse_apply_gradient_descent(
            var.handle, _cast(self._learning_rate_tensor, grad), grad, indices,
            version, use_locking=self._use_locking)


class AdagradOptimizer(_EmbeddingVariableSupport, adagrad.AdagradOptimizer):
    """`tf.train.AdagradOptimizer` that also trains EmbeddingVariables.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.1)
    """

    def _ev_apply_sparse(self, grad, var, indices, version):
        return kv_ops.kv_resource_sparse_apply_adagrad(
            var.handle, self.get_slot(var, "accumulator").handle,
            _cast(self._learning_rate_tensor, grad), grad, indices, version,
            use_locking=self._use_locking)


class MomentumOptimizer(_EmbeddingVariableSupport, momentum.MomentumOptimizer):
    """`tf.train.MomentumOptimizer` that also trains EmbeddingVariables.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.MomentumOptimizer(0.1, momentum=0.9, use_nesterov=True)
    """

    def _ev_apply_sparse(self, grad, var, indices, version):
        return kv_ops.kv_resource_sparse_apply_momentum(
            var.handle, self.get_slot(var, "momentum").handle,
            _cast(self._learning_rate_tensor, grad), grad, indices,
            _cast(self._momentum_tensor, grad), version,
            use_locking=self._use_locking, use_nesterov=self._use_nesterov)


class AdamOptimizer(_EmbeddingVariableSupport, adam.AdamOptimizer):
    """`tf.train.AdamOptimizer` that also trains EmbeddingVariables.

    EmbeddingVariable rows are updated lazily: only the ids in the batch get
    their moments decayed and their values moved, as in DeepRec.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.AdamOptimizer(0.001)
    """

    def _ev_apply_sparse(self, grad, var, indices, version):
        beta1_power, beta2_power = self._get_beta_accumulators()
        return kv_ops.kv_resource_sparse_apply_adam(
            var.handle, self.get_slot(var, "m").handle,
            self.get_slot(var, "v").handle, _cast(beta1_power, grad),
            _cast(beta2_power, grad), _cast(self._lr_t, grad),
            _cast(self._beta1_t, grad), _cast(self._beta2_t, grad),
            _cast(self._epsilon_t, grad), grad, indices, version,
            use_locking=self._use_locking)


class FtrlOptimizer(_EmbeddingVariableSupport, ftrl.FtrlOptimizer):
    """`tf.train.FtrlOptimizer` (incl. l1, l2, l2 shrinkage) for EmbeddingVariables too.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.train.FtrlOptimizer(0.1, l1_regularization_strength=2.0,
      ...                              l2_regularization_strength=1e-5)
    """

    def _ev_apply_sparse(self, grad, var, indices, version):
        return kv_ops.kv_resource_sparse_apply_ftrl_v2(
            var.handle, self.get_slot(var, "accum").handle,
            self.get_slot(var, "linear").handle, grad, indices,
            _cast(self._learning_rate_tensor, grad),
            _cast(self._l1_regularization_strength_tensor, grad),
            _cast(self._adjusted_l2_regularization_strength_tensor, grad),
            _cast(self._l2_shrinkage_regularization_strength_tensor, grad),
            _cast(self._learning_rate_power_tensor, grad), version,
            use_locking=self._use_locking)
