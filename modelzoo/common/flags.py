"""Command-line flags shared by the model zoo's `train.py` scripts (DeepRec modelzoo style).

Each model calls `make_parser(...)` with its own defaults, adds its own
flags, and validates with `parse_args`. Boolean flags take a value as in
DeepRec's scripts (`--ev True`, `--emb_fusion false`) or none (`--ev`).
This module does not import TensorFlow, so flags are checked before the
(slow) import.
"""

from __future__ import annotations

import argparse
import os

from modelzoo.data.datasets import BUILTIN, DATASETS

OPTIMIZERS = ("adagrad", "adam", "adamasync", "adagraddecay", "adamw", "gradientdescent",
              "ftrl")
EV_FILTERS = ("none", "counter", "cbf")
EV_EVICTIONS = ("none", "gstep", "l2")
DATA_FORMATS = ("parquet", "csv")
# DeepRec's modelzoo also has "collective", the multi-GPU mode (SOK).
GROUP_EMBEDDINGS = ("localized",)


def boolean_string(value: str) -> bool:
    """Parses a boolean flag value: true/false, yes/no, 1/0, on/off (any case).

    Example:
      >>> boolean_string("True"), boolean_string("0")
      (True, False)
    """
    lowered = str(value).strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def _add_bool(group, name: str, default: bool, help: str) -> None:
    group.add_argument(name, type=boolean_string, nargs="?", const=True, default=default,
                       metavar="BOOL", help=f"{help} (default {default})")


def make_parser(model: str, description: str, *, datasets=BUILTIN, dataset: str = "criteo",
                batch_size: int = 512, learning_rate: float = 0.05,
                optimizer: str = "adagrad", embedding_dim: int = 16) -> argparse.ArgumentParser:
    """The shared flags, with a model's defaults; the model adds its own flags after.

    Args:
      model: The model's short name (used in default paths).
      description: The script's description.
      datasets: The data sets this model can train on.
      dataset, batch_size, learning_rate, optimizer, embedding_dim: Defaults.

    Returns:
      An `argparse.ArgumentParser`.

    Example:
      >>> parser = make_parser("wdl", "Wide & Deep")
      >>> args = parse_args(parser, ["--steps", "10", "--ev", "false"])
      >>> args.steps, args.ev, args.emb_fusion, args.batch_size
      (10, False, True, 512)
    """
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.set_defaults(model=model)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=datasets, default=dataset,
                      help="built-in generated data (criteo, taobao) or a real data set")
    data.add_argument("--data_location", default=None,
                      help="data set directory; built-in data is generated into it if absent "
                           "(default ./data/<dataset>); for movielens/open_bandit the "
                           "directory holding the downloaded files")
    data.add_argument("--data_format", choices=DATA_FORMATS, default="parquet",
                      help="file format for generated/converted data")
    data.add_argument("--train_rows", type=int, default=1_000_000,
                      help="rows of generated training data")
    data.add_argument("--test_rows", type=int, default=100_000,
                      help="rows of generated test data")
    data.add_argument("--vocab_scale", type=float, default=1.0,
                      help="scales the vocabularies of generated categorical features")
    data.add_argument("--data_seed", type=int, default=0, help="seed of generated data")

    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=0,
                       help="training steps; 0 trains --epochs passes over the data")
    train.add_argument("--epochs", type=int, default=1, help="passes when --steps is 0")
    train.add_argument("--batch_size", type=int, default=batch_size)
    train.add_argument("--eval_batch_size", type=int, default=4096)
    train.add_argument("--output_dir", default="./result",
                       help="directory for checkpoints, summaries, metrics and exports")
    train.add_argument("--checkpoint", default=None,
                       help="checkpoint directory (default <output_dir>/model_<model>_<time>); "
                            "training resumes from a checkpoint found there")
    train.add_argument("--save_steps", type=int, default=0,
                       help="checkpoint every N steps (0: only at the end)")
    train.add_argument("--keep_checkpoint_max", type=int, default=1)
    train.add_argument("--summary_steps", type=int, default=100,
                       help="write TensorBoard summaries every N steps")
    train.add_argument("--log_steps", type=int, default=100,
                       help="progress line every N steps when stdout is not a terminal")
    train.add_argument("--no_eval", action="store_true", help="skip evaluation on the test set")
    train.add_argument("--saved_model_path", default=None,
                       help="export a SavedModel under this directory, in a numbered "
                            "subdirectory (default <output_dir>/saved_model; 'none' skips)")
    train.add_argument("--seed", type=int, default=0, help="seed of initializers and shuffling")
    train.add_argument("--shuffle", type=boolean_string, nargs="?", const=True, default=True,
                       metavar="BOOL", help="shuffle training rows (default True)")
    train.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TF default)")
    train.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TF default)")

    model_group = parser.add_argument_group("model")
    model_group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer)
    model_group.add_argument("--learning_rate", type=float, default=learning_rate)
    model_group.add_argument("--embedding_dim", type=int, default=embedding_dim)
    _add_bool(model_group, "--emb_fusion", True,
              "fused embedding lookups (embedding_column(do_fusion=True))")
    model_group.add_argument("--group_embedding", choices=GROUP_EMBEDDINGS, default=None,
                             help="look up all embedding columns together (DeepRec's Group "
                                  "Embedding, localized mode: one "
                                  "group_embedding_lookup_sparse per input layer instead of "
                                  "a lookup per column); replaces --emb_fusion")
    _add_bool(model_group, "--ev", True,
              "EmbeddingVariable columns; false: stock hash-bucket tf.Variable tables")
    model_group.add_argument("--ev_filter", choices=EV_FILTERS, default="none",
                             help="EV feature admission (CounterFilter / CBFFilter)")
    model_group.add_argument("--ev_filter_freq", type=int, default=2,
                             help="lookups before an id is admitted")
    model_group.add_argument("--ev_evict", "--ev_elimination", dest="ev_evict",
                             choices=EV_EVICTIONS, default="none",
                             help="EV eviction (GlobalStepEvict / L2WeightEvict)")
    model_group.add_argument("--ev_steps_to_live", type=int, default=10000,
                             help="gstep eviction: steps an unused id lives")
    model_group.add_argument("--ev_l2_threshold", type=float, default=1e-4,
                             help="l2 eviction: rows with a smaller squared L2 norm go")
    model_group.add_argument("--hash_bucket_size", type=int, default=1_000_000,
                             help="--ev false: buckets per feature are min(this, 2 x the "
                                  "feature's vocabulary)")
    return parser


