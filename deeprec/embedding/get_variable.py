"""`get_embedding_variable`: EmbeddingVariables under `tf.variable_scope` rules."""

from collections.abc import Callable
from typing import Any

from tensorflow.python.framework import dtypes, tensor_shape
from tensorflow.python.ops import variable_scope as vs

from deeprec.embedding.options import EmbeddingVariableOption
from deeprec.embedding.partitioned import PartitionedEmbeddingVariable
from deeprec.embedding.variable import EmbeddingVariable

# Partitioners size shards from a static shape; an EmbeddingVariable has no
# row count, so they see this many rows (enough for any fixed shard count).
_NOMINAL_ROWS = 1 << 40


def get_embedding_variable(
        name: str,
        embedding_dim: int,
        key_dtype: dtypes.DType = dtypes.int64,
        value_dtype: dtypes.DType | None = None,
        initializer: Any = None,
        regularizer: Any = None,
        trainable: bool = True,
        collections: list[str] | None = None,
        caching_device: Any = None,
        partitioner: Callable | None = None,
        validate_shape: bool = True,
        custom_getter: Callable | None = None,
        constraint: Any = None,
        steps_to_live: int | None = None,
        init_data_source: Any = None,
        ev_option: EmbeddingVariableOption | None = None,
) -> EmbeddingVariable | PartitionedEmbeddingVariable:
    """Gets an existing EmbeddingVariable or creates a new one.

    Follows `tf.get_variable`: the name is prefixed by the current variable
    scope, `reuse` and `tf.AUTO_REUSE` are honoured, and a custom getter (the
    `custom_getter` argument, else the scope's) wraps the creation. With a
    partitioner (e.g. `tf.fixed_size_partitioner(4)`) the result is a
    `PartitionedEmbeddingVariable` of shards `name/part_i`.

    Args:
      name: Name of the variable, relative to the current variable scope.
      embedding_dim: Length of each embedding.
      key_dtype: `tf.int64` (default) or `tf.int32`.
      value_dtype: `tf.float32` (default).
      initializer: Initializer of new rows; overrides
        `ev_option.init_option.initializer`. Default: truncated normal.
      regularizer, caching_device, validate_shape, constraint,
        steps_to_live, init_data_source: accepted for signature compatibility;
        regularizer, constraint, steps_to_live and init_data_source must be
        None.
      trainable: Whether the variable joins TRAINABLE_VARIABLES.
      collections: Graph collections (default GLOBAL_VARIABLES).
      partitioner: Optional partitioner over the first axis.
      custom_getter: Optional `getter(true_getter, name, *args, **kwargs)`.
      ev_option: An `EmbeddingVariableOption`.

    Returns:
      An `EmbeddingVariable` or a `PartitionedEmbeddingVariable`.

    Raises:
      ValueError: For unsupported arguments, or when reuse rules are broken.

    Example:
      >>> import deeprec as tf
      >>> with tf.variable_scope("doc_scope"):
      ...     ev = tf.get_embedding_variable("emb", embedding_dim=8)
      >>> ev.op.name
      'doc_scope/emb'
    """
    del caching_device, validate_shape
    for field, value in (("regularizer", regularizer), ("constraint", constraint),
                         ("steps_to_live", steps_to_live),
                         ("init_data_source", init_data_source)):
        if value is not None:
            raise ValueError(f"get_embedding_variable('{name}'): {field} is not "
                             "supported for EmbeddingVariables")
    ev_option = ev_option or EmbeddingVariableOption()
    scope = vs.get_variable_scope()
    full_name = f"{scope.name}/{name}" if scope.name else name
    partitioner = partitioner if partitioner is not None else scope.partitioner
    # As in tf.get_variable, the argument replaces the scope's getter (which
    # already composes the getters of enclosing scopes).
    outer = custom_getter if custom_getter is not None else scope.custom_getter
    getter = _true_getter if outer is None else _wrap(outer, _true_getter)
    return getter(full_name, embedding_dim=embedding_dim, key_dtype=key_dtype,
                  value_dtype=value_dtype or dtypes.float32,
                  initializer=initializer, trainable=trainable,
                  collections=collections, partitioner=partitioner,
                  ev_option=ev_option, reuse=scope.reuse)


def create_embedding_variable(full_name: str, embedding_dim: int, initializer: Any = None,
                              trainable: bool = True, collections: list[str] | None = None,
                              partitioner: Callable | None = None,
                              ev_option: EmbeddingVariableOption | None = None):
    """Gets or creates the EV `full_name` as is, without scopes or custom getters.

    For custom getters that turn a requested dense variable into an EV.
    """
    return _true_getter(full_name, embedding_dim=embedding_dim, key_dtype=dtypes.int64,
                        value_dtype=dtypes.float32, initializer=initializer,
                        trainable=trainable, collections=collections,
                        partitioner=partitioner,
                        ev_option=ev_option or EmbeddingVariableOption(),
                        reuse=vs.get_variable_scope().reuse)


def _wrap(custom_getter: Callable, inner: Callable) -> Callable:
    return lambda name, *args, **kwargs: custom_getter(inner, name, *args, **kwargs)


def _true_getter(name: str, embedding_dim: int, key_dtype, value_dtype,
                 initializer, trainable, collections, partitioner, ev_option,
                 reuse):
    store = vs._get_default_variable_store()  # pylint: disable=protected-access
    existing = store._vars.get(name)  # pylint: disable=protected-access
    if existing is not None:
        if reuse is False or reuse is None:
            raise ValueError(
                f"Variable {name} already exists, disallowed. Did you mean to set "
                "reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
        if not isinstance(existing, (EmbeddingVariable, PartitionedEmbeddingVariable)):
            raise ValueError(f"Variable {name} exists but is not an EmbeddingVariable")
        if existing.embedding_dim != embedding_dim:
            raise ValueError(
                f"Trying to share EmbeddingVariable {name} with embedding_dim "
                f"{embedding_dim}, but it was created with {existing.embedding_dim}")
        return existing
    if reuse is True:
        raise ValueError(
            f"Variable {name} does not exist, or was not created with "
            "tf.get_embedding_variable(). Did you mean to set reuse=tf.AUTO_REUSE "
            "in VarScope?")
    init_option = ev_option.init_option
    kwargs = dict(embedding_dim=embedding_dim, key_dtype=key_dtype,
                  value_dtype=value_dtype,
                  initializer=initializer if initializer is not None
                  else init_option.initializer,
                  default_value_dim=init_option.default_value_dim,
                  default_value_no_permission=init_option.default_value_no_permission,
                  trainable=trainable, collections=collections,
                  table_attrs=ev_option.table_attrs())
    num_shards = _num_shards(name, partitioner, embedding_dim, value_dtype)
    if num_shards is None:
        var = EmbeddingVariable(name, **kwargs)
    else:
        var = PartitionedEmbeddingVariable(name, [
            EmbeddingVariable(f"{name}/part_{i}", partition=(name, i, num_shards),
                              **kwargs)
            for i in range(num_shards)])
    store._vars[name] = var  # pylint: disable=protected-access
    return var


def _num_shards(name, partitioner, embedding_dim, value_dtype) -> int | None:
    if partitioner is None:
        return None
    shape = tensor_shape.TensorShape([_NOMINAL_ROWS, embedding_dim])
    partitions = list(partitioner(shape=shape, dtype=value_dtype))
    if len(partitions) != 2 or partitions[1] != 1 or partitions[0] < 1:
        raise ValueError(
            f"get_embedding_variable('{name}'): partitioner returned {partitions}; "
            "EmbeddingVariables can only be partitioned along the first axis")
    return int(partitions[0])
