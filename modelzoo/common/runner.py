"""A model's whole job: data, training, evaluation, export, report.

`train.py` scripts call `run(ModelClass, parser, argv)`. It prepares the
data set, trains with `MonitoredTrainingSession`, evaluates the final
checkpoint on the test split (unless `--no_eval`), exports a SavedModel
(unless `--saved_model_path none`), prints a report and writes it to
`<output_dir>/metrics.json`.
"""

from __future__ import annotations

import json
import os
import platform
import time

from modelzoo.common import evaluation, export, training
from modelzoo.common.flags import parse_args
from modelzoo.common.tfapi import STOCK, tf
from modelzoo.data import datasets


def _print(*parts) -> None:
    print(*parts, flush=True)


def _describe_data(meta: dict) -> str:
    schema = meta["schema"]
    train, test = meta["splits"]["train"], meta["splits"].get("test")
    text = (f"data: {meta['name']} ({meta['format']}), {train['rows']:,} train / "
            f"{test['rows'] if test else 0:,} test rows; {len(schema.dense)} dense, "
            f"{len(schema.categorical)} categorical, {len(schema.sequence)} sequence features")
    ceilings = (test or {}).get("ceiling_auc") or {}
    if any(v is not None for v in ceilings.values()):
        text += "; hidden-model AUC on test " + ", ".join(
            f"{k} {v:.4f}" for k, v in ceilings.items() if v is not None)
    return text


def run(model_class, parser, argv=None) -> dict:
    """Runs the job described in the module docstring; returns the report dict."""
    args = parse_args(parser, argv)
    os.makedirs(args.output_dir, exist_ok=True)
    begin = time.perf_counter()
    data_dir, meta = datasets.prepare(
        args.dataset, args.data_location, work_dir=os.path.join(args.output_dir, "data"),
        train_rows=args.train_rows, test_rows=args.test_rows, fmt=args.data_format,
        seed=args.data_seed, vocab_scale=args.vocab_scale)
    data_seconds = time.perf_counter() - begin
    _print(_describe_data(meta) + f" [{data_seconds:.1f} s]")

    model = model_class(args, meta)
    checkpoint_dir = args.checkpoint or os.path.join(
        args.output_dir, f"model_{model.name}_{time.strftime('%Y%m%d-%H%M%S')}")
    backend = "stock TensorFlow" if STOCK else "deeprec"
    tables = "EmbeddingVariable" if args.ev else "hash-bucket tf.Variable"
    _print(f"model: {model.name} on {backend}, {tables} embeddings"
           f"{', fused lookups' if args.emb_fusion else ''}, optimizer {args.optimizer}, "
           f"batch {args.batch_size}; checkpoints in {checkpoint_dir}")

    result = training.train(model, args, meta, data_dir, checkpoint_dir)
    checkpoint = tf.train.latest_checkpoint(checkpoint_dir)
    rate = result["samples_per_sec"]
    _print(f"trained {result['steps']} steps ({result['samples']:,} samples) in "
           f"{result['seconds']:.1f} s" + (f", {rate:,.0f} samples/s" if rate else "") +
           (f"; loss {result['loss_start']:.4f} -> {result['loss_end']:.4f}"
            if result["losses"] else ""))

    report = {"model": model.name, "backend": backend, "ev": args.ev,
              "emb_fusion": args.emb_fusion, "optimizer": args.optimizer,
              "batch_size": args.batch_size, "dataset": meta["name"], "data_dir": data_dir,
              "checkpoint": checkpoint, "train": {k: v for k, v in result.items()
                                                  if k != "losses"},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    if not args.no_eval:
        report["eval"] = evaluation.evaluate(model, args, meta, data_dir, checkpoint)
        for name, m in report["eval"].items():
            line = f"eval {name}: AUC {m['auc']:.4f}, logloss {m['logloss']:.4f} " \
                   f"({m['rows']:,} test rows)"
            if m["ceiling_auc"] is not None:
                line += (f"; hidden-model ceiling AUC {m['ceiling_auc']:.4f} "
                         f"(gap {m['ceiling_auc'] - m['auc']:.4f}), "
                         f"logloss {m['ceiling_logloss']:.4f}")
            _print(line)
    if args.saved_model_path:
        report["saved_model"] = export.export_saved_model(model, args, checkpoint,
                                                          args.saved_model_path)
        _print(f"SavedModel: {report['saved_model']}")
    _print(f"checkpoint: {checkpoint}")
    _print(f"TensorBoard: tensorboard --logdir {checkpoint_dir}")
    report["seconds"] = time.perf_counter() - begin
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    return report
