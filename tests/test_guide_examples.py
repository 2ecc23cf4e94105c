"""The user guide's example scripts run under `import deeprec as tf`, with results checked.

Each script in examples/guide is the guide's listing with its imports
rewritten; it is executed with `print` captured, and the printed values are
compared with numpy references of the documented semantics.
"""

import os

import numpy as np
import pytest

import deeprec as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script):
    """Executes examples/guide/<script>; returns the objects it printed (one per call)."""
    printed = []
    path = os.path.join(ROOT, "examples", "guide", script)
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    exec(code, {"__name__": "__main__", "print": printed.append})  # noqa: S102
    return printed


def _adagrad(steps, grad, lr=0.1, accum=0.1, value=1.0):
    """Values of one element before each of `steps` Adagrad steps."""
    values = []
    for _ in range(steps):
        values.append(value)
        accum += grad * grad
        value -= lr * grad / np.sqrt(accum)
    return values


def _ftrl(steps, grad, lr=0.1, l1=2.0, l2=1e-5, value=1.0):
    """Values of one element before each of `steps` FTRL-Proximal steps."""
    values, accum, linear = [], 0.1, 0.0
    for _ in range(steps):
        values.append(value)
        new_accum = accum + grad * grad
        linear += grad - (np.sqrt(new_accum) - np.sqrt(accum)) / lr * value
        accum = new_accum
        value = 0.0 if abs(linear) <= l1 else (
            (np.sign(linear) * l1 - linear) / (np.sqrt(accum) / lr + 2 * l2))
    return values


@pytest.mark.parametrize("script", ["adam_async_optimizer.py", "adagrad_decay_optimizer.py",
                                    "adamw_optimizer.py"])
def test_guide_optimizer_script_trains(script):
    printed = _run(script)
    losses = [p[2] for p in printed]
    # loss = 2 * sum(emb) over 6 rows of 16 ones: 192 before the first step;
    # every optimizer moves the ones down under a positive gradient.
    assert losses[0] == 192.0
    assert losses[2] < losses[1] < losses[0]


def test_guide_adagrad_decay_script_matches_adagrad_within_one_period():
    # Decay step 100000: no decay in 3 steps, so it is Adagrad with grad 2.
    values = _adagrad(3, grad=2.0)
    for (emb, _, loss), value in zip(_run("adagrad_decay_optimizer.py"), values, strict=True):
        np.testing.assert_allclose(emb, np.full((6, 16), value), rtol=1e-6)
        np.testing.assert_allclose(loss, 2 * 96 * value, rtol=1e-6)


def test_guide_get_embedding_variable_script():
    printed = _run("ev_get_embedding_variable.py")
    for (emb, _, loss), value in zip(printed[:3], _adagrad(3, grad=2.0), strict=True):
        np.testing.assert_allclose(emb, np.full((6, 3), value), rtol=1e-6)
        np.testing.assert_allclose(loss, 36 * value, rtol=1e-6)
    # Ids 0,1,2,5,6,7 over 4 shards by id mod 4: {0}, {1,5}, {2,6}, {7}.
    counts = [list(c) for c in printed[3][0]]
    assert counts == [[1, 3], [2, 3], [2, 3], [1, 3]]


@pytest.mark.parametrize("script", ["ev_sparse_column_with_embedding.py",
                                    "fused_embedding_feature_column.py",
                                    "fused_embedding_contrib.py"])
def test_guide_embedding_column_script(script):
    import deeprec as tf
    printed = _run(script)
    fused = any(op.type == "FusedEmbeddingSparsePostLookUp"
                for op in tf.get_default_graph().get_operations())
    assert fused == script.startswith("fused")
    assert printed[0] == "init global done"
    # Each of the 5 rows holds one id: d loss / d value = 2 per element.
    for (emb, _, loss), value in zip(printed[1:], _ftrl(3, grad=2.0), strict=True):
        np.testing.assert_allclose(emb, np.full((5, 3), value), rtol=1e-5)
        np.testing.assert_allclose(loss, 30 * value, rtol=1e-5)


def test_guide_sequence_categorical_column_with_embedding_script():
    printed = _run("ev_sequence_categorical_column_with_embedding.py")
    assert printed[0] == "init global done"
    # Id 3 appears twice (gradient 4), ids 1, 2, 4, 5 once (gradient 2).
    once, twice = _ftrl(3, grad=2.0), _ftrl(3, grad=4.0)
    positions = {(0, 0): once, (0, 1): twice, (1, 1): once, (2, 2): twice, (3, 3): once,
                 (4, 4): once}
    for step, (emb, _, loss) in enumerate(printed[1:]):
        assert emb.shape == (5, 5, 3)
        expected = np.zeros((5, 5, 3))
        for (row, col), values in positions.items():
            expected[row, col] = values[step]
        np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(loss, 2 * expected.sum(), rtol=1e-5)


def test_guide_adaptive_embedding_script():
    # The script prints the first step's (emb, None, loss) as three arguments;
    # capture them as one tuple.
    printed = []
    path = os.path.join(ROOT, "examples", "guide", "adaptive_embedding.py")
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    exec(code, {"__name__": "__main__", "print": lambda *a: printed.append(a)})  # noqa: S102
    ((emb, top, loss),) = printed
    # Both tables start at ones; the first step reads them before updating.
    np.testing.assert_array_equal(emb, np.ones((10, 3), np.float32))
    assert top is None and loss == 60.0


def test_guide_group_embedding_feature_column_script():
    printed = _run("group_embedding_feature_column.py")
    assert printed[0] == "init global done"
    ((fun, train_op, loss),) = printed[1:]
    # Reference: each column's row is the mean of its ids' embeddings, all
    # 0.5 (constant initializer) before the step; input_layer concatenates the
    # columns by name (ad0: 20, ad1: 30, user0: 20) and fun doubles it.
    rows = [r for r, _ in [[0, 0], [0, 1], [1, 1], [2, 2], [3, 3], [4, 3], [4, 4]]]
    emb = np.zeros((5, 70))
    for row in set(rows):
        emb[row] = np.mean([0.5] * rows.count(row))
    np.testing.assert_allclose(fun, 2.0 * emb, rtol=1e-6)
    assert train_op is None
    np.testing.assert_allclose(loss, 2.0 * emb.sum(), rtol=1e-6)
    # Two scopes, two group lookups: nothing was looked up column by column.
    ops = tf.get_default_graph().get_operations()
    assert len([op for op in ops if op.type == "GroupEmbeddingSparsePostLookUp"]) == 2
    assert not [op for op in ops if op.type in ("KvResourceGather", "SparseFillEmptyRows")]
