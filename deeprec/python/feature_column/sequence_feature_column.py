"""`tensorflow.python.feature_column.sequence_feature_column` plus DeepRec's EV column.

Example:
  >>> from deeprec.python.feature_column import sequence_feature_column
  >>> col = sequence_feature_column.sequence_categorical_column_with_embedding("s")
  >>> col.name
  's'
"""

from tensorflow.python.feature_column.sequence_feature_column import *  # noqa: F403

from deeprec.feature_column.ev_columns import sequence_categorical_column_with_embedding  # noqa: F401
