"""Where the serving processor library is."""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def processor_library() -> str:
    """The absolute path of `libserving_processor.so`, built with the package.

    A serving framework `dlopen`s it (or links it) and calls its C API:
    `initialize`, `process`, `get_serving_model_info` and `free_output_data`
    (declared in `serving/processor/serving/processor.h`).

    Returns:
      The path, which exists.

    Raises:
      FileNotFoundError: the package was installed without building it.

    Example:
      >>> import ctypes
      >>> from deeprec.serving import processor_library
      >>> lib = ctypes.CDLL(processor_library())
      >>> hasattr(lib, "initialize") and hasattr(lib, "free_output_data")
      True
    """
    path = os.path.join(_HERE, "lib", "libserving_processor.so")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing; build deeprec with `pip install .` or "
            "`python setup.py build_ext --inplace` (needs protoc 3.21.x)")
    return path
