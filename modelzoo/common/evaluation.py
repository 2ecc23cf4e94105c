"""Evaluation of a checkpoint on the test split: exact AUC and log loss per label.

The model is rebuilt in a fresh graph with `training=False`, the checkpoint
restored by `tf.train.Saver` (deeprec's restores EmbeddingVariables), and
every test row predicted once; AUC and log loss are computed in numpy over
all predictions (no threshold buckets) and written as TensorBoard summaries
under `<checkpoint_dir>/eval`.
"""

from __future__ import annotations

import os

import numpy as np

from modelzoo.common.metrics import logloss, roc_auc
from modelzoo.common.tfapi import tf
from modelzoo.common.training import session_config
from modelzoo.data import files
from modelzoo.data.reader import make_dataset


def predict(model, args, meta, data_dir: str, checkpoint: str, split: str = "test"):
    """`({label: probabilities}, {label: labels})` over every row of `split`, in file order."""
    graph = tf.Graph()
    with graph.as_default():
        dataset = make_dataset(files.split_files(data_dir, split, meta), meta["schema"],
                               args.eval_batch_size, num_epochs=1, shuffle=False)
        features, labels = tf.data.make_one_shot_iterator(dataset).get_next()
        logits = model.logits(features, training=False)
        fetches = ({name: tf.sigmoid(logits[name]) for name in model.labels},
                   {name: labels[name] for name in model.labels})
        saver = tf.train.Saver()
        predictions = {name: [] for name in model.labels}
        truth = {name: [] for name in model.labels}
        with tf.Session(config=session_config(args)) as sess:
            saver.restore(sess, checkpoint)
            while True:
                try:
                    p, y = sess.run(fetches)
                except tf.errors.OutOfRangeError:
                    break
                for name in model.labels:
                    predictions[name].append(p[name])
                    truth[name].append(y[name])
    return ({k: np.concatenate(v) for k, v in predictions.items()},
            {k: np.concatenate(v) for k, v in truth.items()})


def evaluate(model, args, meta, data_dir: str, checkpoint: str) -> dict:
    """Metrics of `checkpoint` on the test split, with the hidden model's ceiling if known.

    Returns:
      `{label: {"auc", "logloss", "rows", "ceiling_auc", "ceiling_logloss"}}`.
    """
    probabilities, labels = predict(model, args, meta, data_dir, checkpoint)
    split = meta["splits"].get("test", {})
    results = {}
    for name in model.labels:
        results[name] = {
            "auc": roc_auc(labels[name], probabilities[name]),
            "logloss": logloss(labels[name], probabilities[name]),
            "rows": int(labels[name].size),
            "ceiling_auc": split.get("ceiling_auc", {}).get(name),
            "ceiling_logloss": split.get("ceiling_logloss", {}).get(name),
        }
    _write_summaries(results, checkpoint)
    return results


def _write_summaries(results: dict, checkpoint: str) -> None:
    step = int(tf.train.load_variable(checkpoint, "global_step"))
    values = []
    for name, metrics in results.items():
        prefix = "" if len(results) == 1 else f"{name}/"
        values += [tf.Summary.Value(tag=f"{prefix}auc", simple_value=metrics["auc"]),
                   tf.Summary.Value(tag=f"{prefix}logloss", simple_value=metrics["logloss"])]
    writer = tf.summary.FileWriter(os.path.join(os.path.dirname(checkpoint), "eval"))
    writer.add_summary(tf.Summary(value=values), step)
    writer.close()
