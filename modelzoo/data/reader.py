"""tf.data input pipelines over a data set's Parquet or CSV files.

`make_dataset` yields `(features, labels)` batches:

- dense columns: float32 `[batch]`;
- categorical columns: int64 `[batch]` (ids as they are; EV columns take
  them directly, hash-bucket columns hash them);
- sequence columns: an int64 `SparseTensor` `[batch, longest list in the
  batch]`, row i holding row i's ids in order (empty lists give empty rows);
- labels: a dict of float32 `[batch]`, one entry per label column.

CSV files are read and parsed by TensorFlow's own ops (`TextLineDataset`,
`decode_csv` on whole batches, `strings.split` for sequences). Parquet files
are read by pyarrow, a row group at a time, and cut into batches in numpy
(TensorFlow 2.15 has no Parquet reader); `tf.data` prefetches them, so one
Python call per batch overlaps with training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from modelzoo.data import files as files_lib
from modelzoo.data.files import Schema

DEFAULT_SHUFFLE_BUFFER = 65536


def _format_of(paths: Sequence[str]) -> str:
    formats = {os.path.splitext(p)[1].lstrip(".") for p in paths}
    if len(formats) != 1 or not formats <= set(files_lib.FORMATS):
        raise ValueError(f"make_dataset: files must all be .parquet or all .csv, got "
                         f"{sorted(formats)}")
    return formats.pop()


def _check_csv_header(path: str, schema: Schema) -> None:
    with open(path) as f:
        header = f.readline().strip()
    names = [n.strip('"') for n in header.split(",")]
    if names != list(schema.columns):
        raise ValueError(f"CSV file '{path}' has columns {names}, expected "
                         f"{list(schema.columns)}")


def _features_and_labels(schema: Schema, dense, categorical, sequences, labels):
    features = dict(zip(schema.dense, dense, strict=True))
    features.update(zip(schema.categorical, categorical, strict=True))
    features.update(zip(schema.sequence, sequences, strict=True))
    return features, dict(zip(schema.labels, labels, strict=True))


def _csv_dataset(paths, schema: Schema, batch_size, num_epochs, shuffle, seed,
                 drop_remainder, shuffle_buffer):
    for path in paths:
        _check_csv_header(path, schema)
    # Empty defaults make a field required; a sequence field may be empty.
    defaults = ([tf.constant([], tf.float32)] * len(schema.dense)
                + [tf.constant([], tf.int64)] * len(schema.categorical)
                + [tf.constant([""], tf.string)] * len(schema.sequence)
                + [tf.constant([], tf.float32)] * len(schema.labels))
    nd, nc, ns = len(schema.dense), len(schema.categorical), len(schema.sequence)

    def parse(lines):
        fields = tf.io.decode_csv(lines, defaults)
        sequences = []
        for text in fields[nd + nc:nd + nc + ns]:
            tokens = tf.strings.split(text, sep=files_lib.SEQUENCE_SEPARATOR)
            tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)
            sequences.append(tf.strings.to_number(tokens, tf.int64).to_sparse())
        return _features_and_labels(schema, fields[:nd], fields[nd:nd + nc], sequences,
                                    fields[nd + nc + ns:])

    dataset = tf.data.Dataset.from_tensor_slices(list(paths))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat(num_epochs)
    dataset = dataset.flat_map(lambda path: tf.data.TextLineDataset(path).skip(1))
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


class _ParquetBatches:
    """A generator of numpy batches over Parquet files (epochs, shuffling, carry-over)."""

    def __init__(self, paths, schema: Schema, batch_size, num_epochs, shuffle, seed,
                 drop_remainder):
        self.paths, self.schema, self.batch_size = list(paths), schema, batch_size
        self.num_epochs, self.shuffle, self.seed = num_epochs, shuffle, seed
        self.drop_remainder = drop_remainder

    def _row_groups(self):
        import pyarrow.parquet as pq

        epoch = 0
        while self.num_epochs is None or epoch < self.num_epochs:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.paths)) if self.shuffle else range(len(self.paths))
            for i in order:
                parquet = pq.ParquetFile(self.paths[i])
                for group in range(parquet.num_row_groups):
                    table = parquet.read_row_group(group, columns=list(self.schema.columns))
                    columns = files_lib.columns_from_arrow(table, self.schema)
                    if self.shuffle:
                        columns = files_lib.take_rows(columns, rng.permutation(table.num_rows))
                    yield columns
            epoch += 1

    def _emit(self, columns):
        s = self.schema
        seqs = [columns[n] for n in s.sequence]
        return (tuple(columns[n] for n in s.dense), tuple(columns[n] for n in s.categorical),
                tuple(r.values for r in seqs), tuple(r.lengths for r in seqs),
                tuple(columns[n] for n in s.labels))

    def __call__(self):
        pending, rows = [], 0
        for columns in self._row_groups():
            pending.append(columns)
            rows += files_lib.num_rows(columns)
            if rows < self.batch_size:
                continue
            merged = files_lib.concat_rows(pending, self.schema)
            start = 0
            while rows - start >= self.batch_size:
                yield self._emit(files_lib.slice_rows(merged, start, start + self.batch_size))
                start += self.batch_size
            pending = [files_lib.slice_rows(merged, start, rows)]
            rows -= start
        if rows and not self.drop_remainder:
            yield self._emit(files_lib.concat_rows(pending, self.schema))


def _use_system_memory_pool() -> None:
    """Makes pyarrow allocate with the system allocator from now on.

    With pyarrow's default mimalloc pool, opening Parquet files on the
    threads tf.data runs `from_generator` on crashes the process now and then
    (a segfault in `ParquetFile`, seen with pyarrow 25 and TF 2.15 after a
    few dozen datasets in one process); the system pool does not.
    """
    import pyarrow as pa

    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def _parquet_dataset(paths, schema: Schema, batch_size, num_epochs, shuffle, seed,
                     drop_remainder):
    _use_system_memory_pool()
    vector = lambda dtype: tf.TensorSpec([None], dtype)  # noqa: E731
    signature = (tuple(vector(tf.float32) for _ in schema.dense),
                 tuple(vector(tf.int64) for _ in schema.categorical),
                 tuple(vector(tf.int64) for _ in schema.sequence),
                 tuple(vector(tf.int64) for _ in schema.sequence),
                 tuple(vector(tf.float32) for _ in schema.labels))
    generator = _ParquetBatches(paths, schema, batch_size, num_epochs, shuffle, seed,
                                drop_remainder)
    dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)

    def to_features(dense, categorical, values, lengths, labels):
        sequences = [tf.RaggedTensor.from_row_lengths(v, n).to_sparse()
                     for v, n in zip(values, lengths, strict=True)]
        return _features_and_labels(schema, dense, categorical, sequences, labels)

    return dataset.map(to_features)


def make_dataset(paths: Sequence[str], schema: Schema, batch_size: int, *,
                 num_epochs: int | None = 1, shuffle: bool = False, seed: int = 0,
                 drop_remainder: bool = False,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER) -> tf.data.Dataset:
    """A `tf.data.Dataset` of `(features, labels)` batches read from `paths`.

    Args:
      paths: Parquet or CSV files written by `modelzoo.data` (all one format).
      schema: The data set's `Schema` (from `files.read_meta(dir)["schema"]`).
      batch_size: Rows per batch (the last batch may be smaller unless
        `drop_remainder`).
      num_epochs: Passes over the files; None repeats forever.
      shuffle: Shuffle file order and rows (Parquet: within each row group;
        CSV: through a `shuffle_buffer`-row buffer), differently each epoch.
      seed: Seed of the shuffling.
      drop_remainder: Drop a final partial batch.
      shuffle_buffer: CSV only: rows held for shuffling.

    Returns:
      The dataset (prefetching). Rows come in file order when not shuffled.

    Raises:
      ValueError: For no files, mixed or unknown formats, a CSV header that
        does not match the schema, or a non-positive batch_size / num_epochs.
      FileNotFoundError: For a missing file.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("make_dataset: paths is empty")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"make_dataset: no such file '{path}'")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"make_dataset: batch_size must be a positive int, got {batch_size!r}")
    if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
        raise ValueError(f"make_dataset: num_epochs must be None or >= 1, got {num_epochs!r}")
    if _format_of(paths) == "csv":
        dataset = _csv_dataset(paths, schema, batch_size, num_epochs, shuffle, seed,
                               drop_remainder, shuffle_buffer)
    else:
        dataset = _parquet_dataset(paths, schema, batch_size, num_epochs, shuffle, seed,
                                   drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
