"""MovieLens ratings as a click-style data set with behaviour sequences.

Reads `ratings.csv` (userId,movieId,rating,timestamp) and `movies.csv`
(movieId,title,genres) from a MovieLens download such as "ml-latest-small"
(GroupLens; research use, see its README.txt). Each rating is one row:

- `year` (dense): the movie's year from its title (the mean year if absent);
- `user_id`, `item_id` (the movie), `category_id` (its first genre) as ids;
- `genres`: all of the movie's genres; `hist_item_id`, `hist_category_id`:
  the user's previous ratings (at most `max_len`, oldest first) by timestamp;
- `label`: 1 if rating >= 4, else 0.

The names follow the Taobao-like set, so sequence models run on both. The
last `test_fraction` of each user's ratings (by time) form the test split.
Genres become ids by a stable string hash.
"""

from __future__ import annotations

import os
import re

import numpy as np

from modelzoo.data import converted
from modelzoo.data.files import Ragged, Schema, take_rows

SCHEMA = Schema(dense=("year",), categorical=("user_id", "item_id", "category_id"),
                sequence=("genres", "hist_item_id", "hist_category_id"), labels=("label",))
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _read_csv(path: str, types: dict):
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(
        column_types={k: getattr(pa, v)() for k, v in types.items()}))
    missing = set(types) - set(table.column_names)
    if missing:
        raise ValueError(f"'{path}' lacks columns {sorted(missing)}")
    return {k: table.column(k).to_numpy(zero_copy_only=False) for k in types}


def _history(order_user: np.ndarray, max_len: int):
    """For events sorted by (user, time): (start index, length) of each one's history."""
    index = np.arange(len(order_user))
    first = np.r_[True, order_user[1:] != order_user[:-1]]
    user_start = np.maximum.accumulate(np.where(first, index, 0))
    start = np.maximum(user_start, index - max_len)
    return start, index - start, index - user_start


def _gather_ranges(values: np.ndarray, start: np.ndarray, lengths: np.ndarray) -> Ragged:
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.repeat(start - offsets, lengths) + np.arange(int(lengths.sum()))
    return Ragged(values[flat].astype(np.int64), lengths.astype(np.int64))


def load(data_location: str, max_len: int = 50, test_fraction: float = 0.2) -> dict:
    """`{"train": columns, "test": columns}` from the MovieLens files in `data_location`.

    Raises:
      FileNotFoundError: When `ratings.csv` or `movies.csv` is missing.
      ValueError: For a file without the expected columns, or bad options.
    """
    if int(max_len) < 1:
        raise ValueError(f"movielens: max_len must be >= 1, got {max_len!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"movielens: test_fraction must be in (0, 1), got {test_fraction!r}")
    ratings_path = os.path.join(data_location, "ratings.csv")
    movies_path = os.path.join(data_location, "movies.csv")
    converted.source_signature([ratings_path, movies_path])
    ratings = _read_csv(ratings_path, {"userId": "int64", "movieId": "int64",
                                       "rating": "float32", "timestamp": "int64"})
    movies = _read_csv(movies_path, {"movieId": "int64", "title": "string",
                                     "genres": "string"})
    genre_lists = [str(g).split("|") for g in movies["genres"]]
    first_genre = converted.string_ids([g[0] for g in genre_lists])
    all_genres = Ragged.from_lists([converted.string_ids(g) for g in genre_lists])
    years = np.array([float(m.group(1)) if (m := _YEAR.search(str(t))) else np.nan
                      for t in movies["title"]])
    years = np.where(np.isnan(years), np.nanmean(years), years).astype(np.float32)

    known = np.isin(ratings["movieId"], movies["movieId"])
    if not known.all():
        raise ValueError(f"'{ratings_path}': {int((~known).sum())} ratings of movies "
                         f"missing from '{movies_path}'")
    order = np.lexsort((ratings["movieId"], ratings["timestamp"], ratings["userId"]))
    users, items = ratings["userId"][order], ratings["movieId"][order]
    movie_row = np.searchsorted(movies["movieId"], items, sorter=np.argsort(movies["movieId"]))
    movie_row = np.argsort(movies["movieId"])[movie_row]
    category = first_genre[movie_row]
    start, length, position = _history(users, int(max_len))
    count = np.bincount(np.unique(users, return_inverse=True)[1])
    per_user = np.repeat(count, count)
    columns = {
        "year": years[movie_row], "user_id": users.astype(np.int64),
        "item_id": items.astype(np.int64), "category_id": category,
        "genres": all_genres.take(movie_row),
        "hist_item_id": _gather_ranges(items, start, length),
        "hist_category_id": _gather_ranges(category, start, length),
        "label": (ratings["rating"][order] >= 4.0).astype(np.float32),
    }
    is_test = position >= np.ceil(per_user * (1.0 - test_fraction))
    return {"train": take_rows(columns, np.flatnonzero(~is_test)),
            "test": take_rows(columns, np.flatnonzero(is_test))}


def convert(data_location: str, out_dir: str, fmt: str = "parquet", max_len: int = 50,
            test_fraction: float = 0.2) -> dict:
    """Converts (or reuses a conversion of) MovieLens into `out_dir`; returns the meta."""
    paths = [os.path.join(data_location, f) for f in ("ratings.csv", "movies.csv")]
    signature = converted.source_signature(paths)
    options = {"max_len": int(max_len), "test_fraction": float(test_fraction)}
    meta = converted.cached_meta(out_dir, "movielens", signature, fmt, options)
    if meta is not None:
        return meta
    return converted.write_converted(
        out_dir, "movielens", SCHEMA, load(data_location, max_len, test_fraction), fmt=fmt,
        dense_transform={"year": "none"}, signature=signature, options=options)
