"""EmbeddingVariable: a dynamic-shape embedding table keyed by raw ids."""

import numbers
from typing import Any, Optional

from tensorflow.python.framework import (
    constant_op,
    dtypes,
    ops,
    tensor_conversion_registry,
    tensor_shape,
)
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import array_ops, init_ops, math_ops, variables
from tensorflow.python.training import training_util
from tensorflow.python.util import dispatch

from deeprec._native import ops as kv_ops

# Names of the tensors an EmbeddingVariable contributes to a checkpoint.
KEYS, VALUES, FREQS, VERSIONS, OFFSETS = (
    "-keys", "-values", "-freqs", "-versions", "-partition_offset")
# ... and, with an exact admission filter, for the ids not yet admitted.
KEYS_FILTERED, FREQS_FILTERED, VERSIONS_FILTERED, FILTER_OFFSETS = (
    "-keys_filtered", "-freqs_filtered", "-versions_filtered",
    "-partition_filter_offset")


def default_values(initializer: Any, rows: int, dim: int,
                   dtype: dtypes.DType) -> tensor_lib.Tensor:
    """Builds the [rows, dim] default-value matrix from an initializer or value."""
    shape = [rows, dim]
    if initializer is None:
        initializer = init_ops.truncated_normal_initializer()
    if isinstance(initializer, type):
        initializer = initializer()
    if callable(initializer):
        value = initializer(shape, dtype=dtype)
    else:
        value = ops.convert_to_tensor(initializer, dtype=dtype)
    value = ops.convert_to_tensor(value, dtype=dtype)
    try:
        return array_ops.broadcast_to(value, shape)
    except ValueError as e:
        raise ValueError(
            f"initializer value of shape {value.shape} cannot fill an "
            f"EmbeddingVariable default-value matrix of shape {shape}") from e


