"""EmbeddingVariableStatsHook writes per-EV scalars readable by TensorBoard."""

import glob

import pytest

import deeprec as tf


def _scalars(directory):
    values = {}
    for path in glob.glob(f"{directory}/events.out.tfevents.*"):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                values[(event.step, value.tag)] = value.simple_value
    return values


def test_hook_reports_total_admitted_filtered_and_evicted(tmp_path):
    ids = tf.placeholder(tf.int64, [None])
    ev = tf.get_embedding_variable(
        "ev", 2, ev_option=tf.EmbeddingVariableOption(
            filter_option=tf.CounterFilter(filter_freq=2),
            evict_option=tf.GlobalStepEvict(steps_to_live=0)))
    step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdagradOptimizer(0.1).minimize(
        tf.reduce_sum(tf.nn.embedding_lookup(ev, ids)), global_step=step)
    hook = tf.train.EmbeddingVariableStatsHook(str(tmp_path), every_n_steps=1)
    with tf.train.MonitoredTrainingSession(
            checkpoint_dir=str(tmp_path), hooks=[hook], save_checkpoint_steps=2,
            save_summaries_steps=None, log_step_count_steps=None) as sess:
        sess.run(train_op, {ids: [1, 1, 2]})  # 1 admitted, updated at step 0; 2 waits
        sess.run(train_op, {ids: [3, 3, 1]})  # 3 admitted; 1 and 3 updated at step 1
        sess.run(train_op, {ids: [4]})  # after the save at step 2; 4 waits
    scalars = _scalars(tmp_path)
    assert scalars[(1, "ev/admitted_keys")] == 1
    assert scalars[(1, "ev/filtered_keys")] == 1
    assert scalars[(1, "ev/total_keys")] == 2
    # MonitoredTrainingSession's saver hook runs first: the step-2 figures are
    # after the save, which evicted ids 1 and 3 (last updated at step 1, more
    # than 0 steps before step 2). Waiting ids are never evicted.
    assert scalars[(2, "ev/evicted_keys_last_save")] == 2
    assert scalars[(2, "ev/admitted_keys")] == 0
    assert scalars[(2, "ev/filtered_keys")] == 1
    assert scalars[(3, "ev/filtered_keys")] == 2
    assert scalars[(3, "ev/total_keys")] == 2
    assert not [tag for _, tag in scalars if "Adagrad" in tag]


def test_hook_rejects_bad_period():
    with pytest.raises(ValueError, match="every_n_steps"):
        tf.train.EmbeddingVariableStatsHook("/tmp/unused", every_n_steps=0)


def test_hook_works_with_estimator(tmp_path):
    def model_fn(features, labels, mode):
        ev = tf.get_embedding_variable(
            "est_ev", 2, ev_option=tf.EmbeddingVariableOption(
                filter_option=tf.CounterFilter(filter_freq=2)))
        loss = tf.reduce_sum(tf.nn.embedding_lookup(ev, features["ids"]))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(
            loss, global_step=tf.train.get_global_step())
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    batches = [[5, 5, 6], [6, 7, 8]]

    def input_fn():
        ids = tf.data.Dataset.from_tensor_slices(tf.constant(batches, tf.int64))
        return ids.map(lambda x: ({"ids": x}, tf.constant(0)))

    hook = tf.train.EmbeddingVariableStatsHook(str(tmp_path / "stats"), every_n_steps=1)
    config = tf.estimator.RunConfig(model_dir=str(tmp_path / "model"),
                                    save_summary_steps=None, log_step_count_steps=None)
    tf.estimator.Estimator(model_fn, config=config).train(input_fn, hooks=[hook])
    scalars = _scalars(tmp_path / "stats")
    # After step 1 (ids 5, 5, 6): 5 admitted, 6 waits. After step 2 (6, 7, 8):
    # 6 admitted, 7 and 8 wait.
    assert scalars[(1, "est_ev/admitted_keys")] == 1
    assert scalars[(1, "est_ev/filtered_keys")] == 1
    assert scalars[(2, "est_ev/admitted_keys")] == 2
    assert scalars[(2, "est_ev/filtered_keys")] == 2
    assert scalars[(2, "est_ev/total_keys")] == 4
    # Estimator's own stock Saver wrote the EV, its admitted ids only.
    keys = tf.train.load_variable(str(tmp_path / "model"), "est_ev-keys")
    assert sorted(keys.tolist()) == [5, 6]
