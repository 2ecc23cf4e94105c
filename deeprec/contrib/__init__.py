"""`deeprec.contrib`: the parts of TF 1.x `tf.contrib` that DeepRec scripts use.

TensorFlow 2 has no `tf.contrib`; these modules provide the feature-column
entry points of DeepRec's guide: `deeprec.contrib.layers` (with
`python.layers.feature_column` / `feature_column_ops`) and
`deeprec.contrib.feature_column.sequence_input_layer`.
"""

from deeprec.contrib import feature_column, layers
