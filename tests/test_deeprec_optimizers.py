"""AdagradDecay, AdamAsync and AdamW against numpy references of §3.22-§3.24.

Every optimizer trains a ref variable, a resource variable (dense gradients
and IndexedSlices with repeated ids) and an EmbeddingVariable on the same
batches; each run must follow the numpy reference of the guide's formulas.
"""

import numpy as np
import pytest

import deeprec as tf

ROWS, DIM = 6, 3
RNG = np.random.RandomState(7)
INIT = RNG.uniform(-1, 1, (ROWS, DIM)).astype(np.float32)
# Six steps of ids (repeats included; row 3 skips steps 2-4, so it crosses
# two AdagradDecay periods between updates) with a coefficient per id.
IDS = [[0, 1, 1, 3], [2, 3, 0], [0, 0, 5], [1, 4, 4, 4], [2, 5], [3, 0, 1]]
COEFS = [RNG.normal(0, 1, (len(ids), DIM)).astype(np.float32) for ids in IDS]
# Small coefficients for row 5, so its decayed accumulator hits the floor.
for ids, coefs in zip(IDS, COEFS, strict=True):
    coefs[np.array(ids) == 5] *= 0.05
STEPS = len(IDS)
FULL = [RNG.normal(0, 1, (ROWS, DIM)).astype(np.float32) for _ in IDS]


def _sparse_grads(step):
    """{row: summed gradient} of loss = sum(coefs * emb) at `step`."""
    grads = {}
    for row, coef in zip(IDS[step], COEFS[step], strict=True):
        grads[row] = grads.get(row, 0) + coef.astype(np.float64)
    return grads


def _dense_grads(step):
    return {row: FULL[step][row].astype(np.float64) for row in range(ROWS)}


class AdagradDecayRef:
    def __init__(self, lr=0.3, init=0.1, period=2, rate=0.5):
        self.lr, self.init, self.period, self.rate = lr, init, period, rate
        self.acc = np.full((ROWS, DIM), init)
        self.power = np.zeros(ROWS, np.int64)
        self.floored = 0

    def step(self, var, grads, step, sparse):
        del sparse
        now = step // self.period
        for row, g in grads.items():
            if now > self.power[row]:
                decayed = self.acc[row] * self.rate ** (now - self.power[row])
                self.floored += int(np.any(decayed < self.init))
                self.acc[row] = np.maximum(decayed, self.init)
                self.power[row] = now
            self.acc[row] += g * g
            var[row] -= self.lr * g / np.sqrt(self.acc[row])


class AdamAsyncRef:
    def __init__(self, lr=0.1, beta1=0.8, beta2=0.9, eps=1e-3, rmsprop=False):
        self.lr, self.b1, self.b2, self.eps, self.rmsprop = lr, beta1, beta2, eps, rmsprop
        self.m = np.zeros((ROWS, DIM))
        self.v = np.zeros((ROWS, DIM))
        self.p1, self.p2 = beta1, beta2

    def step(self, var, grads, step, sparse):
        del step
        alpha = self.lr * np.sqrt(1 - self.p2) / (1 - self.p1)
        for row, g in grads.items():
            self.v[row] = self.v[row] * self.b2 + g * g * (1 - self.b2)
            if self.rmsprop and sparse:  # apply_sparse_rmsprop: sparse applies only
                self.m[row] = self.m[row] * self.b1 + self.lr * g / np.sqrt(self.v[row] + self.eps)
                var[row] -= self.m[row]
            else:
                self.m[row] = self.m[row] * self.b1 + g * (1 - self.b1)
                var[row] -= alpha * self.m[row] / (np.sqrt(self.v[row]) + self.eps)
        self.p1 *= self.b1
        self.p2 *= self.b2


class AdamWRef(AdamAsyncRef):
    def __init__(self, weight_decay=0.05, **kwargs):
        super().__init__(**kwargs)
        self.wd = weight_decay

    def step(self, var, grads, step, sparse):
        del step, sparse
        alpha = self.lr * np.sqrt(1 - self.p2) / (1 - self.p1)
        for row, g in grads.items():
            self.m[row] = self.m[row] * self.b1 + g * (1 - self.b1)
            self.v[row] = self.v[row] * self.b2 + g * g * (1 - self.b2)
            var[row] -= self.wd * var[row] + alpha * self.m[row] / (np.sqrt(self.v[row]) + self.eps)
        self.p1 *= self.b1
        self.p2 *= self.b2


