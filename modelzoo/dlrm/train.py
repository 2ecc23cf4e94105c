"""DLRM training, DeepRec modelzoo style (the model is in `modelzoo/dlrm/model.py`).

    python modelzoo/dlrm/train.py --steps 2000 --bottom_mlp 512,256,64 --top_mlp 512,256
    python modelzoo/dlrm/train.py --ev_filter counter --ev_evict gstep

By default it reads the built-in Criteo-like data; `modelzoo.common.script`
runs the job, and `--help` shows every flag with its default.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from modelzoo.common import model_flags, script


def make_parser():
    """The shared flags and DLRM's two MLPs."""
    parser, group = model_flags.make_parser(
        "dlrm", "DLRM on EmbeddingVariable feature columns", model_flags.FIELD_DATASETS)
    group.add_argument("--bottom_mlp", type=model_flags.layer_sizes, default="512,256,64",
                       help="hidden layers of the dense features' MLP (a last layer of "
                            "--embedding_dim units follows)")
    group.add_argument("--top_mlp", type=model_flags.layer_sizes, default="512,256",
                       help="hidden layers of the MLP over the interactions")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then runs the job (`modelzoo.common.script.main`)."""
    return script.main(make_parser, "modelzoo.dlrm.model:DLRM", argv)


if __name__ == "__main__":
    main()
