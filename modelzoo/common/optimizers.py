"""`--optimizer` by name; DeepRec's optimizers train EmbeddingVariables natively."""

from modelzoo.common.tfapi import tf


def make_optimizer(name: str, learning_rate: float, global_step=None):
    """The optimizer `name` (see `flags.OPTIMIZERS`) at `learning_rate`.

    Args:
      name: adagrad, adam, adamasync, adagraddecay, adamw, gradientdescent or ftrl.
      learning_rate: Its learning rate.
      global_step: The global step tensor (AdagradDecay needs it).

    Raises:
      ValueError: For an unknown name.

    Example:
      >>> type(make_optimizer("adagrad", 0.1)).__name__
      'AdagradOptimizer'
    """
    train = tf.train
    if name == "adagrad":
        return train.AdagradOptimizer(learning_rate, initial_accumulator_value=0.1)
    if name == "adam":
        return train.AdamOptimizer(learning_rate)
    if name == "gradientdescent":
        return train.GradientDescentOptimizer(learning_rate)
    if name == "ftrl":
        return train.FtrlOptimizer(learning_rate)
    if name == "adamasync":
        return train.AdamAsyncOptimizer(learning_rate)
    if name == "adagraddecay":
        if global_step is None:
            global_step = train.get_or_create_global_step()
        return train.AdagradDecayOptimizer(learning_rate, global_step)
    if name == "adamw":
        return train.AdamWOptimizer(weight_decay=1e-5, learning_rate=learning_rate)
    raise ValueError(f"--optimizer: unknown optimizer {name!r}")
