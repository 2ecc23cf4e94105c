"""`deeprec.train`: `tf.compat.v1.train` with EmbeddingVariable-aware pieces.

Optimizers (the stock ones, EV-aware, and DeepRec's AdagradDecay,
AdamAsync and AdamW), `Saver` and `MonitoredTrainingSession` are deeprec's; every other
name forwards to `tf.compat.v1.train`.
"""

import tensorflow as _tf

from deeprec.train.adagrad_decay import AdagradDecayOptimizer
from deeprec.train.adam_async import AdamAsyncOptimizer
from deeprec.train.adamw import AdamWOptimizer
from deeprec.train.ev_stats_hook import EmbeddingVariableStatsHook
from deeprec.train.optimizers import (
    AdagradOptimizer,
    AdamOptimizer,
    FtrlOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
)
from deeprec.train.saver import MonitoredTrainingSession, Saver

_STOCK = _tf.compat.v1.train
globals().update({k: getattr(_STOCK, k) for k in dir(_STOCK)
                  if not k.startswith("_") and k not in globals()})


def __getattr__(name):
    return getattr(_STOCK, name)
