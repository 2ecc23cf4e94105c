"""Two-tower DSSM (`modelzoo/dssm/model.py`): train, evaluate, export user/item vectors.

    python modelzoo/dssm/train.py --steps 2000 --output_dir /tmp/dssm
    python modelzoo/dssm/train.py --similarity dot --tower_units 128,32

The SavedModel adds `user_vector` and `item_vector` outputs to the click
probability. Job: `modelzoo.common.script`; flags: `--help`.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from modelzoo.common import model_flags, script


def make_parser():
    """The shared flags and the towers'."""
    parser, group = model_flags.make_parser(
        "dssm", "Two-tower DSSM on EmbeddingVariable feature columns",
        model_flags.BEHAVIOUR_DATASETS)
    group.add_argument("--tower_units", type=model_flags.layer_sizes, default="256,128,64",
                       help="layers of each tower; the last is the user/item vector size")
    group.add_argument("--similarity", choices=("cosine", "dot"), default="cosine",
                       help="score of a user vector and an item vector")
    group.add_argument("--cosine_scale", type=model_flags.positive_float, default=5.0,
                       help="initial value of the learned scale of the cosine")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then runs the job (`modelzoo.common.script.main`)."""
    return script.main(make_parser, "modelzoo.dssm.model:DSSM", argv)


if __name__ == "__main__":
    main()
