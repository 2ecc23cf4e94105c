"""`tf.train.Saver` and `MonitoredTrainingSession` that re-shard EmbeddingVariables."""

import inspect
import os

from tensorflow.core.protobuf import saver_pb2
from tensorflow.python.framework import ops
from tensorflow.python.platform import gfile
from tensorflow.python.training import monitored_session
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


def MonitoredTrainingSession(*args, **kwargs):  # pylint: disable=invalid-name
    """`tf.train.MonitoredTrainingSession` with a re-sharding default Saver.

    When neither the scaffold nor the graph's SAVERS collection provides a
    saver, registers the `Saver(sharded=True, allow_empty=True)` that the
    stock Scaffold would create, built with `EmbeddingVariableSaverBuilder`.
    Takes the same arguments as the stock function.
    """
    bound = _MTS_SIGNATURE.bind(*args, **kwargs)
    scaffold = bound.arguments.get("scaffold")
    if (scaffold is None or scaffold.saver is None) and \
            not ops.get_collection(ops.GraphKeys.SAVERS):
        ops.add_to_collection(ops.GraphKeys.SAVERS,
                              Saver(sharded=True, allow_empty=True))
    return monitored_session.MonitoredTrainingSession(*args, **kwargs)
