"""EmbeddingVariables under concurrent session.run calls and inter-op threads."""

import threading

import numpy as np

import deeprec as tf

THREADS, STEPS, BATCH = 4, 40, 256


def test_concurrent_training_steps_count_every_lookup():
    ids = tf.placeholder(tf.int64, [None])
    ev = tf.get_embedding_variable("ev", 8, partitioner=tf.fixed_size_partitioner(2))
    emb = tf.nn.embedding_lookup(ev, ids)
    train_op = tf.train.AdagradOptimizer(0.05).minimize(tf.reduce_sum(emb * emb))
    counts = tf.concat([part.get_frequency(ids) for part in ev], 0)
    batches = [np.random.RandomState(seed).zipf(1.3, BATCH) % 5000
               for seed in range(THREADS * STEPS)]
    config = tf.ConfigProto(inter_op_parallelism_threads=2,
                            intra_op_parallelism_threads=2)
    errors = []
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())

        def work(worker):
            try:
                for step in range(STEPS):
                    sess.run(train_op, {ids: batches[worker * STEPS + step]})
            except Exception as e:  # surfaced below: a thread must not fail silently
                errors.append(e)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        all_ids = np.concatenate(batches)
        unique, expected = np.unique(all_ids, return_counts=True)
        # Each id lives in exactly one shard; the other shard reports 0.
        got = sess.run(counts, {ids: unique}).reshape(2, -1).sum(axis=0)
        np.testing.assert_array_equal(got, expected)
        sizes = [sess.run(p.total_count())[0] for p in ev]
        assert sum(sizes) == len(unique)
        _, values, _, _ = sess.run(ev[0].export())
        assert np.all(np.isfinite(values))
