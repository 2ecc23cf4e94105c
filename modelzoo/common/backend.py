"""Which TensorFlow the model zoo runs on, decided without importing TensorFlow."""

import os

STOCK_ENV = "MODELZOO_STOCK_TF"


def stock_tf_selected() -> bool:
    """True when `MODELZOO_STOCK_TF=1`: build on stock `tensorflow.compat.v1`, not deeprec."""
    return os.environ.get(STOCK_ENV, "") == "1"
