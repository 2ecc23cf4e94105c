"""Configuration objects of EmbeddingVariables (user guide §3.1.4)."""

import numbers
from typing import Any


class InitializerOption:
    """How new keys of an EmbeddingVariable get their initial values.

    A default-value matrix of shape `[default_value_dim, embedding_dim]` is
    filled once by `initializer` when the variable is initialized; a new key
    `k` takes row `k mod default_value_dim`, so values follow the initializer's
    distribution and are reproducible under a graph or op seed.

    Args:
      initializer: A TensorFlow initializer (default: truncated normal, stddev
        1), or a value broadcastable to `[default_value_dim, embedding_dim]`.
      default_value_dim: Rows of the default-value matrix (> 0).
      default_value_no_permission: Value looked up for ids not yet admitted by
        a feature filter.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.InitializerOption(initializer=tf.ones_initializer(),
      ...                            default_value_dim=1024)
      >>> opt.default_value_dim
      1024
    """

    def __init__(self, initializer: Any = None, default_value_dim: int = 4096,
                 default_value_no_permission: float = 0.0):
        if isinstance(default_value_dim, bool) \
                or not isinstance(default_value_dim, numbers.Integral) \
                or default_value_dim <= 0:
            raise ValueError(
                "InitializerOption: default_value_dim must be a positive int, "
                f"got {default_value_dim!r}")
        self.initializer = initializer
        self.default_value_dim = int(default_value_dim)
        self.default_value_no_permission = float(default_value_no_permission)


class EmbeddingVariableOption:
    """Options of an EmbeddingVariable, passed as `ev_option=`.

    Args:
      init_option: An `InitializerOption`.
      filter_option: Feature admission filter (not supported yet: must be
        None).
      evict_option: Feature eviction policy (not supported yet: must be None).

    Example:
      >>> import deeprec as tf
      >>> opt = tf.EmbeddingVariableOption(
      ...     init_option=tf.InitializerOption(default_value_dim=16))
      >>> opt.init_option.default_value_dim
      16
    """

    def __init__(self, ht_type: str = "", ht_partition_num: int = 1000,
                 evict_option: Any | None = None, ckpt: Any | None = None,
                 filter_option: Any | None = None,
                 storage_option: Any | None = None,
                 init_option: InitializerOption | None = None):
        for field, value in (("evict_option", evict_option),
                             ("filter_option", filter_option),
                             ("ckpt", ckpt), ("storage_option", storage_option)):
            if value is not None:
                raise ValueError(
                    f"EmbeddingVariableOption: {field}={value!r} is not supported "
                    "by this version of deeprec")
        if ht_partition_num != 1000:
            raise ValueError(
                "EmbeddingVariableOption: ht_partition_num must be 1000 (the "
                f"checkpoint bucket count), got {ht_partition_num!r}")
        if init_option is None:
            init_option = InitializerOption()
        if not isinstance(init_option, InitializerOption):
            raise ValueError(
                "EmbeddingVariableOption: init_option must be an InitializerOption, "
                f"got {init_option!r}")
        self.ht_type = ht_type
        self.ht_partition_num = ht_partition_num
        self.evict_option = evict_option
        self.filter_option = filter_option
        self.init_option = init_option