OPTIMIZERS = {
    "adagrad_decay": (lambda gs: tf.train.AdagradDecayOptimizer(
        0.3, global_step=gs, initial_accumulator_value=0.1, accumulator_decay_step=2,
        accumulator_decay_rate=0.5), AdagradDecayRef),
    "adam_async": (lambda gs: tf.train.AdamAsyncOptimizer(
        0.1, beta1=0.8, beta2=0.9, epsilon=1e-3), AdamAsyncRef),
    "adam_async_rmsprop": (lambda gs: tf.train.AdamAsyncOptimizer(
        0.1, beta1=0.8, beta2=0.9, epsilon=1e-3, apply_sparse_rmsprop=True),
        lambda: AdamAsyncRef(rmsprop=True)),
    "adamw": (lambda gs: tf.train.AdamWOptimizer(
        weight_decay=0.05, learning_rate=0.1, beta1=0.8, beta2=0.9, epsilon=1e-3), AdamWRef),
}


def _reference(name, sparse, steps=STEPS):
    ref = OPTIMIZERS[name][1]()
    var = INIT.astype(np.float64)
    for step in range(steps):
        ref.step(var, _sparse_grads(step) if sparse else _dense_grads(step), step, sparse)
    return var, ref


def _variable(kind):
    if kind.startswith("ev"):
        return tf.get_embedding_variable(
            "var", DIM, initializer=INIT,
            partitioner=tf.fixed_size_partitioner(2) if kind == "ev_partitioned" else None,
            ev_option=tf.EmbeddingVariableOption(
                init_option=tf.InitializerOption(default_value_dim=ROWS)))
    return tf.get_variable("var", initializer=INIT, use_resource=kind == "resource")


def _train(name, kind, sparse, steps=STEPS, checkpoint=None, restore=None):
    """Trains `steps` steps from INIT (or `restore`); returns the [ROWS, DIM] table."""
    ids = tf.placeholder(tf.int64, [None])
    coefs = tf.placeholder(tf.float32, [None, DIM])
    var = _variable(kind)
    if sparse:
        loss = tf.reduce_sum(coefs * tf.nn.embedding_lookup(var, ids))
    else:
        loss = tf.reduce_sum(coefs * var)
    gs = tf.train.get_or_create_global_step()
    train_op = OPTIMIZERS[name][0](gs).minimize(loss, global_step=gs)
    if kind.startswith("ev"):
        table = tf.nn.embedding_lookup(var, tf.range(ROWS, dtype=tf.int64))
    else:
        table = var
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        if restore:
            saver.restore(sess, restore)
        start = sess.run(gs)
        for step in range(start, start + steps):
            feed = {ids: IDS[step], coefs: COEFS[step] if sparse else FULL[step]}
            sess.run(train_op, feed)
        if checkpoint:
            saver.save(sess, checkpoint)
        return sess.run(table)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kind, sparse", [("ref", False), ("resource", False),
                                          ("ref", True), ("resource", True), ("ev", True),
                                          ("ev_partitioned", True)])
def test_optimizer_matches_numpy_reference(name, kind, sparse):
    expected, _ = _reference(name, sparse)
    got = _train(name, kind, sparse)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_reference_run_crosses_decay_periods_and_the_floor():
    """The AdagradDecay cases above exercise both rules (so they can fail)."""
    decayed, ref = _reference("adagrad_decay", sparse=True)
    assert ref.floored > 0
    plain = AdagradDecayRef(rate=1.0)
    var = INIT.astype(np.float64)
    for step in range(STEPS):
        plain.step(var, _sparse_grads(step), step, True)
    assert np.abs(var - decayed).max() > 1e-3


def test_ev_and_dense_variable_agree_exactly_on_the_same_ids():
    for name in OPTIMIZERS:
        with tf.Graph().as_default():
            dense = _train(name, "resource", sparse=True)
        with tf.Graph().as_default():
            ev = _train(name, "ev", sparse=True)
        np.testing.assert_allclose(ev, dense, rtol=1e-6, atol=1e-6, err_msg=name)


