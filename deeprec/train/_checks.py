"""Argument checks shared by deeprec's optimizers."""

import numbers


def check_number(optimizer: str, name: str, value, ok, requirement: str) -> None:
    """Raises ValueError unless `value` (when a Python number) satisfies `ok`.

    Tensors and callables are left to the kernels, which check them per step.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return
    if not ok(value):
        raise ValueError(f"{optimizer}: {name} must be {requirement}, got {value!r}")
