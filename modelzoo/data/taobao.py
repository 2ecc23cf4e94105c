"""A Taobao-like impression log: user behaviour sequences, a target item, two labels.

Columns: `price` (float32, the target item's price); `user_id`, `item_id`,
`category_id` (the target item's), `user_age` (7 buckets), `user_gender`
(2) as int64 ids; `hist_item_id`, `hist_category_id`: the user's last
1..`max_len` (default 50) behaviours, oldest first, as aligned int64 lists;
labels `click` and `buy` in {0, 1} (for DIN, one label; for MMoE, two tasks).

How rows arise. Items belong to one of `categories` categories and are
Zipf-popular within it; users are Zipf-active and each has 3 interest
categories (Zipf over categories). A history event is, with probability
0.8, an item of one of the user's interests, otherwise any item; the target
item is an interest item half of the time. Ids are scrambled over
[0, 2^32), so an item id does not reveal its category.

Hidden model. With `m` = the number of history events in the target's
category and x_p the standardized log price:

    click: b_c + 1.0 log1p(m) + 0.4 q(item) + 0.3 u(user) + A[age, group(category)] - 0.2 x_p
    buy:   b_b + 0.8 log1p(m) + 0.3 q'(item) + 0.5 A'[age, group(category)]
               + 0.4 G[gender, group(category)] - 0.6 x_p

q, q', u are standard normal per id (hashes), shrinking for rare items
(1 / (1 + rank / 200)); A, A', G are small tables over 8 category groups.
The relevance term is what DIN's attention over the history recovers; the
two tasks share it and differ in the rest (price sensitivity, gender).
Biases give about 25% clicks and 10% buys.
"""

from __future__ import annotations

import numpy as np

from modelzoo.data import random_fields
from modelzoo.data.files import Ragged, Schema
from modelzoo.data.generated import draw_labels
from modelzoo.data.zipf import zipf_from_uniform, zipf_ranks

SCHEMA = Schema(dense=("price",),
                categorical=("user_id", "item_id", "category_id", "user_age", "user_gender"),
                sequence=("hist_item_id", "hist_category_id"),
                labels=("click", "buy"))
_INTERESTS = 3
_GROUPS = 8
_ITEM_HEAD = 200.0
# Keys of the hashed per-id values.
_USER, _ITEM, _CATEGORY, _INTEREST, _AGE, _GENDER, _PRICE = range(1, 8)


