"""Request batching: concurrent runs of one signature merged along dimension 0.

With `--enable_batching`, a model version's runs go through a `Batcher`. Runs
with the same feeds (names, dtypes, every dimension but the first) and
fetches join one open batch; a batch is closed when it holds
`max_batch_size` rows, and executed by one of `num_batch_threads` threads
once closed or `batch_timeout_micros` after it opened. Each caller gets its
own rows of every output back. As in TensorFlow Serving:

- at most `max_enqueued_batches` batches wait (open or closed); beyond that
  a run fails with UNAVAILABLE rather than queueing without bound;
- every output must have the batch dimension first;
- a batch fails as a whole if the graph rejects any of its rows.

A run whose feeds disagree on their first dimension, or that alone exceeds
`max_batch_size`, runs by itself, unbatched.

Example:
  >>> import numpy as np
  >>> double = lambda feeds, fetches: [feeds["x:0"] * 2]
  >>> batcher = Batcher(BatchingParameters(max_batch_size=4, num_batch_threads=1), double)
  >>> batcher.run({"x:0": np.array([1.0, 2.0])}, ["y:0"])
  [array([2., 4.])]
  >>> batcher.stop()
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence

import grpc
import numpy as np

from deeprec.serving.model_server.config import BatchingParameters
from deeprec.serving.model_server.errors import ServingError

__all__ = ["Batcher"]

RunFn = Callable[[dict[str, np.ndarray], Sequence[str]], list[np.ndarray]]


class _Task:
    __slots__ = ("done", "error", "feeds", "result", "rows")

    def __init__(self, feeds: dict[str, np.ndarray], rows: int) -> None:
        self.feeds = feeds
        self.rows = rows
        self.done = threading.Event()
        self.result: list[np.ndarray] | None = None
        self.error: BaseException | None = None


class _Batch:
    __slots__ = ("deadline", "fetches", "rows", "tasks")

    def __init__(self, fetches: Sequence[str], deadline: float) -> None:
        self.fetches = fetches
        self.deadline = deadline
        self.tasks: list[_Task] = []
        self.rows = 0


def _rows(feeds: dict[str, np.ndarray]) -> int | None:
    """The common first dimension of all feeds, or None if they have none."""
    sizes = {a.shape[0] if a.ndim else None for a in feeds.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop()


class Batcher:
    """Merges concurrent `run(feeds, fetches)` calls into batched calls of `run_fn`.

    Args:
      params: the batching parameters.
      run_fn: runs one (merged) batch: `run_fn(feeds, fetches) -> outputs`.
      on_batch: called with each executed batch's row count (for metrics).
    """

    def __init__(self, params: BatchingParameters, run_fn: RunFn,
                 on_batch: Callable[[int], None] | None = None, name: str = "batcher") -> None:
        self._params = params
        self._run_fn = run_fn
        self._on_batch = on_batch
        self._timeout = params.batch_timeout_micros / 1e6
        self._cond = threading.Condition()
        self._open: dict[tuple, _Batch] = {}
        self._closed: collections.deque[_Batch] = collections.deque()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, feeds: dict[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Runs `fetches` given `feeds` as part of a batch; blocks until done.

        Raises:
          ServingError: UNAVAILABLE when the queue is full or the batcher stopped;
            INVALID_ARGUMENT when an output lacks the batch dimension.
          Whatever `run_fn` raised for the batch.
        """
        rows = _rows(feeds)
        if rows is None or rows > self._params.max_batch_size:
            return self._run_fn(feeds, fetches)
        key = (tuple(fetches),) + tuple(
            (name, a.dtype.str, a.shape[1:]) for name, a in sorted(feeds.items()))
        task = _Task(feeds, rows)
        with self._cond:
            if self._stopping:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the model version is unloading")
            batch = self._open.get(key)
            if batch is not None and batch.rows + rows > self._params.max_batch_size:
                self._closed.append(self._open.pop(key))
                batch = None
            if batch is None:
                if len(self._open) + len(self._closed) >= self._params.max_enqueued_batches:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"the batch queue is full ({self._params.max_enqueued_batches} batches "
                        "waiting, max_enqueued_batches); retry later")
                batch = _Batch(fetches, time.monotonic() + self._timeout)
                self._open[key] = batch
            batch.tasks.append(task)
            batch.rows += rows
            if batch.rows >= self._params.max_batch_size:
                self._closed.append(self._open.pop(key))
            self._cond.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    @property
    def queued_batches(self) -> int:
        """Batches waiting to run (open or closed), at most `max_enqueued_batches`."""
        with self._cond:
            return len(self._open) + len(self._closed)

    def _next_batch(self) -> _Batch | None:
        """Waits for a closed or expired batch; None once stopped and drained."""
        with self._cond:
            while True:
                if self._closed:
                    return self._closed.popleft()
                now = time.monotonic()
                if self._open:
                    key, batch = min(self._open.items(), key=lambda kv: kv[1].deadline)
                    if batch.deadline <= now or self._stopping:
                        del self._open[key]
                        return batch
                    self._cond.wait(batch.deadline - now)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._execute(batch)

    def _execute(self, batch: _Batch) -> None:
        tasks = batch.tasks
        try:
            if self._on_batch is not None:
                self._on_batch(batch.rows)
            if len(tasks) == 1:
                tasks[0].result = self._run_fn(tasks[0].feeds, batch.fetches)
            else:
                merged = {name: np.concatenate([t.feeds[name] for t in tasks])
                          for name in tasks[0].feeds}
                outputs = self._run_fn(merged, batch.fetches)
                bounds = np.cumsum([t.rows for t in tasks])[:-1]
                parts = []
                for name, output in zip(batch.fetches, outputs, strict=True):
                    if np.ndim(output) == 0 or output.shape[0] != batch.rows:
                        raise ServingError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"output {name!r} has shape {np.shape(output)} for a batch of "
                            f"{batch.rows} rows; batching needs the batch dimension first "
                            "in every output (serve this model without --enable_batching)")
                    parts.append(np.split(output, bounds))
                for i, task in enumerate(tasks):
                    task.result = [p[i] for p in parts]
        except BaseException as err:  # every caller of the batch gets the failure
            for task in tasks:
                task.error = err
        finally:
            for task in tasks:
                task.done.set()

    def stop(self) -> None:
        """Runs what is queued, then stops the threads; later runs fail UNAVAILABLE."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
