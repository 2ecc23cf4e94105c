"""The TensorFlow module the model zoo builds with: deeprec, or stock TF for baselines.

Model code does `from modelzoo.common.tfapi import tf` and writes TF1 code
against it. Normally `tf` is `deeprec` (`tf.compat.v1` plus DeepRec's
additions). With the environment variable `MODELZOO_STOCK_TF=1` it is
stock `tensorflow.compat.v1` and deeprec is never imported, so a benchmark
baseline runs on unmodified TensorFlow 2.15 (hash-bucket columns, TF's
optimizers and sessions); asking for a DeepRec feature then fails with a
clear error from the flags.
"""

import os
import warnings

from modelzoo.common.backend import STOCK_ENV, stock_tf_selected

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STOCK = stock_tf_selected()

if STOCK:
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
else:
    import deeprec as tf

tf.logging.set_verbosity(tf.logging.ERROR)
# tf.layers and feature columns are TF1 APIs by design here; their
# deprecation notices would drown the training output.
warnings.filterwarnings("ignore", message=r".*(is deprecated|add_variable)", category=UserWarning)

__all__ = ["STOCK", "STOCK_ENV", "tf"]