def _calibrated_bias(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class TaobaoGenerator:
    """Generator of the Taobao-like data set (see the module docstring).

    Args:
      seed: Fixes the hidden model and, with the split and chunk, every row.
      vocab_scale: Multiplies the numbers of users, categories and items per category.
      max_len: Longest behaviour sequence.

    Example:
      >>> import numpy as np
      >>> gen = TaobaoGenerator(seed=1, vocab_scale=0.01)
      >>> columns, p = gen.chunk(np.random.default_rng(0), 100)
      >>> len(columns["hist_item_id"]), sorted(p)
      (100, ['buy', 'click'])
    """

    name = "taobao"
    schema = SCHEMA
    # Bumped whenever the hidden model changes (see CriteoGenerator.version).
    version = 1

    def __init__(self, seed: int = 0, vocab_scale: float = 1.0, max_len: int = 50):
        if not vocab_scale > 0:
            raise ValueError(f"taobao: vocab_scale must be > 0, got {vocab_scale!r}")
        if int(max_len) < 1:
            raise ValueError(f"taobao: max_len must be >= 1, got {max_len!r}")
        self.config = {"version": self.version, "seed": int(seed),
                       "vocab_scale": float(vocab_scale), "max_len": int(max_len)}
        self.users = max(10, int(round(200_000 * vocab_scale)))
        self.categories = max(_GROUPS, int(round(2_000 * vocab_scale)))
        self.items_per_category = max(2, int(round(500 * vocab_scale)))
        self.max_len = int(max_len)
        self._seed = int(seed)
        params = np.random.default_rng([self._seed, 0x7A0BA0])
        self.age_click = params.normal(0.0, 0.3, (7, _GROUPS))
        self.age_buy = params.normal(0.0, 0.3, (7, _GROUPS))
        self.gender_buy = params.normal(0.0, 0.4, (2, _GROUPS))
        self.bias = {"click": 0.0, "buy": 0.0}
        logits = self._logits(*self._rows(np.random.default_rng([self._seed, 0xB1A5]), 65536))
        self.bias = {"click": _calibrated_bias(logits["click"], 0.25),
                     "buy": _calibrated_bias(logits["buy"], 0.10)}

    def feature_info(self) -> dict:
        """Vocabulary sizes and dense transforms for `meta.json`."""
        items = self.categories * self.items_per_category
        return {"vocab": {"user_id": self.users, "item_id": items,
                          "category_id": self.categories, "user_age": 7, "user_gender": 2,
                          "hist_item_id": items, "hist_category_id": self.categories},
                "dense_transform": {"price": "log1p"}}

    def _key(self, kind: int) -> int:
        return self._seed * 100 + kind

    def _items(self, rng, categories: np.ndarray):
        """(item index, popularity rank within its category) for items of `categories`."""
        rank = zipf_ranks(rng, categories.shape, 1.2, self.items_per_category)
        return categories + self.categories * (rank - 1), rank

    def _interest_items(self, rng, users: np.ndarray, from_interest: np.ndarray):
        """Items of one of each user's interests (where `from_interest`) or of any category."""
        k = rng.integers(0, _INTERESTS, users.shape)
        u = random_fields.uniform(self._key(_INTEREST), users, k)
        interest = zipf_from_uniform(u, 1.1, self.categories) - 1
        anywhere = zipf_ranks(rng, users.shape, 1.1, self.categories) - 1
        return self._items(rng, np.where(from_interest, interest, anywhere))

    def _rows(self, rng, rows: int):
        users = zipf_ranks(rng, rows, 1.1, self.users) - 1
        lengths = np.minimum(rng.geometric(1.0 / 12.0, rows), self.max_len)
        event_users = np.repeat(users, lengths)
        hist_items, _ = self._interest_items(rng, event_users,
                                             rng.random(event_users.shape) < 0.8)
        items, item_rank = self._interest_items(rng, users, rng.random(rows) < 0.5)
        return users, lengths, hist_items, items, item_rank

    def _logits(self, users, lengths, hist_items, items, item_rank):
        categories = items % self.categories
        owner = np.repeat(np.arange(len(users)), lengths)
        same = (hist_items % self.categories) == categories[owner]
        relevance = np.log1p(np.bincount(owner, weights=same, minlength=len(users)))
        group = random_fields.hash_keys(self._key(_CATEGORY), categories) % _GROUPS
        age = random_fields.hash_keys(self._key(_AGE), users) % 7
        gender = random_fields.hash_keys(self._key(_GENDER), users) % 2
        price_z = self._price_z(items)
        shrink = 1.0 / (1.0 + item_rank / _ITEM_HEAD)
        click = (self.bias["click"] + 1.0 * relevance
                 + 0.4 * shrink * random_fields.normal(self._key(_ITEM), 0, items)
                 + 0.3 * random_fields.normal(self._key(_USER), users)
                 + self.age_click[age, group] - 0.2 * price_z)
        buy = (self.bias["buy"] + 0.8 * relevance
               + 0.3 * shrink * random_fields.normal(self._key(_ITEM), 1, items)
               + 0.5 * self.age_buy[age, group] + 0.4 * self.gender_buy[gender, group]
               - 0.6 * price_z)
        return {"click": click, "buy": buy}

    def _price_z(self, items):
        categories = items % self.categories
        return (0.9 * random_fields.normal(self._key(_PRICE), 0, categories)
                + 0.45 * random_fields.normal(self._key(_PRICE), 1, items))

    def chunk(self, rng: np.random.Generator, rows: int):
        """`rows` rows: (columns dict, {"click": P(click), "buy": P(buy)})."""
        users, lengths, hist_items, items, item_rank = self._rows(rng, rows)
        logits = self._logits(users, lengths, hist_items, items, item_rank)
        probabilities = {k: 1.0 / (1.0 + np.exp(-v)) for k, v in logits.items()}
        scramble = random_fields.scramble32
        columns = {
            # Prices in cents-rounded currency units, log-normal around e^3.
            "price": np.round(np.exp(3.0 + 0.8 * self._price_z(items)), 2).astype(np.float32),
            "user_id": scramble(users, self._key(_USER)),
            "item_id": scramble(items, self._key(_ITEM)),
            "category_id": scramble(items % self.categories, self._key(_CATEGORY)),
            "user_age": (random_fields.hash_keys(self._key(_AGE), users) % 7).astype(np.int64),
            "user_gender": (random_fields.hash_keys(self._key(_GENDER), users)
                            % 2).astype(np.int64),
            "hist_item_id": Ragged(scramble(hist_items, self._key(_ITEM)), lengths),
            "hist_category_id": Ragged(scramble(hist_items % self.categories,
                                                self._key(_CATEGORY)), lengths),
        }
        columns.update(draw_labels(rng, probabilities))
        return columns, probabilities
