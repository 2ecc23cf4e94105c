"""SessionGroup: N sessions over one loaded copy of a SavedModel.

DeepRec's SessionGroup (user guide §3.39) shares one model's variables among
N sessions, each with its own thread pool. In stock TensorFlow a variable
(and an EmbeddingVariable's hash table) lives in the resource manager of the
session's devices, and every `tf.Session` creates its own devices: N sessions
would load N copies. What TensorFlow does offer is one session with several
inter-op thread pools (`ConfigProto.session_inter_op_thread_pool`), a run
choosing its pool with `RunOptions.inter_op_thread_pool`. So a group here is
one session (one model in memory, every EV table shared) whose members are
its pools: member k runs its requests on pool k, requests go round robin.

- `use_per_session_threads=True`: member k owns pool k of
  `inter_op_parallelism_threads` threads, so one slow request cannot hold up
  the others' scheduling (DeepRec's recommended setting).
- `use_per_session_threads=False`: the members share the session's one pool,
  as DeepRec's group members share the process-wide pools; N then changes nothing.
- Intra-op work (inside an op: Eigen, EV kernels) runs on TensorFlow's
  process-wide CPU device pool of `intra_op_parallelism_threads` in both cases.

Before import, every EmbeddingVariable lookup in the graph is made an
inference lookup (`deeprec.serving.mark_inference_lookups`, again: SavedModels
that deeprec exported are marked already, others may not be): serving never
inserts ids, and unseen ids read the EV's default value.

Example (not run here: it needs a SavedModel on disk):
  group = SessionGroup("/models/wdl/1", ["serve"], SessionConfig(
      session_num=2, use_per_session_threads=True))
  [probability] = group.run({"user:0": ids, ...}, ["Sigmoid:0"])
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.saved_model import loader_impl

import deeprec  # noqa: F401  (registers the EmbeddingVariable ops the graphs use)
from deeprec.serving.export import mark_inference_lookups
from deeprec.serving.model_server.config import SessionConfig

__all__ = ["SessionGroup"]

_log = logging.getLogger(__name__)


class SessionGroup:
    """One SavedModel loaded once, run by `session_config.session_num` members.

    Args:
      export_dir: the SavedModel directory (one version).
      tags: the MetaGraph's tags (TF Serving's `--saved_model_tags`).
      session_config: group size, per-member threads and the ConfigProto.

    Raises:
      RuntimeError/IOError/tf.errors.OpError: the SavedModel cannot be loaded
        (the caller reports it against the model version).
    """

    def __init__(self, export_dir: str, tags: Sequence[str],
                 session_config: SessionConfig) -> None:
        config = config_pb2.ConfigProto()
        config.CopyFrom(session_config.config)
        self.size = session_config.session_num
        pools = self.size if session_config.use_per_session_threads else 1
        if session_config.use_per_session_threads and pools == 1:
            config.use_per_session_threads = True  # its own pool, not the process-wide one
        elif pools > 1:
            del config.session_inter_op_thread_pool[:]
            for _ in range(pools):
                config.session_inter_op_thread_pool.add(
                    num_threads=config.inter_op_parallelism_threads)
        self._run_options = [config_pb2.RunOptions(inter_op_thread_pool=k) for k in range(pools)]
        self._next = itertools.count()
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()

        loader = loader_impl.SavedModelLoader(export_dir)
        meta_graph = loader.get_meta_graph_def_from_tags(list(tags))
        rewritten = mark_inference_lookups(meta_graph.graph_def)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        try:
            with self.graph.as_default():
                # load() reads the MetaGraph just rewritten in the loader's proto.
                loaded = loader.load(self.session, list(tags))
        except BaseException:
            self.session.close()
            raise
        self.meta_graph: meta_graph_pb2.MetaGraphDef = loaded
        self.signatures = dict(loaded.signature_def)
        _log.info("loaded %s: %d EV lookups newly marked inference-only, %d session(s), "
                  "%d inter-op pool(s)",
                  export_dir, rewritten, self.size, pools)

    def run(self, feeds: dict[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Runs the graph on the next member's pool: `fetches` (tensor names) given `feeds`.

        Raises:
          tf.errors.OpError: the run failed (bad values the graph rejects).
        """
        names = tuple(feeds)
        key = (names, tuple(fetches))
        runner = self._callables.get(key)
        if runner is None:
            with self._lock:
                runner = self._callables.get(key)
                if runner is None:
                    # One callable per feed/fetch set: the graph is pruned once,
                    # not on every request.
                    runner = self.session.make_callable(
                        list(fetches), [self.graph.get_tensor_by_name(n) for n in names],
                        accept_options=True)
                    self._callables[key] = runner
        options = self._run_options[next(self._next) % len(self._run_options)]
        return runner(*(feeds[n] for n in names), options=options)

    def close(self) -> None:
        """Releases the session (and with it the model's memory)."""
        self.session.close()
