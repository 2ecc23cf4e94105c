"""Script: train DCN-V2 as `modelzoo/dcnv2/model.py` defines it, e.g.

    python modelzoo/dcnv2/train.py --steps 2000 --output_dir /tmp/dcnv2
    python modelzoo/dcnv2/train.py --structure stacked --cross_rank 64 --optimizer adamasync

Data, training, evaluation and export: `modelzoo.common.script`. Flags: `--help`.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from modelzoo.common import model_flags, script


def make_parser():
    """The shared flags, the cross network's and the DNN's."""
    parser, group = model_flags.make_parser(
        "dcnv2", "DCN-V2 on EmbeddingVariable feature columns", model_flags.FIELD_DATASETS)
    group.add_argument("--cross_layers", type=model_flags.positive_int, default=3,
                       help="cross layers")
    group.add_argument("--cross_rank", type=model_flags.non_negative_int, default=0,
                       help="0: full-rank d x d cross matrices; r > 0: low-rank U V^T, "
                            "d x r each")
    group.add_argument("--structure", choices=("parallel", "stacked"), default="parallel",
                       help="DNN beside the cross network (parallel) or on top of it")
    model_flags.add_dnn_flags(group, "512,256,128")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then runs the job (`modelzoo.common.script.main`)."""
    return script.main(make_parser, "modelzoo.dcnv2.model:DCNv2", argv)


if __name__ == "__main__":
    main()
