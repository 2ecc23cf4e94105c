"""On-disk layout of the model zoo's data sets: Parquet or CSV files plus `meta.json`.

A data set directory holds, per split (`train`, `test`), one or more files
`<split>-<i>-of-<n>.parquet` (or `.csv`) and a `meta.json` that records the
column roles (`Schema`), the row counts and, for generated data, the hidden
model's ceiling AUC. Columns hold one value per row (float32 dense features
and labels, int64 categorical ids) or, for sequence features, a list of int64
ids per row: a Parquet `list<int64>` column, or a CSV field of ids joined by
`|` (empty for an empty list).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping

import numpy as np

FORMATS = ("parquet", "csv")
SEQUENCE_SEPARATOR = "|"
META_FILE = "meta.json"


@dataclasses.dataclass(frozen=True)
class Schema:
    """The roles of a data set's columns, in file order: dense, categorical, sequence, labels.

    Attributes:
      dense: float32 features, one value per row.
      categorical: int64 ids, one per row.
      sequence: int64 id lists (behaviour sequences), any length per row.
      labels: float32 targets in {0, 1}.

    Example:
      >>> s = Schema(dense=("price",), categorical=("user", "item"), labels=("click",))
      >>> s.columns
      ('price', 'user', 'item', 'click')
    """

    dense: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    sequence: tuple[str, ...] = ()
    labels: tuple[str, ...] = ("label",)

    def __post_init__(self):
        for role in ("dense", "categorical", "sequence", "labels"):
            object.__setattr__(self, role, tuple(getattr(self, role)))
        names = self.columns
        if len(set(names)) != len(names):
            raise ValueError(f"Schema: column names must be unique, got {names}")
        if not self.labels:
            raise ValueError("Schema: at least one label column is needed")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.dense + self.categorical + self.sequence + self.labels

    @property
    def features(self) -> tuple[str, ...]:
        return self.dense + self.categorical + self.sequence

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Mapping) -> Schema:
        return cls(**{k: tuple(v) for k, v in value.items()})


@dataclasses.dataclass(frozen=True)
class Ragged:
    """A column of int64 lists as flat `values` and per-row `lengths`.

    Example:
      >>> import numpy as np
      >>> r = Ragged.from_lists([[3, 4], [], [5]])
      >>> r.offsets.tolist(), [x.tolist() for x in r.to_lists()]
      ([0, 2, 2, 3], [[3, 4], [], [5]])
    """

    values: np.ndarray
    lengths: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def to_lists(self) -> list[np.ndarray]:
        return np.split(self.values, self.offsets[1:-1])

    def slice(self, start: int, stop: int) -> Ragged:
        offsets = self.offsets
        return Ragged(self.values[offsets[start]:offsets[stop]], self.lengths[start:stop])

    def take(self, rows: np.ndarray) -> Ragged:
        """The lists of `rows`, in that order."""
        lengths = self.lengths[rows]
        new_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        shift = np.repeat(self.offsets[:-1][rows] - new_starts, lengths)
        return Ragged(self.values[np.arange(int(lengths.sum())) + shift], lengths)

    @classmethod
    def from_lists(cls, lists: Iterable) -> Ragged:
        lists = [np.asarray(x, np.int64) for x in lists]
        values = np.concatenate(lists) if lists else np.zeros(0, np.int64)
        return cls(values.astype(np.int64), np.array([len(x) for x in lists], np.int64))

    @classmethod
    def concat(cls, parts: Iterable[Ragged]) -> Ragged:
        parts = list(parts)
        return cls(np.concatenate([p.values for p in parts]),
                   np.concatenate([p.lengths for p in parts]))


def _arrow_table(columns: Mapping, schema: Schema):
    import pyarrow as pa

    arrays = []
    for name in schema.columns:
        value = columns[name]
        if name in schema.sequence:
            offsets = pa.array(value.offsets.astype(np.int32))
            arrays.append(pa.ListArray.from_arrays(offsets, pa.array(value.values, pa.int64())))
        elif name in schema.categorical:
            arrays.append(pa.array(np.asarray(value, np.int64)))
        else:
            arrays.append(pa.array(np.asarray(value, np.float32)))
    return pa.table(arrays, names=list(schema.columns))


def _csv_ready(table, schema: Schema):
    """Sequence columns joined into `|`-separated strings (pyarrow.csv writes no lists)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in schema.sequence:
        lists = table.column(name).combine_chunks()
        strings = pa.ListArray.from_arrays(lists.offsets, pc.cast(lists.values, pa.string()))
        joined = pc.binary_join(strings, SEQUENCE_SEPARATOR)
        table = table.set_column(table.schema.get_field_index(name), name, joined)
    return table


