"""The `main` of every model's `train.py`: check the flags, then run the job.

The job (`modelzoo.common.runner.run`): prepare the data set (built-in
data is generated on first use), train with MonitoredTrainingSession
(progress, TensorBoard summaries, checkpoints), evaluate the checkpoint's
AUC and log loss per label on the test split (unless `--no_eval`) and
export a SavedModel (unless `--saved_model_path none`). No TensorFlow
import at module level, so bad flags fail fast.
"""

from __future__ import annotations

import importlib

from modelzoo.common import flags


def main(make_parser, model_class: str, argv=None) -> dict:
    """Parses `argv` with `make_parser()`, then trains, evaluates and exports the model.

    Args:
      make_parser: The script's parser factory (shared flags plus the model's).
      model_class: "module:Class" of the `Model` subclass, imported only after
        the flags are checked (importing it imports TensorFlow).
      argv: Command-line arguments (default `sys.argv[1:]`).

    Returns:
      The report of `modelzoo.common.runner.run`.
    """
    parser = make_parser()
    flags.parse_args(parser, argv)  # bad flags fail before TensorFlow is imported
    module, name = model_class.split(":")
    cls = getattr(importlib.import_module(module), name)
    from modelzoo.common import runner

    return runner.run(cls, parser, argv)
