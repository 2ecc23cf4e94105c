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