class SplitWriter:
    """Writes chunks of one split into `num_files` files of `rows_per_file` rows each.

    Use as a context manager; `write(columns)` takes a dict of column arrays
    (a `Ragged` for sequence columns) for the next rows. Chunks become
    Parquet row groups.
    """

    def __init__(self, data_dir: str, split: str, schema: Schema, fmt: str,
                 rows: int, rows_per_file: int):
        if fmt not in FORMATS:
            raise ValueError(f"data format must be one of {FORMATS}, got {fmt!r}")
        if rows < 1 or rows_per_file < 1:
            raise ValueError(f"split '{split}': rows and rows_per_file must be >= 1, got "
                             f"{rows} and {rows_per_file}")
        self._dir, self._split, self._schema, self._fmt = data_dir, split, schema, fmt
        self._rows_per_file = rows_per_file
        self._num_files = -(-rows // rows_per_file)
        self.files: list[str] = []
        self._writer = None
        self._in_file = 0

    def __enter__(self):
        os.makedirs(self._dir, exist_ok=True)
        return self

    def __exit__(self, *exc):
        self._close_file()

    def _close_file(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open_file(self, table):
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        name = f"{self._split}-{len(self.files):05d}-of-{self._num_files:05d}.{self._fmt}"
        path = os.path.join(self._dir, name)
        if self._fmt == "parquet":
            self._writer = pq.ParquetWriter(path, table.schema)
        else:
            self._writer = pa_csv.CSVWriter(path, table.schema)
        self.files.append(name)
        self._in_file = 0

    def write(self, columns: Mapping) -> None:
        table = _arrow_table(columns, self._schema)
        if self._fmt == "csv":
            table = _csv_ready(table, self._schema)
        start = 0
        while start < table.num_rows:
            if self._writer is None or self._in_file == self._rows_per_file:
                self._close_file()
                self._open_file(table)
            take = min(table.num_rows - start, self._rows_per_file - self._in_file)
            self._writer.write_table(table.slice(start, take))
            self._in_file += take
            start += take


def write_meta(data_dir: str, meta: Mapping) -> None:
    """Writes `meta.json` (after the files, so its presence means the data set is complete)."""
    path = os.path.join(data_dir, META_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def read_meta(data_dir: str) -> dict:
    """Reads a data set's `meta.json`; raises FileNotFoundError naming the directory."""
    path = os.path.join(data_dir, META_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"data_location '{data_dir}' holds no {META_FILE}: not a model zoo data set "
            "(generate one with `python -m modelzoo.data` or point at an existing one)")
    with open(path) as f:
        meta = json.load(f)
    meta["schema"] = Schema.from_json(meta["schema"])
    return meta


def split_files(data_dir: str, split: str, meta: Mapping | None = None) -> list[str]:
    """Paths of a split's files, in order; raises ValueError for an unknown split."""
    meta = meta if meta is not None else read_meta(data_dir)
    if split not in meta["splits"]:
        raise ValueError(f"data set '{data_dir}' has no split {split!r}; it has "
                         f"{sorted(meta['splits'])}")
    return [os.path.join(data_dir, f) for f in meta["splits"][split]["files"]]


def read_columns(files: Iterable[str], schema: Schema) -> dict:
    """All rows of `files` as numpy arrays (a `Ragged` per sequence column).

    This is the reference reader used by tests and evaluation code; training
    reads through `modelzoo.data.reader.make_dataset`.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    tables = []
    for path in files:
        if path.endswith(".parquet"):
            tables.append(pq.read_table(path, columns=list(schema.columns)))
        else:
            types = {n: pa.string() for n in schema.sequence}
            types.update({n: pa.int64() for n in schema.categorical})
            types.update({n: pa.float32() for n in schema.dense + schema.labels})
            tables.append(pa_csv.read_csv(
                path, convert_options=pa_csv.ConvertOptions(column_types=types,
                                                              strings_can_be_null=False)))
    return concat_rows([columns_from_arrow(t, schema) for t in tables], schema)


def columns_from_arrow(table, schema: Schema) -> dict:
    """A pyarrow Table's columns as numpy arrays (a `Ragged` per sequence column)."""
    out = {}
    for name in schema.columns:
        column = table.column(name).combine_chunks()
        if name in schema.sequence:
            out[name] = _ragged_from_arrow(column)
        elif name in schema.categorical:
            out[name] = column.to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            out[name] = column.to_numpy(zero_copy_only=False).astype(np.float32)
    return out


def num_rows(columns: Mapping) -> int:
    return len(next(iter(columns.values())))


def slice_rows(columns: Mapping, start: int, stop: int) -> dict:
    return {k: v.slice(start, stop) if isinstance(v, Ragged) else v[start:stop]
            for k, v in columns.items()}


def take_rows(columns: Mapping, rows: np.ndarray) -> dict:
    return {k: v.take(rows) if isinstance(v, Ragged) else v[rows] for k, v in columns.items()}


def concat_rows(parts: list, schema: Schema) -> dict:
    if len(parts) == 1:
        return dict(parts[0])
    return {name: Ragged.concat([p[name] for p in parts]) if name in schema.sequence
            else np.concatenate([p[name] for p in parts]) for name in schema.columns}


def _ragged_from_arrow(column) -> Ragged:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.split_pattern(column, SEQUENCE_SEPARATOR)
        # An empty field splits into one empty string, and ids are never empty.
        empty = pc.equal(pc.list_element(column, 0), "").to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(column)
        flat = pc.filter(flat, pc.not_equal(flat, ""))
        values = pc.cast(flat, pa.int64()).to_numpy(zero_copy_only=False)
        return Ragged(values.astype(np.int64), np.where(empty, 0, lengths).astype(np.int64))
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    # list_flatten skips the values of null lists and keeps those of
    # non-null lists in order, matching the offsets.
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    return Ragged(values.astype(np.int64), lengths.astype(np.int64))
