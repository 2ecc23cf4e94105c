"""Checkpointing of EmbeddingVariables through TensorFlow's Saver protocol.

A primary variable `N` saves `N-keys`, `N-values`, `N-freqs`, `N-versions`
and `N-partition_offset` (int32[1001]: rows grouped by key mod 1000); an
optimizer slot `N/Opt` saves `N/Opt-keys`, `N/Opt-values` and
`N/Opt-partition_offset`. All come from one export op, so values and slots
are a consistent snapshot. Any stock `tf.train.Saver` (and so Scaffold,
MonitoredTrainingSession, Estimator and SavedModel) saves and restores them
with the same shard count. `EmbeddingVariableSaverBuilder`, the default of
`deeprec.train.Saver`, additionally restores into a different shard count.
"""

import os

from tensorflow.python.framework import ops
from tensorflow.python.framework import tensor as tensor_lib
from tensorflow.python.ops import array_ops, control_flow_ops
from tensorflow.python.training import saver as saver_lib
from tensorflow.python.training.saving import saveable_object

from deeprec._native import ops as kv_ops
from deeprec.embedding import variable as ev_lib


def save_filtered_features() -> bool:
    """Whether checkpoints keep not-yet-admitted ids (TF_EV_SAVE_FILTERED_FEATURES)."""
    value = os.environ.get("TF_EV_SAVE_FILTERED_FEATURES", "true")
    return value.strip().lower() not in ("false", "0", "no")


class EmbeddingVariableSaveable(saveable_object.SaveableObject):
    """The SaveableObject of one EmbeddingVariable or slot."""

    def __init__(self, var: "ev_lib.EmbeddingVariable"):
        self.var = var
        name = var.op.name
        snapshot = var._snapshot(for_checkpoint=True)
        column = var._column_index()
        tensors = {ev_lib.KEYS: snapshot.keys}
        if column == 0:
            tensors.update({ev_lib.VALUES: snapshot.values, ev_lib.FREQS: snapshot.freqs,
                            ev_lib.VERSIONS: snapshot.versions})
        else:
            tensors[ev_lib.VALUES] = snapshot.slot_values[column - 1]
        tensors[ev_lib.OFFSETS] = snapshot.partition_offset
        if column == 0 and var.has_exact_filter and save_filtered_features():
            tensors.update({
                ev_lib.KEYS_FILTERED: snapshot.keys_filtered,
                ev_lib.FREQS_FILTERED: snapshot.freqs_filtered,
                ev_lib.VERSIONS_FILTERED: snapshot.versions_filtered,
                ev_lib.FILTER_OFFSETS: snapshot.partition_filter_offset})
        self._suffixes = list(tensors)
        specs = [saveable_object.SaveSpec(t, "", name + suffix)
                 for suffix, t in tensors.items()]
        super().__init__(var, specs, name)

    @property
    def is_primary(self) -> bool:
        return self.var.primary is None

    def _ensure_initialized(self):
        """Initializes the variable (and its primary) unless already done.

        Restores may run instead of the initializers (MonitoredTrainingSession
        restores without initializing), and an import needs the table.
        """
        primary = self.var._root()
        with ops.name_scope(self.var.op.name + "/"):
            ensure = [primary._initialize(if_uninitialized=True,
                                          name="InitializeIfNeeded")]
            if self.var is not primary:
                with ops.control_dependencies(ensure):
                    ensure = [self.var._initialize(if_uninitialized=True,
                                                   name="InitializeSlotIfNeeded")]
        return ensure

    def restore(self, restored_tensors, restored_shapes):
        """Restores from this variable's own tensors (same shard count)."""
        del restored_shapes
        restored = dict(zip(self._suffixes, restored_tensors, strict=True))
        empty = array_ops.zeros([0], "int64")
        no_keys = array_ops.zeros([0], self.var.key_dtype)
        with ops.colocate_with(self.var.handle), \
                ops.control_dependencies(self._ensure_initialized()):
            return kv_ops.kv_resource_import(
                self.var.handle, restored[ev_lib.KEYS], restored[ev_lib.VALUES],
                restored.get(ev_lib.FREQS, empty), restored.get(ev_lib.VERSIONS, empty),
                restored.get(ev_lib.KEYS_FILTERED, no_keys),
                restored.get(ev_lib.FREQS_FILTERED, empty),
                restored.get(ev_lib.VERSIONS_FILTERED, empty),
                drop_absent=self.is_primary, tensor_name=self.name + ev_lib.VALUES)

    def restore_from_checkpoint(self, prefix: tensor_lib.Tensor) -> ops.Operation:
        """Restores from the checkpoint at `prefix`, whatever its shard count."""
        primary = self.var._root()
        root, index, count = primary._partition
        suffix = self.var.op.name[len(primary.op.name):]
        with ops.colocate_with(self.var.handle), \
                ops.control_dependencies(self._ensure_initialized()):
            return kv_ops.kv_resource_import_from_checkpoint(
                prefix, self.var.handle, Tkeys=self.var.key_dtype, root=root,
                suffix=suffix, partition_id=index, partition_num=count,
                drop_absent=self.is_primary)


class EmbeddingVariableSaverBuilder(saver_lib.BulkSaverBuilder):
    """A SaverBuilder whose restore re-shards EmbeddingVariables.

    EmbeddingVariables read their rows straight from the checkpoint, keeping
    the ids routed to their shard, so a checkpoint saved with n shards
    restores into m shards. Other variables restore as usual.
    """

    def _AddRestoreOps(self, filename_tensor, saveables, restore_sequentially,
                       reshape, preferred_shard=-1, name="restore_all"):
        ev_saveables = [s for s in saveables if isinstance(s, EmbeddingVariableSaveable)]
        others = [s for s in saveables if not isinstance(s, EmbeddingVariableSaveable)]
        restore_ops = [s.restore_from_checkpoint(filename_tensor) for s in ev_saveables]
        if others:
            restore_ops.append(super()._AddRestoreOps(
                filename_tensor, others, restore_sequentially, reshape,
                preferred_shard=preferred_shard, name=name + "_dense"))
        return control_flow_ops.group(*restore_ops, name=name)