@dispatch.register_dispatchable_type
class EmbeddingVariable(variables.Variable):
    """A variable of shape `[?, embedding_dim]` whose rows are keyed by ids.

    Rows are created the first time a training lookup sees an id; any int64
    (or int32) value is a valid id. Create one with `get_embedding_variable`
    and read it with `tf.nn.embedding_lookup`.

    Example:
      >>> import deeprec as tf
      >>> ev = tf.get_embedding_variable("ev_doc", embedding_dim=4,
      ...     initializer=tf.ones_initializer())
      >>> emb = tf.nn.embedding_lookup(ev, tf.constant([7, 10**12], tf.int64))
      >>> with tf.Session() as sess:
      ...     sess.run(tf.global_variables_initializer())
      ...     print(sess.run(emb).sum(), sess.run(ev.total_count()))
      8.0 [2 4]
    """

    @classmethod
    def _variable_call(cls, *args, **kwargs):
        # tf.Variable's metaclass offers construction to variable creator
        # scopes first; EmbeddingVariables are always constructed directly.
        return None

    def __init__(self, name: str, embedding_dim: int,
                 key_dtype: dtypes.DType = dtypes.int64,
                 value_dtype: dtypes.DType = dtypes.float32,
                 initializer: Any = None, default_value_dim: int = 4096,
                 default_value_no_permission: float = 0.0,
                 trainable: bool = True,
                 collections: list[str] | None = None,
                 primary: Optional["EmbeddingVariable"] = None,
                 partition: tuple[str, int, int] | None = None,
                 table_attrs: dict | None = None):
        """Creates the variable's ops in the default graph.

        Args:
          name: Full name of the handle op (also the checkpoint name prefix).
          embedding_dim: Length of each embedding.
          key_dtype: `tf.int64` or `tf.int32`.
          value_dtype: `tf.float32`.
          initializer: Fills the default-value matrix (see InitializerOption).
          default_value_dim: Rows of the default-value matrix.
          default_value_no_permission: Value for ids not admitted by a filter.
          trainable: Whether to add it to TRAINABLE_VARIABLES.
          collections: Graph collections (default GLOBAL_VARIABLES).
          primary: For an optimizer slot, the variable whose table it shares.
          partition: (root name, shard index, shard count) when this is one
            shard of a partitioned variable.
          table_attrs: Admission and eviction settings of a primary's table
            (`EmbeddingVariableOption.table_attrs()`).
        """
        key_dtype = dtypes.as_dtype(key_dtype)
        value_dtype = dtypes.as_dtype(value_dtype or dtypes.float32)
        if key_dtype not in (dtypes.int64, dtypes.int32):
            raise ValueError(f"EmbeddingVariable '{name}': key_dtype must be int64 "
                             f"or int32, got {key_dtype.name}")
        if value_dtype != dtypes.float32:
            raise ValueError(f"EmbeddingVariable '{name}': value_dtype must be "
                             f"float32, got {value_dtype.name}")
        if isinstance(embedding_dim, bool) \
                or not isinstance(embedding_dim, numbers.Integral) or embedding_dim <= 0:
            raise ValueError(f"EmbeddingVariable '{name}': embedding_dim must be a "
                             f"positive int, got {embedding_dim!r}")
        embedding_dim = int(embedding_dim)
        self._embedding_dim = embedding_dim
        self._key_dtype = key_dtype
        self._dtype = value_dtype
        self._trainable = trainable
        self._primary = primary
        self._slots: list[EmbeddingVariable] = []
        self._export_cache = {}
        self._default_value_dim = default_value_dim
        self.default_value_no_permission = default_value_no_permission
        self._table_attrs = dict(table_attrs or {}) if primary is None else {}
        self._table_attrs.setdefault("default_value_no_permission",
                                     default_value_no_permission)
        with ops.init_scope():
            graph = ops.get_default_graph()
            with ops.name_scope(None):
                unique = graph.unique_name(name, mark_as_used=False)
                self._handle = kv_ops.kv_var_handle_op(
                    name=unique, shared_name=unique, Tkeys=key_dtype,
                    dtype=value_dtype, shape=[embedding_dim])
            self._partition = partition or (self.op.name, 0, 1)
            with ops.name_scope(self.op.name + "/"), ops.colocate_with(self._handle):
                with ops.name_scope("Initializer"):
                    self._initial_value = default_values(
                        initializer, default_value_dim, embedding_dim, value_dtype)
                deps = [primary.initializer] if primary is not None else []
                with ops.control_dependencies(deps):
                    self._initializer_op = self._initialize(if_uninitialized=False)
        if primary is not None:
            primary._slots.append(self)
        if collections is None:
            collections = [ops.GraphKeys.GLOBAL_VARIABLES]
        if trainable and ops.GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections = list(collections) + [ops.GraphKeys.TRAINABLE_VARIABLES]
        ops.add_to_collections(collections, self)

    def _initialize(self, if_uninitialized: bool, name: str = "InitializeKvVariableOp"):
        primary = self._root()
        return kv_ops.initialize_kv_variable_op(
            self._handle, primary.handle, self._initial_value,
            Tkeys=self._key_dtype, if_uninitialized=if_uninitialized, name=name,
            **primary._table_attrs)

    @property
    def has_exact_filter(self) -> bool:
        """Whether ids wait for admission in an exact (per-id) counter."""
        attrs = self._root()._table_attrs
        return attrs.get("filter_freq", 0) > 0 and not attrs.get("bloom_counters", 0)

    # --- identity and graph plumbing --------------------------------------
    @property
    def name(self) -> str:
        return self._handle.name

    @property
    def op(self) -> ops.Operation:
        return self._handle.op

    @property
    def handle(self) -> tensor_lib.Tensor:
        return self._handle

    @property
    def graph(self) -> ops.Graph:
        return self._handle.graph

    @property
    def device(self) -> str:
        return self._handle.device

    @property
    def dtype(self) -> dtypes.DType:
        return self._dtype

    @property
    def key_dtype(self) -> dtypes.DType:
        return self._key_dtype

    @property
    def embedding_dim(self) -> int:
        return self._embedding_dim

    @property
    def shape(self) -> tensor_shape.TensorShape:
        return tensor_shape.TensorShape([self._embedding_dim])

    def get_shape(self) -> tensor_shape.TensorShape:
        return self.shape

    @property
    def initializer(self) -> ops.Operation:
        return self._initializer_op

    @property
    def initial_value(self) -> tensor_lib.Tensor:
        return self._initial_value

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def constraint(self):
        return None

    @property
    def synchronization(self):
        return variables.VariableSynchronization.AUTO

    @property
    def aggregation(self):
        return variables.VariableAggregation.NONE

    @property
    def primary(self) -> Optional["EmbeddingVariable"]:
        """The variable this slot belongs to, or None for a primary."""
        return self._primary

    _save_slice_info = None
    _in_graph_mode = True

    def _ref(self) -> tensor_lib.Tensor:
        # Optimizers differentiate with respect to this tensor; the lookup
        # op's gradient arrives as IndexedSlices on the handle.
        return self._handle

    def _as_graph_element(self) -> tensor_lib.Tensor:
        return self._handle

    def value(self):
        raise TypeError(
            f"EmbeddingVariable '{self.op.name}' has no dense value; read it with "
            "tf.nn.embedding_lookup or export()")

    read_value = value

    def to_proto(self, export_scope=None):
        """EmbeddingVariables are not stored in MetaGraphDef variable lists.

        A `VariableDef` would be re-imported as a dense variable; the
        KvVarHandleOp nodes in the graph identify EmbeddingVariables instead.
        """
        del export_scope
        return None

    def __repr__(self) -> str:
        return (f"<EmbeddingVariable '{self.op.name}' embedding_dim="
                f"{self._embedding_dim} key_dtype={self._key_dtype.name}>")

    # --- DeepRec's EmbeddingVariable API -----------------------------------
    def is_initialized(self, name: str | None = None) -> tensor_lib.Tensor:
        """Scalar bool tensor: whether the table has been initialized."""
        return kv_ops.kv_var_is_initialized_op(self._handle, Tkeys=self._key_dtype,
                                               name=name)

    def total_count(self) -> tensor_lib.Tensor:
        """int64 tensor `[number of keys, embedding_dim]`."""
        return kv_ops.kv_variable_shape(self._handle, Tkeys=self._key_dtype)

    def sparse_read(self, indices, name: str | None = None) -> tensor_lib.Tensor:
        """Embeddings of `indices` (shape indices.shape + [embedding_dim])."""
        indices = self._check_ids(indices)
        return kv_ops.kv_resource_gather(self._handle, indices, name=name)

    def get_frequency(self, ids) -> tensor_lib.Tensor:
        """int64 lookup counts of `ids` (0 for absent ids)."""
        return kv_ops.kv_resource_lookup_frequency(self._handle, self._check_ids(ids))

    def get_version(self, ids) -> tensor_lib.Tensor:
        """Global step of each id's last update (-1 if absent or never updated)."""
        return kv_ops.kv_resource_lookup_version(self._handle, self._check_ids(ids))

    def evict(self) -> tensor_lib.Tensor:
        """Runs the eviction policy now; returns how many ids it removed.

        The global-step rule is judged at the graph's global step (skipped when
        the graph has none). Saving a checkpoint evicts the same way.
        """
        return kv_ops.kv_resource_evict(self._root().handle, _global_step_value(),
                                        Tkeys=self._key_dtype)

    def stats(self) -> tensor_lib.Tensor:
        """int64 `[total ids, admitted ids, ids waiting for admission, ids
        evicted at the last eviction]`."""
        return kv_ops.kv_variable_stats(self._root().handle, Tkeys=self._key_dtype)

    def export(self) -> tuple[tensor_lib.Tensor, ...]:
        """Returns tensors `(keys, values, versions, freqs)` of one snapshot."""
        snapshot = self._snapshot()
        column = self._column_index()
        if column == 0:
            return (snapshot.keys, snapshot.values, snapshot.versions, snapshot.freqs)
        return (snapshot.keys, snapshot.slot_values[column - 1], snapshot.versions,
                snapshot.freqs)

    # --- internals ----------------------------------------------------------
    def _check_ids(self, ids) -> tensor_lib.Tensor:
        if not isinstance(ids, tensor_lib.Tensor):
            ids = ops.convert_to_tensor(ids, dtype=self._key_dtype)
        ids = ops.convert_to_tensor(ids)
        if ids.dtype != self._key_dtype:
            raise TypeError(
                f"EmbeddingVariable '{self.op.name}' has key_dtype "
                f"{self._key_dtype.name} but was looked up with ids of dtype "
                f"{ids.dtype.name}; cast the ids with tf.cast(ids, "
                f"tf.{self._key_dtype.name})")
        return ids

    def _root(self) -> "EmbeddingVariable":
        return self._primary if self._primary is not None else self

    def _column_index(self) -> int:
        return 0 if self._primary is None else 1 + self._primary._slots.index(self)

    def _snapshot(self, for_checkpoint: bool = False):
        """The (cached) export op over the primary and all its current slots.

        For a checkpoint it first applies the eviction policy, as DeepRec
        evicts whenever a checkpoint is saved.
        """
        root = self._root()
        evict = for_checkpoint and ("steps_to_live" in root._table_attrs
                                    or "l2_weight_threshold" in root._table_attrs)
        key = (evict,) + tuple(id(s) for s in root._slots)
        if key not in root._export_cache:
            with ops.name_scope(root.op.name + "/"), ops.colocate_with(root.handle):
                root._export_cache[key] = kv_ops.kv_resource_export(
                    root.handle, [s.handle for s in root._slots],
                    _global_step_value(), Tkeys=root.key_dtype, evict=evict,
                    name="EvictAndExport" if evict else "Export")
        return root._export_cache[key]

    def _gather_saveables_for_checkpoint(self):
        from deeprec.embedding import saveable  # Avoids an import cycle.
        return {"": lambda name=None: saveable.EmbeddingVariableSaveable(self)}


def _global_step_value() -> tensor_lib.Tensor:
    """The graph's global step as int64, or -1 when it has none."""
    step = training_util.get_global_step()
    if step is None:
        return constant_op.constant(-1, dtypes.int64)
    return math_ops.cast(ops.convert_to_tensor(step), dtypes.int64)


def _to_tensor(value: EmbeddingVariable, dtype=None, name=None, as_ref=False):
    del dtype, name
    if as_ref:
        return value.handle
    raise TypeError(
        f"EmbeddingVariable '{value.op.name}' cannot be converted to a dense "
        "tensor; read it with tf.nn.embedding_lookup(ev, ids)")


tensor_conversion_registry.register_tensor_conversion_function(
    EmbeddingVariable, _to_tensor)
