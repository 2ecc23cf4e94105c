"""Stateless pseudo-random values keyed by integers (vectorized numpy).

A generator's hidden model gives every (feature, id) pair fixed parameters.
Storing them would take one table row per possible id (millions); instead each
parameter is a hash of its key, so any row of any split can be generated
independently and in any order, and the same id always gets the same
parameters.
"""

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit finalizer (splitmix64's): nearby inputs give unrelated outputs.

    Example:
      >>> import numpy as np
      >>> mix64(np.array([0, 1], np.uint64)).tolist()
      [0, 6238072747940578789]
    """
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def hash_keys(*keys) -> np.ndarray:
    """One 64-bit hash per element of the broadcast integer `keys` (order matters).

    Example:
      >>> import numpy as np
      >>> bool(hash_keys(1, np.arange(3))[0] != hash_keys(0, np.arange(3))[1])
      True
    """
    h = np.uint64(0)
    with np.errstate(over="ignore"):
        for key in keys:
            h = mix64((h + _GOLDEN) ^ np.asarray(key).astype(np.uint64))
    return np.asarray(h, np.uint64)


def uniform(*keys) -> np.ndarray:
    """Floats in [0, 1) with 53 random bits, one per element of the broadcast keys."""
    return (hash_keys(*keys) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def normal(*keys) -> np.ndarray:
    """Standard normal values (Box-Muller over two hashes of the keys).

    Example:
      >>> import numpy as np
      >>> z = normal(7, np.arange(100000))
      >>> bool(abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02)
      True
    """
    u1 = uniform(*keys, 0x5EED1)
    u2 = uniform(*keys, 0x5EED2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def scramble32(values: np.ndarray, key: int) -> np.ndarray:
    """A keyed bijection of [0, 2^32): distinct inputs keep distinct outputs.

    Generated categorical ids are ranks passed through this, so popular ids
    are spread over the 32-bit range like the hashed values of real logs,
    and two features never share an id order.

    Example:
      >>> import numpy as np
      >>> out = scramble32(np.arange(1000), key=3)
      >>> len(set(out.tolist())), int(out.max()) < 2**32
      (1000, True)
    """
    x = np.asarray(values, np.uint64) & np.uint64(0xFFFFFFFF)
    k = hash_keys(key) & np.uint64(0xFFFFFFFF)
    mask = np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        # xor with a constant, multiplication by an odd number mod 2^32 and
        # x ^ (x >> s) are each invertible on 32-bit words.
        x = (x ^ k) & mask
        x = (x * np.uint64(0x7FEB352D)) & mask
        x = x ^ (x >> np.uint64(15))
        x = (x * np.uint64(0x846CA68B)) & mask
        x = x ^ (x >> np.uint64(16))
    return x.astype(np.int64)
