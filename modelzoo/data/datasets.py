"""The data sets a model can train on, and getting one ready on disk.

Built-in (generated, no download): `criteo` (Criteo-like clicks) and
`taobao` (Taobao-like behaviour sequences, two labels). Real, read from a
directory the user gives: `movielens` (MovieLens `ratings.csv` and
`movies.csv`) and `open_bandit` (the Open Bandit Dataset's `men.csv`).
`prepare` returns a directory in the model zoo's file layout
(`modelzoo.data.files`) and its meta.
"""

from __future__ import annotations

import os

BUILTIN = ("criteo", "taobao")
REAL = ("movielens", "open_bandit")
DATASETS = BUILTIN + REAL


def generator(name: str, seed: int = 0, vocab_scale: float = 1.0):
    """The generator object of a built-in data set.

    Example:
      >>> generator("criteo", seed=3).config["seed"]
      3
    """
    if name == "criteo":
        from modelzoo.data.criteo import CriteoGenerator
        return CriteoGenerator(seed=seed, vocab_scale=vocab_scale)
    if name == "taobao":
        from modelzoo.data.taobao import TaobaoGenerator
        return TaobaoGenerator(seed=seed, vocab_scale=vocab_scale)
    raise ValueError(f"unknown built-in data set {name!r}; choose one of {BUILTIN}")


def prepare(name: str, data_location: str, *, work_dir: str, train_rows: int = 1_000_000,
            test_rows: int = 100_000, fmt: str = "parquet", seed: int = 0,
            vocab_scale: float = 1.0) -> tuple[str, dict]:
    """Makes data set `name` ready and returns `(directory, meta)`.

    Args:
      name: One of `DATASETS`.
      data_location: Built-in: where the generated files live (generated there
        unless already present with the same settings). Real: the directory
        of the downloaded files (read only).
      work_dir: Real data sets are converted into `<work_dir>/<name>`.
      train_rows, test_rows, seed, vocab_scale: Built-in data only.
      fmt: "parquet" or "csv".

    Raises:
      ValueError: For an unknown data set.
      FileNotFoundError: When a real data set's files are missing.
    """
    from modelzoo.data import generated

    if name in BUILTIN:
        meta = generated.ensure_generated(
            data_location, generator(name, seed, vocab_scale),
            {"train": train_rows, "test": test_rows}, fmt=fmt)
        return data_location, meta
    out_dir = os.path.join(work_dir, name)
    return out_dir, convert_real(name, data_location, out_dir, fmt)


def convert_real(name: str, data_location: str, out_dir: str, fmt: str = "parquet") -> dict:
    """Converts real data set `name` from `data_location` into `out_dir` (reused while the
    source files are unchanged); returns its meta.

    Raises:
      ValueError: For a name that is not a real data set.
      FileNotFoundError: When its files are missing.
    """
    if name == "movielens":
        from modelzoo.data import movielens
        return movielens.convert(data_location, out_dir, fmt=fmt)
    if name == "open_bandit":
        from modelzoo.data import open_bandit
        return open_bandit.convert(data_location, out_dir, fmt=fmt)
    raise ValueError(f"unknown real data set {name!r}; choose one of {REAL}")
