"""Models' own flags: a parser with the zoo's defaults, and argparse `type=` converters.

argparse reports a failed conversion as `argument --flag: <message>` and
exits, before any data is generated or TensorFlow imported. The converters
also apply to string defaults, so a model's `args` always hold parsed
values (e.g. a tuple of layer sizes). No TensorFlow import here.
"""

from __future__ import annotations

import argparse

from modelzoo.common import flags

# The data sets each family of models reads: any features (field models), or
# behaviour sequences next to a user and a candidate item (behaviour models).
FIELD_DATASETS = ("criteo", "movielens", "open_bandit")
BEHAVIOUR_DATASETS = ("taobao", "movielens")


def make_parser(model: str, description: str, datasets, **defaults):
    """`flags.make_parser` with the first of `datasets` as default data set and Adam at
    0.001 unless `defaults` says otherwise.

    Returns:
      `(parser, group)`: the parser and an argument group for the model's own flags.

    Example:
      >>> parser, group = make_parser("dlrm", "DLRM", FIELD_DATASETS)
      >>> args = parser.parse_args([])
      >>> args.dataset, args.optimizer, args.learning_rate
      ('criteo', 'adam', 0.001)
    """
    defaults = {"dataset": datasets[0], "optimizer": "adam", "learning_rate": 0.001,
                **defaults}
    parser = flags.make_parser(model, description, datasets=datasets, **defaults)
    return parser, parser.add_argument_group(model)


def _convert(text, convert, accept, expected: str):
    """`convert(text)` if it succeeds and `accept`s the value; else an argparse error."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def layer_sizes(text: str) -> tuple[int, ...]:
    """"256,128,64" -> (256, 128, 64): one or more positive ints, comma-separated.

    Example:
      >>> layer_sizes("80, 40")
      (80, 40)
      >>> layer_sizes("80,0")
      Traceback (most recent call last):
      ...
      argparse.ArgumentTypeError: expected comma-separated positive ints, got '80,0'
    """
    return _convert(text, lambda t: tuple(int(part) for part in t.split(",")),
                    lambda sizes: min(sizes) >= 1, "comma-separated positive ints")


def positive_int(text: str) -> int:
    """An int >= 1.

    Example:
      >>> positive_int("4")
      4
    """
    return _convert(text, int, lambda v: v >= 1, "an int >= 1")


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    return _convert(text, int, lambda v: v >= 0, "an int >= 0")


def dropout_rate(text: str) -> float:
    """A float in [0, 1)."""
    return _convert(text, float, lambda v: 0.0 <= v < 1.0, "a rate in [0, 1)")


def positive_float(text: str) -> float:
    """A finite float > 0."""
    return _convert(text, float, lambda v: 0.0 < v < float("inf"), "a number > 0")


def add_dnn_flags(group, hidden_units: str) -> None:
    """`--dnn_hidden_units` (default `hidden_units`) and `--deep_dropout` on `group`.

    Example:
      >>> parser = argparse.ArgumentParser()
      >>> add_dnn_flags(parser, "400,400")
      >>> parser.parse_args(["--deep_dropout", "0.1"])
      Namespace(dnn_hidden_units=(400, 400), deep_dropout=0.1)
    """
    group.add_argument("--dnn_hidden_units", type=layer_sizes, default=hidden_units,
                       help="units of the DNN's hidden (ReLU) layers")
    group.add_argument("--deep_dropout", type=dropout_rate, default=0.0,
                       help="dropout rate after each hidden layer, in training")
