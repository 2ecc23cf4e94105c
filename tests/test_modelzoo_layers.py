"""The building blocks of the model zoo's models, checked against numpy and by construction."""

import doctest
import importlib

import numpy as np
import pytest

from modelzoo.common.flags import parse_args
from modelzoo.common.tfapi import tf
from modelzoo.data import datasets

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:UserWarning")


@pytest.mark.parametrize("name", ["modelzoo.common.model_flags", "modelzoo.common.behaviour",
                                  "modelzoo.deepfm.model", "modelzoo.dlrm.model"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def _run(fetches, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feed)


def test_fm_second_order_is_the_sum_of_pairwise_dots():
    from modelzoo.deepfm.model import fm_second_order

    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    expected = [sum(x[b, i] @ x[b, j] for i in range(6) for j in range(i)) for b in range(4)]
    np.testing.assert_allclose(_run(fm_second_order(tf.constant(x))), expected, rtol=1e-5,
                               atol=1e-5)


def test_pairwise_dots_lower_triangle():
    from modelzoo.dlrm.model import pairwise_dots

    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype(np.float32)
    out = _run(pairwise_dots(tf.constant(x)))
    expected = [[x[b, i] @ x[b, j] for i in range(5) for j in range(i)] for b in range(3)]
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [0, 2])
def test_cross_network_matches_the_formula(rank):
    from modelzoo.dcnv2.model import cross_network

    x0 = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    with tf.variable_scope("cross"):
        out = cross_network(tf.constant(x0), num_layers=2, rank=rank, seed=3)
    variables = {v.op.name: v for v in tf.global_variables()}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got, values = sess.run([out, variables])
    x = x0
    for layer in range(2):
        if rank:
            mixed = (x @ values[f"cross/cross_{layer}_v/kernel"]
                     @ values[f"cross/cross_{layer}_u/kernel"])
            assert values[f"cross/cross_{layer}_v/kernel"].shape == (6, rank)
            mixed = mixed + values[f"cross/cross_{layer}_u/bias"]
        else:
            assert values[f"cross/cross_{layer}/kernel"].shape == (6, 6)
            mixed = x @ values[f"cross/cross_{layer}/kernel"] + values[f"cross/cross_{layer}/bias"]
        x = x0 * mixed + x
    np.testing.assert_allclose(got, x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("softmax", [False, True])
def test_attention_pooling_ignores_padding(softmax):
    from modelzoo.din.model import attention_pooling

    rng = np.random.default_rng(4)
    target = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
    history = tf.placeholder(tf.float32, [3, 5, 4])
    mask = tf.constant([[True, True, True, False, False], [False] * 5, [True] * 5])
    out = attention_pooling(target, history, mask, (8,), "prelu", softmax, seed=1)
    values = rng.normal(size=(3, 5, 4)).astype(np.float32)
    changed = values.copy()
    changed[0, 3:] = 100.0  # padding of row 0
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = sess.run(out, {history: values})
        second = sess.run(out, {history: changed})
        same = sess.run(out, {history: np.broadcast_to(values[:, :1], values.shape)})
    np.testing.assert_allclose(first, second, rtol=1e-5)
    np.testing.assert_array_equal(first[1], np.zeros(4, np.float32))  # no history
    assert np.abs(first[0]).sum() > 0
    if softmax:  # normalized weights: identical behaviours pool to that behaviour
        np.testing.assert_allclose(same[[0, 2]], values[[0, 2], 0], rtol=1e-4, atol=1e-5)


def test_mixture_of_experts_gives_each_task_its_own_gate():
    from modelzoo.mmoe.model import mixture_of_experts

    net = tf.constant(np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32))
    mixtures = mixture_of_experts(net, 3, (5,), ("click", "buy"), training=True, seed=2)
    names = sorted(v.op.name for v in tf.trainable_variables())
    assert [n for n in names if n.startswith("gate_")] == [
        "gate_buy/bias", "gate_buy/kernel", "gate_click/bias", "gate_click/kernel"]
    assert len([n for n in names if n.startswith("expert_")]) == 6
    out = _run(mixtures)
    assert out["click"].shape == out["buy"].shape == (4, 5)
    assert not np.allclose(out["click"], out["buy"])


@pytest.fixture(scope="module")
def taobao_meta(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("taobao"))
    return datasets.prepare("taobao", path, work_dir=path, train_rows=500, test_rows=100,
                            vocab_scale=0.01)[1]


@pytest.mark.parametrize("ev", ["true", "false"])
def test_behaviour_inputs_share_one_table(taobao_meta, ev):
    from modelzoo.common.behaviour import BehaviourInputs
    from modelzoo.din import train

    args = parse_args(train.make_parser(), ["--ev", ev, "--embedding_dim", "4"])
    inputs = BehaviourInputs(taobao_meta, args)
    # Row 0: behaviours (items 11, 12), candidate 12; row 1: no history, candidate 11.
    ids = lambda values: tf.SparseTensor([[0, 0], [0, 1]], tf.constant(values, tf.int64),  # noqa: E731
                                         [2, 2])
    batch = {"price": tf.constant([10.0, 20.0]), "user_id": tf.constant([1, 2], tf.int64),
             "item_id": tf.constant([12, 11], tf.int64),
             "category_id": tf.constant([7, 8], tf.int64),
             "user_age": tf.constant([0, 1], tf.int64),
             "user_gender": tf.constant([0, 1], tf.int64),
             "hist_item_id": ids([11, 12]), "hist_category_id": ids([8, 7])}
    t = inputs(batch)
    out = _run({"target": t.target, "history": t.history, "mask": t.mask, "user": t.user,
                "item": t.item, "pooled": t.pooled_history()})
    assert out["history"].shape == (2, 2, 8) and out["target"].shape == (2, 8)
    np.testing.assert_array_equal(out["mask"], [[True, True], [False, False]])
    # Same ids, same vectors: the candidate's [item 12, category 7] is behaviour 1 of row 0.
    np.testing.assert_allclose(out["target"][0], out["history"][0, 1])
    np.testing.assert_allclose(out["target"][1], out["history"][0, 0])
    np.testing.assert_array_equal(out["history"][1], 0.0)
    np.testing.assert_allclose(out["pooled"][0], out["history"][0].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(out["pooled"][1], 0.0)
    assert out["user"].shape == (2, 12)  # user_id, user_age, user_gender
    assert out["item"].shape == (2, 9)  # shared item and category vectors, price


def test_behaviour_models_need_a_history(tmp_path):
    from modelzoo.din import train
    from modelzoo.din.model import DIN

    path = str(tmp_path / "criteo")
    meta = datasets.prepare("criteo", path, work_dir=path, train_rows=100, test_rows=100,
                            vocab_scale=0.001)[1]
    args = parse_args(train.make_parser(), [])
    with pytest.raises(ValueError, match="'criteo' has no behaviour sequence"):
        DIN(args, meta)


def test_mmoe_needs_two_labels(tmp_path):
    from modelzoo.mmoe import train
    from modelzoo.mmoe.model import MMoE

    path = str(tmp_path / "criteo")
    meta = datasets.prepare("criteo", path, work_dir=path, train_rows=100, test_rows=100,
                            vocab_scale=0.001)[1]
    with pytest.raises(ValueError, match="one label"):
        MMoE(parse_args(train.make_parser(), []), meta)
