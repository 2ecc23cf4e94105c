"""DeepFM's training job (model: `modelzoo/deepfm/model.py`); `--help` lists the flags.

    python modelzoo/deepfm/train.py --steps 2000 --output_dir /tmp/deepfm
    python modelzoo/deepfm/train.py --ev false --emb_fusion false   # stock hash buckets

Criteo-like data unless `--dataset` says otherwise; the job itself (train,
evaluate, export) is described in `modelzoo.common.script`.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from modelzoo.common import model_flags, script


def make_parser():
    """The shared flags and DeepFM's DNN flags."""
    parser, group = model_flags.make_parser(
        "deepfm", "DeepFM on EmbeddingVariable feature columns", model_flags.FIELD_DATASETS)
    model_flags.add_dnn_flags(group, "400,400,400")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then runs the job (`modelzoo.common.script.main`)."""
    return script.main(make_parser, "modelzoo.deepfm.model:DeepFM", argv)


if __name__ == "__main__":
    main()
