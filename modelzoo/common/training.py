"""Training with `tf.train.MonitoredTrainingSession`: progress, summaries, checkpoints.

The session restores from `checkpoint_dir` when it holds a checkpoint,
writes TensorBoard summaries (loss, mean prediction, samples/s,
global_step/sec) every `--summary_steps` and checkpoints every
`--save_steps` and at the end. Throughput is measured after a warm-up (the
first steps include graph optimisation and table growth).
"""

from __future__ import annotations

import contextlib
import gc
import math
import time

from modelzoo.common.progress import ProgressBar
from modelzoo.common.tfapi import tf
from modelzoo.data import files
from modelzoo.data.reader import make_dataset


class _TrainingHook(tf.train.SessionRunHook):
    """Fetches loss and batch size every step; drives the progress bar; records throughput."""

    def __init__(self, loss, batch, total_steps, args, summary_dir):
        self._loss, self._batch = loss, batch
        self._bar = ProgressBar(total_steps, args.batch_size, log_every=args.log_steps)
        self._summary_dir, self._summary_steps = summary_dir, args.summary_steps
        self.warmup = min(50, max(1, (total_steps or 1000) // 10))
        self.losses: list[float] = []
        self.samples = 0
        self._timed_samples = 0
        self._timed_start = None
        self._cpu_start = None
        self.timed_cpu_seconds = 0.0
        self._window: list[tuple[float, int]] = []
        self.timed_seconds = 0.0

    def begin(self):
        self._global_step = tf.train.get_global_step()

    def before_run(self, run_context):
        return tf.train.SessionRunArgs([self._loss, self._batch, self._global_step])

    def after_run(self, run_context, run_values):
        loss, batch, step = run_values.results
        now = time.perf_counter()
        self.losses.append(float(loss))
        self.samples += int(batch)
        if len(self.losses) == self.warmup:
            self._timed_start = now
            self._cpu_start = time.process_time()
        elif self._timed_start is not None:
            self._timed_samples += int(batch)
            self.timed_seconds = now - self._timed_start
            self.timed_cpu_seconds = time.process_time() - self._cpu_start
        self._window.append((now, int(batch)))
        self._window = self._window[-50:]
        rate = None
        if len(self._window) > 1:
            span = self._window[-1][0] - self._window[0][0]
            rate = sum(b for _, b in self._window[1:]) / span if span > 0 else None
        self._bar.update(int(step) + 1, float(loss), rate)
        if rate and (int(step) + 1) % self._summary_steps == 0:
            summary = tf.Summary(value=[tf.Summary.Value(tag="samples/sec", simple_value=rate)])
            tf.summary.FileWriterCache.get(self._summary_dir).add_summary(summary, int(step) + 1)

    def end(self, session):
        self._bar.close()

    @property
    def samples_per_sec(self) -> float | None:
        if self._timed_samples and self.timed_seconds > 0:
            return self._timed_samples / self.timed_seconds
        return None

    @property
    def samples_per_cpu_sec(self) -> float | None:
        """Samples per second of this process's CPU time (all threads): on a shared
        machine this moves less with other processes' load than samples/s."""
        if self._timed_samples and self.timed_cpu_seconds > 0:
            return self._timed_samples / self.timed_cpu_seconds
        return None


def total_steps(args, train_rows: int) -> int:
    """`--steps`, or the steps of `--epochs` passes over `train_rows` rows."""
    if args.steps:
        return args.steps
    return math.ceil(train_rows * args.epochs / args.batch_size)


def session_config(args):
    return tf.ConfigProto(inter_op_parallelism_threads=args.inter,
                          intra_op_parallelism_threads=args.intra)


@contextlib.contextmanager
def _gc_frozen():
    """Keeps Python's cyclic collector off the objects that exist on entry.

    The training loop allocates Python objects every step, which trigger
    collections, and each full one rescanned every Python object of the
    graph. Frozen, model zoo DLRM trained at 57,900 against 55,900 samples/s
    (six alternating runs each, batch 512, two cores). Unfrozen on exit, so
    that a process that goes on can free the graph.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def train(model, args, meta, data_dir: str, checkpoint_dir: str) -> dict:
    """Trains `model` on the data set's train split; returns a summary dict.

    Returns:
      `{"steps", "samples", "seconds", "samples_per_sec",
      "samples_per_cpu_sec", "loss_start", "loss_end", "losses"}`: losses
      per step run here, the start/end losses as means over the first/last
      tenth of them, throughput over the steps after the warm-up.
    """
    steps = total_steps(args, meta["splits"]["train"]["rows"])
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(args.seed)
        dataset = make_dataset(files.split_files(data_dir, "train", meta), meta["schema"],
                               args.batch_size, num_epochs=None if args.steps else args.epochs,
                               shuffle=args.shuffle, seed=args.seed)
        features, labels = tf.data.make_one_shot_iterator(dataset).get_next()
        global_step = tf.train.get_or_create_global_step()
        logits = model.logits(features, training=True)
        loss = model.loss(logits, labels)
        train_op = model.train_op(loss, global_step)
        tf.summary.scalar("loss", loss)
        for name in model.labels:
            tf.summary.scalar(f"mean_prediction/{name}", tf.reduce_mean(tf.sigmoid(logits[name])))
            tf.summary.scalar(f"mean_label/{name}", tf.reduce_mean(labels[name]))
        batch = tf.shape(labels[model.labels[0]])[0]
        hook = _TrainingHook(loss, batch, steps, args, checkpoint_dir)
        hooks = [hook, tf.train.StopAtStepHook(last_step=steps)]
        saver = tf.train.Saver(max_to_keep=args.keep_checkpoint_max, sharded=True,
                               allow_empty=True)
        start = time.perf_counter()
        with tf.train.MonitoredTrainingSession(
                checkpoint_dir=checkpoint_dir, scaffold=tf.train.Scaffold(saver=saver),
                hooks=hooks, config=session_config(args),
                # Without a period the hook would not exist and the final
                # checkpoint would not be written; past the last step, the
                # final save runs in the hook's end(), outside the timed steps.
                save_checkpoint_steps=args.save_steps or steps + 1,
                save_checkpoint_secs=None,
                save_summaries_steps=args.summary_steps, save_summaries_secs=None,
                log_step_count_steps=args.summary_steps) as sess, _gc_frozen():
            while not sess.should_stop():
                sess.run(train_op)
        seconds = time.perf_counter() - start
    losses = hook.losses
    tenth = max(1, len(losses) // 10)
    return {"steps": len(losses), "samples": hook.samples, "seconds": seconds,
            "samples_per_sec": hook.samples_per_sec,
            "samples_per_cpu_sec": hook.samples_per_cpu_sec,
            "loss_start": sum(losses[:tenth]) / tenth if losses else None,
            "loss_end": sum(losses[-tenth:]) / tenth if losses else None,
            "losses": losses}
