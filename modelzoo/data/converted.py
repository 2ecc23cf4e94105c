"""Writing a real data set, converted from its own files, in the model zoo's layout.

Loaders (`movielens`, `open_bandit`) turn their source files into column
arrays per split and call `write_converted`, which writes the files and a
`meta.json` like a generated set's (vocabularies, dense statistics and
positive rates; no ceiling, as no hidden model is known). The meta records
the source files' sizes and modification times, so a later run reuses the
conversion until the source changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping

import numpy as np

from modelzoo.data import files
from modelzoo.data.files import Ragged, Schema


def string_ids(values) -> np.ndarray:
    """Stable int64 ids in [0, 2^63) for strings (8 bytes of BLAKE2b each).

    Example:
      >>> ids = string_ids(["Comedy", "Drama", "Comedy"])
      >>> bool(ids[0] == ids[2] and ids[0] != ids[1] and ids.min() >= 0)
      True
    """
    values = list(values)
    unique = {v: int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(),
                                "little") >> 1 for v in set(values)}
    return np.array([unique[v] for v in values], np.int64)


def source_signature(paths) -> dict:
    """`{path: [size, mtime]}` of the source files (raises FileNotFoundError naming one)."""
    out = {}
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data_location: missing file '{path}'")
        stat = os.stat(path)
        out[os.path.abspath(path)] = [stat.st_size, int(stat.st_mtime)]
    return out


def cached_meta(out_dir: str, name: str, signature: Mapping, fmt: str, options: Mapping):
    """The meta of an up-to-date conversion in `out_dir`, or None."""
    try:
        meta = files.read_meta(out_dir)
    except FileNotFoundError:
        return None
    if (meta.get("name") == name and meta.get("source") == dict(signature)
            and meta.get("format") == fmt and meta.get("options") == dict(options)):
        return meta
    return None


def write_converted(out_dir: str, name: str, schema: Schema, splits: Mapping[str, Mapping],
                    *, fmt: str, dense_transform: Mapping[str, str], signature: Mapping,
                    options: Mapping) -> dict:
    """Writes `splits` (`{split: {column: array or Ragged}}`) and meta into `out_dir`."""
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    vocab = {}
    for column in schema.categorical + schema.sequence:
        values = [s[column].values if isinstance(s[column], Ragged) else s[column]
                  for s in splits.values()]
        vocab[column] = int(np.unique(np.concatenate(values)).size)
    meta_splits = {}
    for split, columns in splits.items():
        rows = files.num_rows(columns)
        with files.SplitWriter(out_dir, split, schema, fmt, rows, rows) as writer:
            writer.write(columns)
        stats = {}
        for column in schema.dense:
            x = np.asarray(columns[column], np.float64)
            if dense_transform.get(column) == "log1p":
                x = np.log1p(np.maximum(x, 0.0))
            stats[column] = [float(x.mean()), float(x.std())]
        meta_splits[split] = {
            "files": writer.files, "rows": rows, "dense_stats": stats,
            "positive_rate": {label: float(np.mean(columns[label])) for label in schema.labels},
            "ceiling_auc": {label: None for label in schema.labels},
            "ceiling_logloss": {label: None for label in schema.labels}}
    meta = {"name": name, "format": fmt, "schema": schema.to_json(), "splits": meta_splits,
            "vocab": vocab, "dense_transform": dict(dense_transform),
            "source": dict(signature), "options": dict(options)}
    files.write_meta(out_dir, meta)
    meta["schema"] = schema
    return meta
