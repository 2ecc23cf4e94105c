"""The user guide's optimizer example scripts run under `import deeprec as tf`."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script", ["adam_async_optimizer.py", "adagrad_decay_optimizer.py",
                                    "adamw_optimizer.py"])
def test_guide_optimizer_script_trains(script):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "guide", script)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    # Each line prints [emb, None, loss]; loss starts at 6 ids * 16 * 2.0 = 192.
    losses = [float(x) for x in re.findall(r"None, ([-+0-9.e]+)\]", out)]
    assert len(losses) == 3, out
    assert 0 < losses[2] < losses[1] < losses[0] <= 192.0, losses
