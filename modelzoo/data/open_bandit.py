"""The Open Bandit Dataset's click log (ZOZOTOWN; Apache-2.0) as a click data set.

Reads `men.csv` (or another campaign's log: pass its file name) and, when
present, `item_context.csv` from a directory of the Open Bandit Dataset.
Each logged impression is one row:

- dense: `affinity_0`..`affinity_{k-1}` (the log's user-item affinities)
  and `item_feature_0` (from the item context, 0 without it);
- categorical ids: `item_id`, `position`, `user_feature_0`..`user_feature_3`
  (hex strings in the log, hashed to ids) and `item_feature_1`..`3`;
- `click`: the label.

Rows are ordered by timestamp; the last `test_fraction` form the test split
(a time split, as a deployed model would see). The logging policy's
propensity score is not a feature.
"""

from __future__ import annotations

import os

import numpy as np

from modelzoo.data import converted
from modelzoo.data.files import Schema, take_rows

_USER = tuple(f"user_feature_{i}" for i in range(4))
_ITEM_CATEGORICAL = tuple(f"item_feature_{i}" for i in range(1, 4))


def _read(path: str):
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(path)
    return {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names}


def schema_for(affinities: int) -> Schema:
    """The schema of a log with `affinities` user-item affinity columns."""
    return Schema(dense=tuple(f"affinity_{i}" for i in range(affinities)) + ("item_feature_0",),
                  categorical=("item_id", "position") + _USER + _ITEM_CATEGORICAL,
                  labels=("click",))


def load(data_location: str, log_file: str = "men.csv", test_fraction: float = 0.2):
    """`({"train": columns, "test": columns}, schema)` from the files in `data_location`.

    Raises:
      FileNotFoundError: When the log file is missing.
      ValueError: For a log without the expected columns, or bad options.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"open_bandit: test_fraction must be in (0, 1), got "
                         f"{test_fraction!r}")
    path = os.path.join(data_location, log_file)
    converted.source_signature([path])
    log = _read(path)
    needed = {"timestamp", "item_id", "position", "click", *_USER}
    if not needed <= set(log):
        raise ValueError(f"'{path}' lacks columns {sorted(needed - set(log))}")
    affinity_names = sorted((c for c in log if c.startswith("user-item_affinity_")),
                            key=lambda c: int(c.rsplit("_", 1)[1]))
    schema = schema_for(len(affinity_names))
    rows = len(log["click"])
    columns = {f"affinity_{i}": np.asarray(log[c], np.float32)
               for i, c in enumerate(affinity_names)}
    columns["item_id"] = np.asarray(log["item_id"], np.int64)
    columns["position"] = np.asarray(log["position"], np.int64)
    for name in _USER:
        columns[name] = converted.string_ids(log[name])
    columns["click"] = np.asarray(log["click"], np.float32)
    context_path = os.path.join(data_location, "item_context.csv")
    columns["item_feature_0"] = np.zeros(rows, np.float32)
    for name in _ITEM_CATEGORICAL:
        columns[name] = np.zeros(rows, np.int64)
    if os.path.isfile(context_path):
        context = _read(context_path)
        lookup = {int(item): i for i, item in enumerate(context["item_id"])}
        unknown = set(columns["item_id"].tolist()) - set(lookup)
        if unknown:
            raise ValueError(f"'{context_path}' lacks items {sorted(unknown)[:5]} of '{path}'")
        row = np.array([lookup[int(i)] for i in columns["item_id"]])
        columns["item_feature_0"] = np.asarray(context["item_feature_0"], np.float32)[row]
        for name in _ITEM_CATEGORICAL:
            columns[name] = converted.string_ids(context[name])[row]
    order = np.argsort(np.asarray(log["timestamp"]).astype(str), kind="stable")
    columns = take_rows(columns, order)
    cut = int(round(rows * (1.0 - test_fraction)))
    return ({"train": take_rows(columns, np.arange(cut)),
             "test": take_rows(columns, np.arange(cut, rows))}, schema)


def convert(data_location: str, out_dir: str, fmt: str = "parquet", log_file: str = "men.csv",
            test_fraction: float = 0.2) -> dict:
    """Converts (or reuses a conversion of) the log into `out_dir`; returns the meta."""
    paths = [os.path.join(data_location, log_file)]
    context = os.path.join(data_location, "item_context.csv")
    if os.path.isfile(context):
        paths.append(context)
    signature = converted.source_signature(paths)
    options = {"log_file": log_file, "test_fraction": float(test_fraction)}
    meta = converted.cached_meta(out_dir, "open_bandit", signature, fmt, options)
    if meta is not None:
        return meta
    splits, schema = load(data_location, log_file, test_fraction)
    return converted.write_converted(
        out_dir, "open_bandit", schema, splits, fmt=fmt,
        dense_transform={name: "none" for name in schema.dense}, signature=signature,
        options=options)
