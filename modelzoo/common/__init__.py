"""What the model zoo's models share.

- `flags`: DeepRec-modelzoo-style command-line flags (no TensorFlow import).
- `tfapi`: the TensorFlow module to build with (deeprec, or stock TF for baselines).
- `features`: EV or hash-bucket feature columns from a data set's meta.
- `optimizers`, `model` (the `Model` base class), `training`
  (MonitoredTrainingSession loop), `evaluation`, `export`, `metrics`, `runner`.
"""
