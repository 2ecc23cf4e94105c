"""Power-law (Zipf) ranks over a bounded vocabulary, sampled in O(1) per draw."""

import numpy as np


def zipf_ranks(rng: np.random.Generator, size, exponent: float, vocab: int) -> np.ndarray:
    """Ranks in [1, vocab] with P(rank = r) proportional to the integral of x^-exponent
    over [r, r + 1).

    This is the floor of a power law truncated to [1, vocab + 1), drawn by
    inverting its CDF, so it costs the same for a vocabulary of ten or ten
    million. Frequencies fall as r^-exponent (Zipf's law) for all but the
    first few ranks.

    Args:
      rng: The numpy Generator to draw from.
      size: Output shape.
      exponent: The power-law exponent, > 0.
      vocab: Number of distinct ranks, >= 1.

    Returns:
      int64 array of ranks.

    Raises:
      ValueError: For exponent <= 0 or vocab < 1.

    Example:
      >>> import numpy as np
      >>> r = zipf_ranks(np.random.default_rng(0), 100000, 1.2, 1000000)
      >>> int(r.min()) >= 1 and int(r.max()) <= 1000000
      True
      >>> bool((r == 1).sum() > (r == 2).sum() > (r == 4).sum())
      True
    """
    if not exponent > 0:
        raise ValueError(f"zipf_ranks: exponent must be > 0, got {exponent!r}")
    if int(vocab) < 1:
        raise ValueError(f"zipf_ranks: vocab must be >= 1, got {vocab!r}")
    return zipf_from_uniform(rng.random(size), exponent, vocab)


def zipf_from_uniform(u: np.ndarray, exponent: float, vocab: int) -> np.ndarray:
    """`zipf_ranks` for given uniforms `u` in [0, 1) (e.g. hashes of a key).

    Example:
      >>> import numpy as np
      >>> zipf_from_uniform(np.array([0.0, 0.999999]), 1.1, 100).tolist()
      [1, 100]
    """
    if not exponent > 0:
        raise ValueError(f"zipf_ranks: exponent must be > 0, got {exponent!r}")
    if int(vocab) < 1:
        raise ValueError(f"zipf_ranks: vocab must be >= 1, got {vocab!r}")
    top = float(vocab) + 1.0
    if abs(exponent - 1.0) < 1e-9:
        x = np.exp(u * np.log(top))
    else:
        e = 1.0 - exponent
        x = (1.0 + u * (top ** e - 1.0)) ** (1.0 / e)
    return np.clip(np.floor(x), 1, vocab).astype(np.int64)
