"""Deep Interest Network (`modelzoo/din/model.py`) trained on behaviour sequences.

    python modelzoo/din/train.py --steps 2000 --output_dir /tmp/din
    python modelzoo/din/train.py --dataset movielens --data_location ml-latest-small

Taobao-like data (its `click` label) by default, or MovieLens; see
`modelzoo.common.script` for the job and `--help` for the flags.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from modelzoo.common import flags, model_flags, script


def make_parser():
    """The shared flags, the attention unit's and the DNN's."""
    parser, group = model_flags.make_parser(
        "din", "DIN on EmbeddingVariable feature columns", model_flags.BEHAVIOUR_DATASETS)
    group.add_argument("--attention_units", type=model_flags.layer_sizes, default="80,40",
                       help="hidden layers of the local activation unit")
    group.add_argument("--attention_softmax", type=flags.boolean_string, nargs="?",
                       const=True, default=False, metavar="BOOL",
                       help="normalize attention weights over each history (default False, "
                            "as in the paper)")
    group.add_argument("--activation", choices=("prelu", "relu"), default="prelu",
                       help="activation of hidden layers")
    model_flags.add_dnn_flags(group, "200,80")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then runs the job (`modelzoo.common.script.main`)."""
    return script.main(make_parser, "modelzoo.din.model:DIN", argv)


if __name__ == "__main__":
    main()
