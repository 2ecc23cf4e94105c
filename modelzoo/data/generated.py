"""Writing a synthetic data set: splits in chunks, labels drawn from a hidden model.

A generator object (see `criteo.CriteoGenerator`, `taobao.TaobaoGenerator`)
provides `name`, `schema`, `config` (a JSON-able dict that fixes its
output), `feature_info()` (the meta entries `vocab`: distinct values per
categorical or sequence column, and `dense_transform`: "log1p" or "none"
per dense column) and `chunk(rng, rows) -> (columns, probabilities)`, where
`probabilities` maps each label to the hidden model's true P(label = 1) for
those rows. Each split's meta also gets `dense_stats`: the mean and
standard deviation of each dense column after its transform. Rows are
generated in chunks of `CHUNK_ROWS` whose random streams depend only on
(seed, split, chunk index), so growing a split keeps its full chunks, and
the result does not depend on the machine.

The hidden model's AUC on each split (the AUC of its true probabilities
against the drawn labels) is the best AUC any model can expect there: the
*ceiling* recorded in `meta.json`.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Mapping

import numpy as np

from modelzoo.common.metrics import logloss, roc_auc
from modelzoo.data import files

CHUNK_ROWS = 65536


def chunk_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of chunk `index` (rows index*CHUNK_ROWS...) of `split`."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


class _Moments:
    """Running mean and standard deviation of each dense column after its transform."""

    def __init__(self, names, transforms):
        self.names, self.transforms = names, transforms
        self.count = 0
        self.sums = {n: 0.0 for n in names}
        self.squares = {n: 0.0 for n in names}

    def add(self, columns):
        for name in self.names:
            x = np.asarray(columns[name], np.float64)
            if self.transforms.get(name) == "log1p":
                x = np.log1p(np.maximum(x, 0.0))
            self.sums[name] += float(x.sum())
            self.squares[name] += float((x * x).sum())
        self.count += len(columns[self.names[0]]) if self.names else 0

    def result(self) -> dict:
        out = {}
        for name in self.names:
            mean = self.sums[name] / self.count
            var = max(self.squares[name] / self.count - mean * mean, 0.0)
            out[name] = [mean, float(np.sqrt(var))]
        return out


def draw_labels(rng: np.random.Generator, probabilities: Mapping) -> dict:
    """One Bernoulli(p) float32 label array per entry of `probabilities`."""
    return {name: (rng.random(p.shape) < p).astype(np.float32)
            for name, p in probabilities.items()}


def write_generated(data_dir: str, generator, rows: Mapping[str, int], fmt: str = "parquet",
                    rows_per_file: int | None = None) -> dict:
    """Generates `rows[split]` rows per split into `data_dir` and writes `meta.json`.

    Args:
      data_dir: Output directory (created; files of the same splits are replaced).
      generator: A generator object (see the module docstring).
      rows: Rows per split, e.g. `{"train": 1_000_000, "test": 100_000}`.
      fmt: "parquet" or "csv".
      rows_per_file: Rows per file (default: all of a split in one file).

    Returns:
      The meta dict written (per-split files, rows, positive rate, ceiling
      AUC and log loss per label), with the `Schema` object as "schema".
    """
    if fmt not in files.FORMATS:
        raise ValueError(f"data format must be one of {files.FORMATS}, got {fmt!r}")
    splits = {}
    for split, count in rows.items():
        if int(count) < 1:
            raise ValueError(f"rows for split '{split}' must be >= 1, got {count!r}")
        per_file = int(rows_per_file or count)
        moments = _Moments(generator.schema.dense, generator.feature_info()["dense_transform"])
        probabilities = {label: [] for label in generator.schema.labels}
        labels = {label: [] for label in generator.schema.labels}
        with files.SplitWriter(data_dir, split, generator.schema, fmt, int(count),
                               per_file) as writer:
            for index, start in enumerate(range(0, int(count), CHUNK_ROWS)):
                rng = chunk_rng(generator.config["seed"], split, index)
                n = min(CHUNK_ROWS, int(count) - start)
                columns, p = generator.chunk(rng, n)
                writer.write(columns)
                moments.add(columns)
                for label in labels:
                    probabilities[label].append(p[label])
                    labels[label].append(columns[label])
        summary = {"files": writer.files, "rows": int(count), "ceiling_auc": {},
                   "ceiling_logloss": {}, "positive_rate": {}}
        for label in labels:
            y, p = np.concatenate(labels[label]), np.concatenate(probabilities[label])
            summary["positive_rate"][label] = float(y.mean())
            summary["ceiling_auc"][label] = roc_auc(y, p) if 0 < y.sum() < y.size else None
            summary["ceiling_logloss"][label] = logloss(y, p)
        summary["dense_stats"] = moments.result()
        splits[split] = summary
    meta = {"name": generator.name, "format": fmt, "schema": generator.schema.to_json(),
            "generator": dict(generator.config), "splits": splits,
            **generator.feature_info()}
    files.write_meta(data_dir, meta)
    meta["schema"] = generator.schema
    return meta


def ensure_generated(data_dir: str, generator, rows: Mapping[str, int], fmt: str = "parquet",
                     rows_per_file: int | None = None) -> dict:
    """`read_meta(data_dir)` if it holds exactly this data set, else `write_generated`.

    Lets a training script be rerun without regenerating its data. A
    directory holding something else (another generator, config, size or
    format) is regenerated; one that is not a data set and not empty is
    refused, so a mistyped path never deletes a user's files.
    """
    try:
        meta = files.read_meta(data_dir)
    except FileNotFoundError:
        meta = None
    wanted_rows = {k: int(v) for k, v in rows.items()}
    if meta is not None:
        have_rows = {k: v["rows"] for k, v in meta["splits"].items()}
        if (meta["name"] == generator.name and meta["generator"] == dict(generator.config)
                and meta["format"] == fmt and have_rows == wanted_rows
                and all(os.path.isfile(p) for s in meta["splits"]
                        for p in files.split_files(data_dir, s, meta))):
            return meta
        shutil.rmtree(data_dir)
    elif os.path.isdir(data_dir) and os.listdir(data_dir):
        raise ValueError(f"data_location '{data_dir}' is not empty and holds no "
                         f"{files.META_FILE}; refusing to generate data into it")
    return write_generated(data_dir, generator, rows, fmt, rows_per_file)
