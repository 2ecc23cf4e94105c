"""Data for the model zoo: built-in generators, real-data loaders, tf.data readers.

- `criteo.CriteoGenerator`, `taobao.TaobaoGenerator`: deterministic synthetic
  data sets with labels from a hidden model (its AUC is the ceiling).
- `movielens`, `open_bandit`: convert real data sets into the same layout.
- `files`: the on-disk layout (Parquet or CSV, `meta.json`).
- `reader.make_dataset`: the tf.data pipeline over those files.
- `datasets.prepare`: get any of them ready by name.

`python -m modelzoo.data --help` generates or converts a data set.
"""
