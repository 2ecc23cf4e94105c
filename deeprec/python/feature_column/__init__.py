"""Mirror of `tensorflow.python.feature_column` (see deeprec/_module_tree.py)."""
