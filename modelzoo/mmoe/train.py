"""Multi-task MMoE (`modelzoo/mmoe/model.py`) on the Taobao-like `click` and `buy` labels.

    python modelzoo/mmoe/train.py --steps 2000 --output_dir /tmp/mmoe
    python modelzoo/mmoe/train.py --num_experts 8 --expert_units 128,64

Evaluation reports AUC and log loss per task; the SavedModel has
`click_probability`, `buy_probability` and their logits. Job:
`modelzoo.common.script`; flags: `--help`.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from modelzoo.common import model_flags, script


def make_parser():
    """The shared flags, the experts' and the towers'."""
    parser, group = model_flags.make_parser(
        "mmoe", "MMoE on EmbeddingVariable feature columns", ("taobao",))
    group.add_argument("--num_experts", type=model_flags.positive_int, default=4,
                       help="experts shared by the tasks")
    group.add_argument("--expert_units", type=model_flags.layer_sizes, default="256,128",
                       help="layers of each expert (ReLU); the last is the output size")
    group.add_argument("--tower_units", type=model_flags.layer_sizes, default="64",
                       help="hidden layers of each task's tower")
    return parser


def main(argv=None) -> dict:
    """Checks the flags, then runs the job (`modelzoo.common.script.main`)."""
    return script.main(make_parser, "modelzoo.mmoe.model:MMoE", argv)


if __name__ == "__main__":
    main()