SLOT_NAMES = {
    "adagrad_decay": ["var/AdagradDecay-keys", "var/AdagradDecay-values"],
    "adam_async": ["var/AdamAsync-values", "var/AdamAsync_1-values", "var/AdamAsync_2",
                   "var/AdamAsync_3"],
    "adamw": ["var/AdamW-values", "var/AdamW_1-values", "beta1_power", "beta2_power"],
}


@pytest.mark.parametrize("name", sorted(SLOT_NAMES))
@pytest.mark.parametrize("kind", ["ev", "resource"])
def test_slots_survive_a_checkpoint_round_trip(tmp_path, name, kind):
    prefix = str(tmp_path / "model")
    with tf.Graph().as_default():
        _train(name, kind, sparse=True, steps=3, checkpoint=prefix)
    if kind == "ev":
        saved = {n for n, _ in tf.train.list_variables(prefix)}
        assert set(SLOT_NAMES[name]) <= saved, sorted(saved)
    with tf.Graph().as_default():
        resumed = _train(name, kind, sparse=True, steps=3, restore=prefix)
    expected, _ = _reference(name, sparse=True)
    np.testing.assert_allclose(resumed, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make, argument", [
    (lambda: tf.train.AdagradDecayOptimizer(0.1, global_step=None), "global_step"),
    (lambda: tf.train.AdagradDecayOptimizer(-0.1, global_step=1), "learning_rate"),
    (lambda: tf.train.AdagradDecayOptimizer(0.1, 1, initial_accumulator_value=0.0),
     "initial_accumulator_value"),
    (lambda: tf.train.AdagradDecayOptimizer(0.1, 1, accumulator_decay_step=0),
     "accumulator_decay_step"),
    (lambda: tf.train.AdagradDecayOptimizer(0.1, 1, accumulator_decay_step=2.5),
     "accumulator_decay_step"),
    (lambda: tf.train.AdagradDecayOptimizer(0.1, 1, accumulator_decay_rate=0.0),
     "accumulator_decay_rate"),
    (lambda: tf.train.AdagradDecayOptimizer(0.1, 1, accumulator_decay_rate=1.5),
     "accumulator_decay_rate"),
    (lambda: tf.train.AdamAsyncOptimizer(-1.0), "learning_rate"),
    (lambda: tf.train.AdamAsyncOptimizer(beta1=1.0), "beta1"),
    (lambda: tf.train.AdamAsyncOptimizer(beta2=-0.1), "beta2"),
    (lambda: tf.train.AdamAsyncOptimizer(epsilon=-1e-8), "epsilon"),
    (lambda: tf.train.AdamWOptimizer(weight_decay=-0.01), "weight_decay"),
    (lambda: tf.train.AdamWOptimizer(0.01, learning_rate=-0.1), "learning_rate"),
    (lambda: tf.train.AdamWOptimizer(0.01, beta1=1.2), "beta1"),
    (lambda: tf.train.AdamWOptimizer(0.01, beta2=1.0), "beta2"),
    (lambda: tf.train.AdamWOptimizer(0.01, epsilon=-1.0), "epsilon"),
])
def test_invalid_hyperparameters_raise_value_error_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_sparse_kernel_rejects_out_of_range_indices():
    var = tf.get_variable("v", initializer=INIT, use_resource=True)
    gs = tf.train.get_or_create_global_step()
    opt = tf.train.AdagradDecayOptimizer(0.1, global_step=gs)
    train_op = opt.apply_gradients([(tf.IndexedSlices(
        tf.ones([1, DIM]), tf.constant([ROWS + 3], tf.int64), tf.constant([ROWS, DIM])), var)])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"ResourceSparseApplyAdagradDecay: indices\[0\] = 9"):
            sess.run(train_op)


def test_tensor_hyperparameters_are_checked_by_the_kernels():
    var = tf.get_embedding_variable("ev", DIM)
    rate = tf.placeholder(tf.float32, [])
    gs = tf.train.get_or_create_global_step()
    opt = tf.train.AdagradDecayOptimizer(0.1, global_step=gs, accumulator_decay_rate=rate)
    train_op = opt.minimize(tf.reduce_sum(tf.nn.embedding_lookup(var, [1, 2])))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {rate: 0.9})
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="KvResourceSparseApplyAdagradDecay: .*accum_decay_rate=2"):
            sess.run(train_op, {rate: 2.0})
