"""A Criteo-like click log: 13 count features, 26 categorical ids, labels from a hidden model.

Columns (Criteo's names): `I1`..`I13` non-negative integer counts stored as
float32 with heavy (log-normal) tails; `C1`..`C26` int64 ids, each feature's
ids drawn Zipf(a) over its own vocabulary (Criteo's cardinalities by default:
from 3 to 10 million distinct values) and scrambled over [0, 2^32) like
hashed values; `label` in {0, 1}.

The hidden model's logit is

    bias + sum_j w_j x_j + c01 x_1 x_2 + c3 tanh(2 x_3) + c45 x_4 relu(x_5)   (dense)
         + sum_f s_f d_f(r) n_f(id)                                           (per id)
         + sum_(f,g) in PAIRS T_fg[c_f(id_f), c_g(id_g)] d_f d_g                (interactions)

with x_j = standardized log1p(I_j); n_f(id) standard normal per id and
c_f(id) one of 4 latent classes per id (both hashes of the id, so no table
is stored); T_fg a 4x4 table of normal effects for each of 6 pairs of
features with fewer than 2000 values (like "ad category x site category"
crosses); r the id's
popularity rank and d_f(r) = (1 + r / 1000)^-1/2, so an id's effect shrinks
as it gets rarer: the millions of ids seen once or twice carry little of the
signal, as in real logs, and a model trained on a few million rows can
approach the ceiling. The bias is set so that about `positive_rate` of the
labels are 1. Everything is a function of `seed` and the options.
"""

from __future__ import annotations

import numpy as np

from modelzoo.data import random_fields
from modelzoo.data.files import Schema
from modelzoo.data.generated import draw_labels
from modelzoo.data.zipf import zipf_ranks

# Distinct values of C1..C26 in Criteo's Kaggle display-advertising set.
CRITEO_VOCAB = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593,
                3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105,
                142572)
NUM_DENSE, NUM_CATEGORICAL = 13, len(CRITEO_VOCAB)
SCHEMA = Schema(dense=tuple(f"I{i}" for i in range(1, NUM_DENSE + 1)),
                categorical=tuple(f"C{i}" for i in range(1, NUM_CATEGORICAL + 1)),
                labels=("label",))
# Rank at which an id's effect has shrunk to 1/sqrt(2).
_EFFECT_HEAD = 200.0
_CLASSES = 4
_NUM_PAIRS = 6


