"""Train Wide & Deep (see `modelzoo/wdl/model.py`) in DeepRec's modelzoo style.

Run (built-in Criteo-like data, generated into ./data/criteo on first use):

    python modelzoo/wdl/train.py --steps 2000 --output_dir /tmp/wdl
    python modelzoo/wdl/train.py --ev false --emb_fusion false   # hash-bucket tables

It trains with MonitoredTrainingSession (progress bar, TensorBoard
summaries, checkpoints), reports AUC and log loss on the test split against
the hidden model's ceiling, and exports a SavedModel. `--help` lists every
flag.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    # Run as a script: make the repository root importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from modelzoo.common import flags


def make_parser():
    """The shared flags with WDL's defaults, plus WDL's own flags."""
    parser = flags.make_parser("wdl", "Wide & Deep on EmbeddingVariable feature columns",
                               datasets=("criteo", "movielens", "open_bandit"),
                               learning_rate=0.003, optimizer="adam", embedding_dim=16)
    group = parser.add_argument_group("wide & deep")
    group.add_argument("--linear_learning_rate", type=float, default=0.2,
                       help="Adagrad learning rate of the wide part")
    group.add_argument("--dnn_hidden_units", default="256,128,64",
                       help="units of the deep part's hidden layers")
    group.add_argument("--deep_dropout", type=float, default=0.0,
                       help="dropout rate after each hidden layer, in training")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then trains, evaluates and exports (`modelzoo.common.runner`)."""
    parser = make_parser()
    args = flags.parse_args(parser, argv)  # bad flags fail before TensorFlow is imported
    from modelzoo.common import runner
    from modelzoo.wdl.model import WideAndDeep, check_args

    check_args(args)  # and before any data is generated
    return runner.run(WideAndDeep, parser, argv)


if __name__ == "__main__":
    main()
