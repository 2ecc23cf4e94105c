"""Fails fast, with an actionable message, when TensorFlow is missing or wrong."""

REQUIRED_TF = "2.15.1"


def check_tensorflow() -> None:
    """Raises ImportError unless tensorflow-cpu==2.15.1 is importable.

    The op library links against one exact TensorFlow build; any other version
    would fail later with an obscure undefined-symbol error.
    """
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError(
            f"deeprec needs TensorFlow {REQUIRED_TF}, which is not installed: "
            f"pip install tensorflow-cpu=={REQUIRED_TF}") from e
    if tf.__version__ != REQUIRED_TF:
        raise ImportError(
            f"deeprec needs TensorFlow {REQUIRED_TF} but found {tf.__version__} "
            f"at {tf.__file__}: pip install tensorflow-cpu=={REQUIRED_TF}")