class CriteoGenerator:
    """Generator of the Criteo-like data set (see the module docstring).

    Args:
      seed: Fixes the hidden model and, with the split and chunk, every row.
      vocab_scale: Multiplies every feature's vocabulary (each keeps >= 2 values).
      exponent: Mean Zipf exponent; feature f uses exponent +- 0.1.
      positive_rate: Target fraction of positive labels, in (0, 1).

    Example:
      >>> import numpy as np
      >>> gen = CriteoGenerator(seed=1, vocab_scale=0.01)
      >>> columns, p = gen.chunk(np.random.default_rng(0), 1000)
      >>> sorted(columns) == sorted(SCHEMA.columns), p["label"].shape
      (True, (1000,))
    """

    name = "criteo"
    schema = SCHEMA
    # Bumped whenever the hidden model changes, so stale generated files
    # (whose meta records the version) are regenerated.
    version = 1

    def __init__(self, seed: int = 0, vocab_scale: float = 1.0, exponent: float = 1.2,
                 positive_rate: float = 0.25):
        if not vocab_scale > 0:
            raise ValueError(f"criteo: vocab_scale must be > 0, got {vocab_scale!r}")
        if not exponent > 0.1:
            raise ValueError(f"criteo: exponent must be > 0.1, got {exponent!r}")
        if not 0 < positive_rate < 1:
            raise ValueError(f"criteo: positive_rate must be in (0, 1), got {positive_rate!r}")
        self.config = {"version": self.version, "seed": int(seed),
                       "vocab_scale": float(vocab_scale), "exponent": float(exponent),
                       "positive_rate": float(positive_rate)}
        self.vocab = tuple(max(2, int(round(v * vocab_scale))) for v in CRITEO_VOCAB)
        params = np.random.default_rng([int(seed), 0xC217E0])
        self.exponents = exponent + params.uniform(-0.1, 0.1, NUM_CATEGORICAL)
        self.id_scale = params.uniform(0.1, 0.35, NUM_CATEGORICAL)
        self.dense_mu = params.uniform(0.5, 4.0, NUM_DENSE)
        self.dense_sigma = params.uniform(0.6, 1.4, NUM_DENSE)
        self.dense_weight = params.normal(0.0, 0.25, NUM_DENSE)
        # Interactions between features of small vocabulary (< 2000 values):
        # pairs of rarer ids are seen together too seldom for any model to learn.
        moderate = [f for f in range(NUM_CATEGORICAL) if CRITEO_VOCAB[f] < 2000]
        chosen = params.permutation(moderate)[:2 * _NUM_PAIRS]
        self.pairs = tuple((int(chosen[2 * i]), int(chosen[2 * i + 1]))
                           for i in range(len(chosen) // 2))
        self.pair_tables = params.normal(0.0, 0.25, (len(self.pairs), _CLASSES, _CLASSES))
        self._seed = int(seed)
        self.bias = 0.0
        self.bias = self._calibrate_bias(positive_rate)

    def _calibrate_bias(self, positive_rate: float) -> float:
        """The bias giving `positive_rate` positives on a fixed 65536-row sample."""
        _, _, logit = self._rows(np.random.default_rng([self._seed, 0xB1A5]), 65536)
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < positive_rate:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    def _id_key(self, feature: int) -> int:
        return self._seed * 1000 + feature

    def _rows(self, rng: np.random.Generator, rows: int):
        """(dense counts [rows, 13], ids [rows, 26], hidden logit [rows])."""
        z = rng.standard_normal((rows, NUM_DENSE))
        counts = np.floor(np.maximum(np.expm1(self.dense_mu + self.dense_sigma * z), 0.0))
        x = (np.log1p(counts) - self.dense_mu) / self.dense_sigma
        logit = self.bias + x @ self.dense_weight
        logit += 0.3 * x[:, 0] * x[:, 1] + 0.4 * np.tanh(2.0 * x[:, 2])
        logit += 0.3 * x[:, 3] * np.maximum(x[:, 4], 0.0)
        ids = np.empty((rows, NUM_CATEGORICAL), np.int64)
        ranks = np.empty((rows, NUM_CATEGORICAL), np.int64)
        for f in range(NUM_CATEGORICAL):
            ranks[:, f] = zipf_ranks(rng, rows, self.exponents[f], self.vocab[f])
            ids[:, f] = random_fields.scramble32(ranks[:, f] - 1, self._id_key(f))
        decay = 1.0 / (1.0 + ranks / _EFFECT_HEAD)
        for f in range(NUM_CATEGORICAL):
            effect = random_fields.normal(self._id_key(f), 0, ids[:, f])
            logit += self.id_scale[f] * decay[:, f] * effect
        for table, (f, g) in zip(self.pair_tables, self.pairs, strict=True):
            class_f = random_fields.hash_keys(self._id_key(f), 1, ids[:, f]) % _CLASSES
            class_g = random_fields.hash_keys(self._id_key(g), 1, ids[:, g]) % _CLASSES
            logit += table[class_f, class_g] * decay[:, f] * decay[:, g]
        return counts.astype(np.float32), ids, logit

    def feature_info(self) -> dict:
        """Vocabulary sizes and dense transforms for `meta.json`."""
        return {"vocab": dict(zip(SCHEMA.categorical, self.vocab, strict=True)),
                "dense_transform": {name: "log1p" for name in SCHEMA.dense}}

    def chunk(self, rng: np.random.Generator, rows: int):
        """`rows` rows: (columns dict, {"label": true P(label = 1)})."""
        counts, ids, logit = self._rows(rng, rows)
        probability = 1.0 / (1.0 + np.exp(-logit))
        columns = {name: counts[:, j] for j, name in enumerate(SCHEMA.dense)}
        columns.update({name: ids[:, f] for f, name in enumerate(SCHEMA.categorical)})
        columns.update(draw_labels(rng, {"label": probability}))
        return columns, {"label": probability}
