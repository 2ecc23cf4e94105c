"""A training hook that writes EmbeddingVariable statistics to TensorBoard."""

from tensorflow.core.framework import summary_pb2
from tensorflow.python.framework import ops
from tensorflow.python.ops import array_ops_stack
from tensorflow.python.training import session_run_hook, training_util
from tensorflow.python.training.summary_io import SummaryWriterCache

from deeprec.embedding.variable import EmbeddingVariable

_NAMES = ("total_keys", "admitted_keys", "filtered_keys", "evicted_keys_last_save")


class EmbeddingVariableStatsHook(session_run_hook.SessionRunHook):
    """Writes per-EV scalars every `every_n_steps` steps.

    For every EmbeddingVariable (not its optimizer slots) in the graph:
    `<name>/total_keys`, `<name>/admitted_keys`, `<name>/filtered_keys` (ids
    waiting for admission) and `<name>/evicted_keys_last_save`. Works with
    `MonitoredTrainingSession` and Estimator (`hooks=[...]`).

    Args:
      output_dir: Directory of the event files (e.g. the checkpoint dir).
      every_n_steps: How often, in global steps, to write.

    Example:
      >>> import deeprec as tf
      >>> ev = tf.get_embedding_variable("hook_doc", embedding_dim=4)
      >>> hook = tf.train.EmbeddingVariableStatsHook("/tmp/hook_doc", every_n_steps=10)
    """

    def __init__(self, output_dir: str, every_n_steps: int = 100):
        if every_n_steps <= 0:
            raise ValueError("EmbeddingVariableStatsHook: every_n_steps must be positive, "
                             f"got {every_n_steps!r}")
        self._output_dir = output_dir
        self._every_n_steps = every_n_steps
        self._next_step = None

    def begin(self):
        evs = [v for v in ops.get_collection(ops.GraphKeys.GLOBAL_VARIABLES)
               if isinstance(v, EmbeddingVariable) and v.primary is None]
        self._names = [v.op.name for v in evs]
        self._stats = array_ops_stack.stack([v.stats() for v in evs]) if evs else None
        self._global_step = training_util.get_global_step()
        if self._global_step is None:
            raise RuntimeError("EmbeddingVariableStatsHook needs a global step; create "
                               "one with tf.train.get_or_create_global_step()")

    def before_run(self, run_context):
        return session_run_hook.SessionRunArgs(self._global_step)

    def after_run(self, run_context, run_values):
        step = int(run_values.results)
        if self._stats is None or (self._next_step is not None and step < self._next_step):
            return
        self._next_step = step + self._every_n_steps
        stats = run_context.session.run(self._stats)
        summary = summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag=f"{name}/{label}", simple_value=float(value))
            for name, row in zip(self._names, stats, strict=True)
            for label, value in zip(_NAMES, row, strict=True)])
        SummaryWriterCache.get(self._output_dir).add_summary(summary, step)

    def end(self, session):
        SummaryWriterCache.get(self._output_dir).flush()
