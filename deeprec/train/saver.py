"""`tf.train.Saver` and `MonitoredTrainingSession` that re-shard EmbeddingVariables."""

import inspect
import os

from tensorflow.core.protobuf import saver_pb2
from tensorflow.python.framework import ops
from tensorflow.python.platform import gfile
from tensorflow.python.training import basic_session_run_hooks, monitored_session
from tensorflow.python.training import saver as saver_lib

from deeprec.embedding.saveable import EmbeddingVariableSaverBuilder


class Saver(saver_lib.Saver):
    """`tf.train.Saver` whose restore also re-shards EmbeddingVariables.

    Saving is TensorFlow's. Restoring reads EmbeddingVariables straight from
    the checkpoint, so a variable saved with n shards restores into m shards.
    Takes the same arguments as `tf.compat.v1.train.Saver`.

    Example:
      >>> import deeprec as tf
      >>> ev = tf.get_embedding_variable("saver_doc", embedding_dim=4)
      >>> saver = tf.train.Saver()
    """

    def __init__(self, *args, **kwargs):
        if "builder" not in kwargs and len(args) < 9:
            write_version = kwargs.get("write_version", saver_pb2.SaverDef.V2)
            kwargs["builder"] = EmbeddingVariableSaverBuilder(write_version)
        super().__init__(*args, **kwargs)

    def save(self, sess, save_path, *args, **kwargs):
        """Like `tf.train.Saver.save`, creating the parent directory if needed.

        DeepRec's scripts (e.g. user guide §3.21) save into fresh directories.
        """
        parent = os.path.dirname(save_path)
        if parent:
            gfile.MakeDirs(parent)
        return super().save(sess, save_path, *args, **kwargs)


_MTS_SIGNATURE = inspect.signature(monitored_session.MonitoredTrainingSession)
# CheckpointSaverHook's steps per session.run until someone sets it (only
# Estimator does): with it the hook cannot tell from the step it fetched
# whether a save is due, so it runs the global step again after every run.
_STEPS_PER_RUN_UNSET = 1_000_000


def _one_step_per_run(session) -> None:
    """Tells `session`'s CheckpointSaverHooks that each run is one step.

    Otherwise every training step costs a second session.run, of the global
    step alone: about 2% of the model zoo DLRM's samples/s at batch 512 on
    two cores. One step per run is what a MonitoredTrainingSession loop does; a
    train op that moves the global step further saves at most one run late,
    never skips a save.
    """
    for hook in getattr(session, "_hooks", ()):
        if isinstance(hook, basic_session_run_hooks.CheckpointSaverHook) and \
                getattr(hook, "_steps_per_run", None) == _STEPS_PER_RUN_UNSET:
            hook._set_steps_per_run(1)  # pylint: disable=protected-access


def MonitoredTrainingSession(*args, **kwargs):  # pylint: disable=invalid-name
    """`tf.train.MonitoredTrainingSession` with a re-sharding default Saver.

    When neither the scaffold nor the graph's SAVERS collection provides a
    saver, registers the `Saver(sharded=True, allow_empty=True)` that the
    stock Scaffold would create, built with `EmbeddingVariableSaverBuilder`.
    Its CheckpointSaverHooks (its own and any passed in `hooks` or
    `chief_only_hooks` whose steps per run nobody set) count one global step
    per `run`, so they do not read the global step again after every step
    as stock's do. Takes the same arguments as the stock function.

    Example:
      >>> import tempfile
      >>> import deeprec as tf
      >>> step = tf.train.get_or_create_global_step()
      >>> train_op = tf.assign_add(step, 1)
      >>> with tf.train.MonitoredTrainingSession(
      ...         checkpoint_dir=tempfile.mkdtemp(), save_checkpoint_steps=2,
      ...         hooks=[tf.train.StopAtStepHook(last_step=5)]) as sess:
      ...     while not sess.should_stop():
      ...         _ = sess.run(train_op)
    """
    bound = _MTS_SIGNATURE.bind(*args, **kwargs)
    scaffold = bound.arguments.get("scaffold")
    if (scaffold is None or scaffold.saver is None) and \
            not ops.get_collection(ops.GraphKeys.SAVERS):
        ops.add_to_collection(ops.GraphKeys.SAVERS,
                              Saver(sharded=True, allow_empty=True))
    session = monitored_session.MonitoredTrainingSession(*args, **kwargs)
    _one_step_per_run(session)
    return session
