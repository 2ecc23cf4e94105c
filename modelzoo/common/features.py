"""Feature columns from a data set's meta, EV-backed or stock, as the flags choose.

With `--ev true` a categorical feature is a
`categorical_column_with_embedding` (an EmbeddingVariable keyed by the raw
id, with the admission/eviction of `--ev_filter`/`--ev_evict`); with
`--ev false` it is stock TensorFlow's `categorical_column_with_hash_bucket`
over a `[min(--hash_bucket_size, 2 x vocabulary), dim]` tf.Variable (the
baseline a stock TF user would write). `--emb_fusion` sets
`embedding_column(do_fusion=...)`; `--group_embedding localized` instead
builds every embedding column in one `group_embedding_column_scope`, so that
each `input_layer` looks its columns up in one group. Dense features are
numeric columns, `log1p` applied where the data set's meta says so, then
standardized.
"""

from __future__ import annotations

import math
import zlib

from modelzoo.common.tfapi import tf

# The group of every embedding column under --group_embedding.
GROUP_NAME = "embedding"


def _seed(args, name: str) -> int:
    # A fixed per-column seed: graphs built for training, evaluation and export
    # must give never-trained EV ids the same default rows.
    return (args.seed * 7919 + zlib.crc32(name.encode())) % (2**31 - 1)


def ev_option(args):
    """The `tf.EmbeddingVariableOption` for `--ev_filter`, `--ev_evict` and their settings."""
    filter_option = None
    if args.ev_filter == "counter":
        filter_option = tf.CounterFilter(filter_freq=args.ev_filter_freq)
    elif args.ev_filter == "cbf":
        filter_option = tf.CBFFilter(filter_freq=args.ev_filter_freq,
                                     max_element_size=2**20, false_positive_probability=0.01)
    evict_option = None
    if args.ev_evict == "gstep":
        evict_option = tf.GlobalStepEvict(steps_to_live=args.ev_steps_to_live)
    elif args.ev_evict == "l2":
        evict_option = tf.L2WeightEvict(l2_weight_threshold=args.ev_l2_threshold)
    return tf.EmbeddingVariableOption(filter_option=filter_option, evict_option=evict_option)


def hash_buckets(meta, name: str, args) -> int:
    """Buckets of the stock hash-bucket column for feature `name`."""
    vocab = meta.get("vocab", {}).get(name)
    if vocab is None:
        return args.hash_bucket_size
    return int(min(args.hash_bucket_size, max(2 * int(vocab), 2)))


def categorical_column(meta, name: str, args, sequence: bool = False):
    """The categorical column of int64 feature `name` (EV or hash bucket; see module doc).

    `sequence=True` gives the sequence column (for
    `tf.contrib.feature_column.sequence_input_layer`).
    """
    if args.ev:
        make = (tf.feature_column.sequence_categorical_column_with_embedding if sequence
                else tf.feature_column.categorical_column_with_embedding)
        return make(name, dtype=tf.int64, ev_option=ev_option(args))
    make = (tf.feature_column.sequence_categorical_column_with_hash_bucket if sequence
            else tf.feature_column.categorical_column_with_hash_bucket)
    return make(name, hash_buckets(meta, name, args), dtype=tf.int64)


def embedding_column(categorical, args, dimension: int | None = None, combiner: str = "mean",
                     stddev: float | None = None):
    """`embedding_column` over `categorical`: seeded initializer, `--emb_fusion` or
    `--group_embedding`.

    The initializer is a truncated normal of `stddev` (default 1/sqrt(dimension)).
    """
    dimension = dimension or args.embedding_dim
    stddev = 1.0 / math.sqrt(dimension) if stddev is None else stddev
    initializer = tf.truncated_normal_initializer(stddev=stddev,
                                                  seed=_seed(args, categorical.name))
    if args.group_embedding:
        with tf.feature_column.group_embedding_column_scope(name=GROUP_NAME):
            return tf.feature_column.embedding_column(categorical, dimension,
                                                      combiner=combiner, initializer=initializer)
    kwargs = {"do_fusion": True} if args.emb_fusion else {}
    return tf.feature_column.embedding_column(categorical, dimension, combiner=combiner,
                                              initializer=initializer, **kwargs)


def dense_column(meta, name: str):
    """A numeric column: `log1p(max(x, 0))` if the meta's `dense_transform` says so, then
    standardized by the train split's `dense_stats` (mean, std) when the meta has them."""
    transform = meta.get("dense_transform", {}).get(name, "none")
    if transform not in ("log1p", "none"):
        raise ValueError(f"meta of '{meta.get('name')}': unknown dense_transform "
                         f"{transform!r} for '{name}'")
    mean, std = meta["splits"]["train"].get("dense_stats", {}).get(name, (0.0, 1.0))
    scale = 1.0 / std if std > 0 else 1.0

    def normalize(x):
        if transform == "log1p":
            x = tf.math.log1p(tf.maximum(x, 0.0))
        return (x - mean) * scale

    return tf.feature_column.numeric_column(name, normalizer_fn=normalize)


def categorical_columns(meta, args, names=None) -> list:
    """Categorical columns of `names` (default: all of the schema's categorical features)."""
    names = meta["schema"].categorical if names is None else names
    return [categorical_column(meta, name, args) for name in names]


def dense_columns(meta, names=None) -> list:
    """Numeric columns of `names` (default: all of the schema's dense features)."""
    names = meta["schema"].dense if names is None else names
    return [dense_column(meta, name) for name in names]
