"""Configuration objects of EmbeddingVariables (user guide §3.1.4)."""

import math
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


def _non_negative_int(owner: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{owner}: {field} must be a non-negative int, got {value!r}")
    return int(value)


class CounterFilter:
    """Admits an id once it has been looked up `filter_freq` times (§3.3).

    Until then its lookups return `default_value_no_permission` and it gets no
    updates; its count is kept exactly, per id. `filter_freq=0` disables it.

    Example:
      >>> import deeprec as tf
      >>> opt = tf.EmbeddingVariableOption(filter_option=tf.CounterFilter(3))
      >>> opt.filter_option.filter_freq
      3
    """

    def __init__(self, filter_freq: int = 0):
        self.filter_freq = _non_negative_int("CounterFilter", "filter_freq", filter_freq)


_CBF_COUNTER_BITS = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64,
                     "int8": 8, "int16": 16, "int32": 32, "int64": 64}


class CBFFilter:
    """Admission by a counting Bloom filter: little memory for rare ids (§3.3).

    Counts are estimated (never under-counted) by `num_hash_func` counters of
    type `counter_type` out of `num_counter`, sized for `max_element_size` ids
    at `false_positive_probability`: num_counter = -n ln(p) / ln(2)^2 and
    num_hash_func = round(num_counter / n * ln 2), as in the guide's table.
    Counting past `filter_freq` decides nothing, so each counter is stored in
    the fewest of 4, 8, 16, 32 or 64 bits that hold `filter_freq` (never more
    than `counter_type` has); admitted ids keep their exact frequency in their
    record. Ids not yet admitted are not stored, so they are not checkpointed.

    Example:
      >>> import deeprec as tf
      >>> f = tf.CBFFilter(filter_freq=3, max_element_size=2**20,
      ...                  false_positive_probability=0.01, counter_type=tf.uint16)
      >>> f.num_hash_func
      7
    """

    def __init__(self, filter_freq: int = 0, max_element_size: int = 0,
                 false_positive_probability: float = -1.0, counter_type: Any = "uint64"):
        self.filter_freq = _non_negative_int("CBFFilter", "filter_freq", filter_freq)
        self.max_element_size = _non_negative_int("CBFFilter", "max_element_size",
                                                  max_element_size)
        name = getattr(counter_type, "name", counter_type)
        if name not in _CBF_COUNTER_BITS:
            raise ValueError(
                f"CBFFilter: counter_type must be one of {sorted(_CBF_COUNTER_BITS)} "
                f"(or the tf dtype), got {counter_type!r}")
        self.counter_type = name
        self.counter_bits = _CBF_COUNTER_BITS[name]
        self.false_positive_probability = float(false_positive_probability)
        self.num_counter = self.num_hash_func = 0
        if self.filter_freq == 0:
            return
        if self.max_element_size == 0:
            raise ValueError("CBFFilter: max_element_size must be positive when "
                             f"filter_freq={self.filter_freq} > 0")
        p = self.false_positive_probability
        if not 0.0 < p < 1.0:
            raise ValueError("CBFFilter: false_positive_probability must be in (0, 1) "
                             f"when filter_freq > 0, got {false_positive_probability!r}")
        if self.filter_freq >= 1 << self.counter_bits:
            raise ValueError(f"CBFFilter: filter_freq={self.filter_freq} does not fit in "
                             f"counter_type {name}")
        n = self.max_element_size
        self.num_counter = max(1, math.ceil(-n * math.log(p) / math.log(2) ** 2))
        self.num_hash_func = max(1, round(self.num_counter / n * math.log(2)))


class GlobalStepEvict:
    """Evicts ids not updated for more than `steps_to_live` global steps (§3.2).

    Eviction runs when a checkpoint is saved and through
    `EmbeddingVariable.evict()`. `steps_to_live=None` disables it.

    Example:
      >>> import deeprec as tf
      >>> tf.GlobalStepEvict(steps_to_live=4000).steps_to_live
      4000
    """

    def __init__(self, steps_to_live: int | None = None):
        self.steps_to_live = None if steps_to_live is None else _non_negative_int(
            "GlobalStepEvict", "steps_to_live", steps_to_live)


class L2WeightEvict:
    """Evicts ids whose embedding's L2 norm is below `l2_weight_threshold` (§3.2).

    Example:
      >>> import deeprec as tf
      >>> tf.L2WeightEvict(l2_weight_threshold=1.0).l2_weight_threshold
      1.0
    """

    def __init__(self, l2_weight_threshold: float = -1.0):
        if isinstance(l2_weight_threshold, bool) \
                or not isinstance(l2_weight_threshold, numbers.Real) \
                or not math.isfinite(l2_weight_threshold) or l2_weight_threshold < 0:
            raise ValueError("L2WeightEvict: l2_weight_threshold must be a finite "
                             f"number >= 0, got {l2_weight_threshold!r}")
        self.l2_weight_threshold = float(l2_weight_threshold)


class EmbeddingVariableOption:
    """Options of an EmbeddingVariable, passed as `ev_option=`.

    Args:
      evict_option: `GlobalStepEvict`, `L2WeightEvict` or None.
      filter_option: `CounterFilter`, `CBFFilter` or None.
      init_option: An `InitializerOption`.
      ht_type, ht_partition_num, ckpt, storage_option: accepted for signature
        compatibility; `ckpt` and `storage_option` must be None and
        `ht_partition_num` 1000.

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
        if evict_option is not None and \
                not isinstance(evict_option, (GlobalStepEvict, L2WeightEvict)):
            raise ValueError("EmbeddingVariableOption: evict_option must be a "
                             f"GlobalStepEvict or L2WeightEvict, got {evict_option!r}")
        if filter_option is not None and \
                not isinstance(filter_option, (CounterFilter, CBFFilter)):
            raise ValueError("EmbeddingVariableOption: filter_option must be a "
                             f"CounterFilter or CBFFilter, got {filter_option!r}")
        for field, value in (("ckpt", ckpt), ("storage_option", storage_option)):
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

    def table_attrs(self) -> dict:
        """The InitializeKvVariableOp attrs that configure the table's policy."""
        attrs = {"default_value_no_permission": self.init_option.default_value_no_permission}
        f = self.filter_option
        if f is not None and f.filter_freq > 0:
            attrs["filter_freq"] = f.filter_freq
            if isinstance(f, CBFFilter):
                attrs.update(bloom_counters=f.num_counter, bloom_hashes=f.num_hash_func,
                             bloom_counter_bits=f.counter_bits)
        e = self.evict_option
        if isinstance(e, GlobalStepEvict) and e.steps_to_live is not None:
            attrs["steps_to_live"] = e.steps_to_live
        elif isinstance(e, L2WeightEvict):
            attrs["l2_weight_threshold"] = e.l2_weight_threshold
        return attrs