def _require(condition: bool, flag: str, value, rule: str) -> None:
    if not condition:
        raise SystemExit(f"error: {flag} {rule}, got {value!r}")


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Checks flag values and combinations; exits with a message naming the flag and value."""
    from modelzoo.common.backend import stock_tf_selected

    for flag in ("batch_size", "eval_batch_size", "epochs", "keep_checkpoint_max",
                 "summary_steps", "log_steps", "embedding_dim", "train_rows", "test_rows",
                 "hash_bucket_size", "ev_filter_freq", "ev_steps_to_live"):
        value = getattr(args, flag)
        _require(value >= 1, f"--{flag}", value, "must be >= 1")
    for flag in ("steps", "save_steps", "inter", "intra"):
        value = getattr(args, flag)
        _require(value >= 0, f"--{flag}", value, "must be >= 0")
    _require(args.learning_rate > 0, "--learning_rate", args.learning_rate, "must be > 0")
    _require(args.vocab_scale > 0, "--vocab_scale", args.vocab_scale, "must be > 0")
    if args.dataset not in BUILTIN:
        _require(args.data_location is not None, "--data_location", args.data_location,
                 f"is required for --dataset {args.dataset} (the directory of its files)")
        _require(os.path.isdir(args.data_location), "--data_location", args.data_location,
                 "must be an existing directory")
    if not args.ev:
        for flag, value in (("--ev_filter", args.ev_filter), ("--ev_evict", args.ev_evict)):
            _require(value == "none", flag, value, "needs --ev true")
    if stock_tf_selected():
        _require(not args.ev, "--ev", args.ev,
                 "needs deeprec (unset MODELZOO_STOCK_TF to use EmbeddingVariables)")
        _require(not args.emb_fusion, "--emb_fusion", args.emb_fusion,
                 "needs deeprec (unset MODELZOO_STOCK_TF to use fused lookups)")
        _require(args.group_embedding is None, "--group_embedding", args.group_embedding,
                 "needs deeprec (unset MODELZOO_STOCK_TF to use group embedding)")
        _require(args.optimizer in ("adagrad", "adam", "gradientdescent", "ftrl"),
                 "--optimizer", args.optimizer, "is DeepRec's; stock TF has adagrad, adam, "
                 "gradientdescent and ftrl")
    if args.data_location is None and args.dataset in BUILTIN:
        args.data_location = os.path.join(".", "data", args.dataset)
    if args.saved_model_path is None:
        args.saved_model_path = os.path.join(args.output_dir, "saved_model")
    elif args.saved_model_path.lower() == "none":
        args.saved_model_path = None
    return args


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """`parser.parse_args(argv)` followed by `validate`."""
    return validate(parser.parse_args(argv))


__all__ = ["DATASETS", "boolean_string", "make_parser", "parse_args", "validate"]
