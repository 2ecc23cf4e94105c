"""Quickstart: train a click model on raw, unbounded ids with an EmbeddingVariable.

Ids are drawn from a Zipf distribution over a billion possible values, so no
vocabulary is sized or hashed: the EmbeddingVariable grows as ids arrive.
Labels come from a hidden per-id score, so the loss can fall well below the
0.693 of a constant guess. The run trains with MonitoredTrainingSession,
checkpoints, and reads the saved table back with tf.train.load_variable.

Run: python examples/ev_quickstart.py [--steps 2000] [--output_dir DIR]
"""

import argparse
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import deeprec as tf

tf.logging.set_verbosity(tf.logging.ERROR)

ID_SPACE = 10**9


def hidden_score(ids: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random score in [-2, 2] per id (the model to recover)."""
    mixed = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return (mixed % np.uint64(4001)).astype(np.float64) / 1000.0 - 2.0


def make_batch(rng: np.random.Generator, batch_size: int, ids_per_example: int):
    ranks = rng.zipf(1.2, size=(batch_size, ids_per_example))
    ids = (ranks * 7919) % ID_SPACE  # spread popular ids over the id space
    logits = hidden_score(ids).sum(axis=1)
    labels = (rng.random(batch_size) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return ids.astype(np.int64), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--output_dir", default=None,
                        help="checkpoint directory (default: a new temporary one)")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="deeprec_quickstart_")

    ids = tf.placeholder(tf.int64, [None, 4], name="ids")
    labels = tf.placeholder(tf.float32, [None], name="labels")
    emb = tf.get_embedding_variable(
        "id_embedding", embedding_dim=8,
        initializer=tf.truncated_normal_initializer(stddev=0.01),
        partitioner=tf.fixed_size_partitioner(num_shards=2))
    vectors = tf.nn.embedding_lookup(emb, ids)                  # [batch, 4, 8]
    weights = tf.get_variable("weights", [8], initializer=tf.ones_initializer())
    logits = tf.reduce_sum(vectors * weights, axis=[1, 2])
    loss = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    global_step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdagradOptimizer(0.1).minimize(loss, global_step=global_step)
    table_size = tf.add_n([part.total_count()[0] for part in emb])

    rng = np.random.default_rng(0)
    start = time.time()
    with tf.train.MonitoredTrainingSession(checkpoint_dir=output_dir,
                                           save_checkpoint_steps=args.steps,
                                           save_summaries_steps=None,
                                           log_step_count_steps=None) as sess:
        for step in range(1, args.steps + 1):
            batch_ids, batch_labels = make_batch(rng, args.batch_size, 4)
            value, _ = sess.run([loss, train_op], {ids: batch_ids, labels: batch_labels})
            if step % 250 == 0 or step == 1:
                print(f"step {step:5d}  loss {value:.4f}  "
                      f"table size {sess.run(table_size):7d} ids")
    elapsed = time.time() - start
    print(f"trained {args.steps} steps in {elapsed:.1f}s "
          f"({args.steps * args.batch_size / elapsed:.0f} examples/s)")

    checkpoint = tf.train.latest_checkpoint(output_dir)
    saved = sum(len(tf.train.load_variable(checkpoint, f"id_embedding/part_{i}-keys"))
                for i in range(2))
    print(f"checkpoint {checkpoint}: {saved} ids saved under DeepRec's tensor names "
          f"(id_embedding/part_0-keys, -values, -freqs, -versions, ...)")


if __name__ == "__main__":
    main()
