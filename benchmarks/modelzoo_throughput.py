"""Model-zoo training throughput: deeprec EVs (+ fused lookups) vs stock TF hash buckets.

Trains model zoo models (`--models`, default WDL and DLRM) on the same
generated Criteo-like data with the same architecture, flags and seeds in
these configurations, each in its own subprocess:

  ev+fused   deeprec: EmbeddingVariable columns, fused lookups (--ev true --emb_fusion true)
  ev+group   deeprec: EmbeddingVariable columns, one group lookup of all embedding
             columns (--ev true --group_embedding localized)
  ev         deeprec: EmbeddingVariable columns, TF's unfused lookups (for attribution)
  stock      stock TensorFlow 2.15 (MODELZOO_STOCK_TF=1: deeprec is never imported),
             categorical_column_with_hash_bucket over tf.Variable tables of
             min(1M, 2 x vocabulary) rows (--ev false --emb_fusion false)

Each run trains --steps steps of --batch_size rows from the start (fresh
checkpoint directory), reads its training rows from the same Parquet files,
then evaluates AUC and log loss on the same test rows. Throughput is the
runner's samples/s after its warm-up steps (graph optimisation, first table
growth), input pipeline included. Configurations alternate within a round
and the order reverses each round; the fastest round of each is reported,
with the CPU that other processes used meanwhile (this machine is shared),
and so is each configuration's ratio to stock's run of the same round.
Samples per CPU-second of the training process (all its threads) is
reported beside samples/s: it moves less with other processes' load.

Run (the worktree's deeprec must be importable, e.g. PYTHONPATH=.):

    python benchmarks/modelzoo_throughput.py                    # WDL and DLRM
    python benchmarks/modelzoo_throughput.py --models dlrm --quick  # smoke run

Writes benchmarks/results/modelzoo_throughput.<model>.json (a quick run
writes modelzoo_throughput.<model>.partial.json) and prints a markdown table
per model; --docs also writes each as its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from publish import cpu_seconds, git_commit, publish

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# The model zoo models this benchmark can run: name -> module with main(argv).
MODELS = {"wdl": "modelzoo.wdl.train", "dlrm": "modelzoo.dlrm.train"}
CONFIGS = {
    "ev+fused": {"env": {}, "flags": ["--ev", "true", "--emb_fusion", "true"]},
    "ev+group": {"env": {}, "flags": ["--ev", "true", "--group_embedding", "localized"]},
    "ev": {"env": {}, "flags": ["--ev", "true", "--emb_fusion", "false"]},
    "stock": {"env": {"MODELZOO_STOCK_TF": "1"}, "flags": ["--ev", "false",
                                                           "--emb_fusion", "false"]},
}
GOAL_SPEEDUP, GOAL_AUC = 1.2, 0.005
# The configurations the goal is judged for: this project's fast paths.
GOAL_CONFIGS = ("ev+fused", "ev+group")

_CHILD = """
import json, sys
from importlib import import_module
report = import_module(sys.argv[1]).main(sys.argv[3:])
report["deeprec_imported"] = "deeprec" in sys.modules
with open(sys.argv[2], "w") as f:
    json.dump(report, f)
"""


def markers(model: str) -> tuple[str, str]:
    """The comments that delimit `model`'s generated section of docs/benchmarks.md."""
    return (f"<!-- modelzoo_throughput:{model}:begin -->",
            f"<!-- modelzoo_throughput:{model}:end -->")


def run_config(model: str, name: str, args, data_dir: str, work: str,
               round_index: int) -> dict:
    config = CONFIGS[name]
    out = os.path.join(work, f"{model}-{name}-{round_index}")
    report_path = os.path.join(work, f"{model}-{name}-{round_index}.json")
    argv = [MODELS[model], report_path, "--data_location", data_dir,
            "--output_dir", out, "--steps", str(args.steps), "--batch_size",
            str(args.batch_size), "--train_rows", str(args.train_rows), "--test_rows",
            str(args.test_rows), "--optimizer", args.optimizer, "--learning_rate",
            str(args.learning_rate), "--saved_model_path", "none", "--seed", "0",
            "--inter", str(args.threads), "--intra", str(args.threads),
            "--log_steps", str(max(args.steps // 4, 1))] + config["flags"] + args.extra
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MODELZOO_STOCK_TF", None)
    env.update(config["env"])
    busy0, total0 = cpu_seconds()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD] + argv, env=env, cwd=REPO,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    busy1, total1 = cpu_seconds()
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    other = max(0.0, (busy1 - busy0) - child_cpu) / max(total1 - total0, 1e-9)
    with open(report_path) as f:
        report = json.load(f)
    # Only the report is needed; a run's checkpoint can take a gigabyte.
    shutil.rmtree(out, ignore_errors=True)
    eval_metrics = report["eval"]["label"]
    return {"config": name, "round": round_index, "wall_seconds": wall,
            "samples_per_sec": report["train"]["samples_per_sec"],
            "samples_per_cpu_sec": report["train"]["samples_per_cpu_sec"],
            "train_seconds": report["train"]["seconds"],
            "loss_start": report["train"]["loss_start"],
            "loss_end": report["train"]["loss_end"],
            "auc": eval_metrics["auc"], "logloss": eval_metrics["logloss"],
            "ceiling_auc": eval_metrics["ceiling_auc"], "other_cpu": other,
            "deeprec_imported": report["deeprec_imported"], "backend": report["backend"]}


def summarize(runs: list[dict]) -> dict:
    best = {}
    for run in runs:
        if run["config"] not in best or run["samples_per_sec"] > \
                best[run["config"]]["samples_per_sec"]:
            best[run["config"]] = run
    summary = {"best": best}
    if "stock" in best:
        base = best["stock"]
        summary["speedup"] = {k: v["samples_per_sec"] / base["samples_per_sec"]
                              for k, v in best.items()}
        summary["cpu_speedup"] = {
            k: max(r["samples_per_cpu_sec"] for r in runs if r["config"] == k)
            / max(r["samples_per_cpu_sec"] for r in runs if r["config"] == "stock")
            for k in best}
        summary["auc_diff"] = {k: v["auc"] - base["auc"] for k, v in best.items()}
        # Each configuration against stock's run of the same round, which ran
        # minutes apart at most: steadier than the best rounds when the
        # machine's speed drifts during the benchmark.
        stock_by_round = {r["round"]: r["samples_per_sec"] for r in runs
                          if r["config"] == "stock"}
        summary["round_speedups"] = {
            k: [r["samples_per_sec"] / stock_by_round[r["round"]] for r in runs
                if r["config"] == k and r["round"] in stock_by_round]
            for k in best}
        summary["goal_met"] = {
            name: bool(summary["speedup"][name] >= GOAL_SPEEDUP
                       and abs(summary["auc_diff"][name]) <= GOAL_AUC)
            for name in GOAL_CONFIGS if name in best}
    return summary


def render(report: dict) -> str:
    a = report["args"]
    s = report["summary"]
    model = report["model"]
    begin, end = markers(model)
    wide = " (the wide part: Adagrad)" if model == "wdl" else ""
    lines = [
        begin,
        f"## Model zoo training throughput, {model.upper()} "
        "(`benchmarks/modelzoo_throughput.py`)",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}",
        f"- Software: {report['software']}",
        f"- Command: `{report['command']}`",
        f"- Workload: {model} with its default architecture, {a['steps']} steps of "
        f"batch {a['batch_size']} from scratch ({a['steps'] * a['batch_size']:,} of "
        f"{a['train_rows']:,} generated Criteo-like training rows, Parquet, one pass), "
        f"optimizer {a['optimizer']} at {a['learning_rate']}{wide}, "
        f"{a['threads']} inter/intra-op threads; AUC on {a['test_rows']:,} test rows; "
        f"{a['rounds']} alternating rounds, fastest kept; wall time "
        f"{report['wall_seconds']:.0f} s.",
        "",
        "| config | tables | samples/s | vs stock | samples/CPU-s (its best round) | vs stock | "
        "AUC | AUC - stock | logloss | loss first/last 10% | other-CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tables = {"ev+fused": "EV, fused lookups", "ev+group": "EV, group lookup",
              "ev": "EV, unfused lookups",
              "stock": "stock TF 2.15 hash bucket tf.Variable"}

    def ratio(key, name):
        return f"{s[key][name]:.2f}x" if key in s else "n/a"

    for name, run in s["best"].items():
        cpu = max(r["samples_per_cpu_sec"] for r in report["runs"] if r["config"] == name)
        diff = f"{s['auc_diff'][name]:+.4f}" if "auc_diff" in s else "n/a"
        lines.append(
            f"| {name} | {tables[name]} | {run['samples_per_sec']:,.0f} | "
            f"{ratio('speedup', name)} | "
            f"{cpu:,.0f} | {ratio('cpu_speedup', name)} | {run['auc']:.4f} | {diff} | "
            f"{run['logloss']:.4f} | {run['loss_start']:.4f} / {run['loss_end']:.4f} | "
            f"{run['other_cpu']:.0%} |")
    lines.append("")
    lines.append("All rounds (samples/s): " + "; ".join(
        f"{r['config']} round {r['round']}: {r['samples_per_sec']:,.0f} "
        f"({r['samples_per_cpu_sec']:,.0f}/CPU-s, other-CPU {r['other_cpu']:.0%})"
        for r in report["runs"]) + ".")
    if "round_speedups" in s:
        lines += ["", "Against stock's run of the same round: " + "; ".join(
            f"{name} {', '.join(f'{x:.2f}' for x in ratios)} (median "
            f"{statistics.median(ratios):.2f}x)"
            for name, ratios in s["round_speedups"].items() if name != "stock") + "."]
    for name, met in s.get("goal_met", {}).items():
        # Three decimals: at two, a ratio of 1.1975 would read "1.20x -> not met".
        lines += ["", f"Goal ({name} >= {GOAL_SPEEDUP}x stock samples/s at |AUC - stock| "
                  f"<= {GOAL_AUC}): {s['speedup'][name]:.3f}x, AUC "
                  f"{s['auc_diff'][name]:+.4f} -> **{'met' if met else 'not met'}**"]
    lines.append(end)
    return "\n".join(lines) + "\n"


def _software() -> str:
    versions = subprocess.run(
        [sys.executable, "-c", "import tensorflow as t, numpy as n, pyarrow as p; "
         "print(t.__version__, n.__version__, p.__version__)"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    ).stdout.split()
    tf_v, np_v, pa_v = (versions + ["?"] * 3)[:3]
    return (f"Python {platform.python_version()}, tensorflow-cpu {tf_v}, numpy {np_v}, "
            f"pyarrow {pa_v}, deeprec at {git_commit(('deeprec', 'csrc', 'modelzoo'))}")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 2**20
        cpu += f", {os.cpu_count()} cores, {mem:.1f} GiB RAM"
    except (OSError, StopIteration):
        cpu += f", {os.cpu_count()} cores"
    return f"{cpu}, {platform.system()} {platform.release()}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="wdl,dlrm",
                        help=f"comma-separated, from {sorted(MODELS)}")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--train_rows", type=int, default=1_048_576)
    parser.add_argument("--test_rows", type=int, default=100_000)
    parser.add_argument("--optimizer", default="adagrad")
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--data_dir", default=None,
                        help="generated data (default: a fresh temporary directory)")
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run; writes the .partial.json only")
    parser.add_argument("--docs", action="store_true",
                        help="also write the table to docs/benchmarks.md")
    parser.add_argument("extra", nargs="*", help="more flags for the model's train.py "
                        "(after --), applied to every configuration")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.train_rows, args.test_rows, args.rounds = 60, 40_000, 10_000, 1
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown --configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - set(MODELS)
    if unknown or not models:
        parser.error(f"bad --models {args.models!r}; choose from {sorted(MODELS)}")
    for flag in ("steps", "batch_size", "train_rows", "test_rows", "threads", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    # Generated data and the runs' checkpoints, gigabytes: removed at the end.
    with tempfile.TemporaryDirectory(prefix="modelzoo_throughput_") as work:
        data_dir = args.data_dir or os.path.join(work, "data")
        return {model: run_model(model, args, configs, data_dir, work) for model in models}


def run_model(model: str, args, configs: list[str], data_dir: str, work: str) -> dict:
    """Runs every round of `configs` for `model`; writes and returns its report."""
    begin = time.perf_counter()
    runs = []
    for round_index in range(args.rounds):
        order = configs if round_index % 2 == 0 else configs[::-1]
        for name in order:
            run = run_config(model, name, args, data_dir, work, round_index)
            print(f"{model} round {round_index} {name}: {run['samples_per_sec']:,.0f} "
                  f"samples/s, AUC {run['auc']:.4f}, other-CPU {run['other_cpu']:.0%}",
                  flush=True)
            runs.append(run)
    for run in runs:
        expected = run["config"] != "stock"
        if run["deeprec_imported"] != expected:
            raise RuntimeError(f"{run['config']}: deeprec imported = "
                               f"{run['deeprec_imported']}, expected {expected}")
    shown = {k: v for k, v in vars(args).items()
             if k not in ("quick", "docs", "extra", "models")}
    shown = {"models": model, **shown}
    report = {
        "model": model,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(), "software": _software(),
        "command": "python benchmarks/modelzoo_throughput.py " + " ".join(
            f"--{k} {v}" for k, v in shown.items() if k != "data_dir" and v is not None)
        + (" -- " + " ".join(args.extra) if args.extra else ""),
        "args": vars(args), "runs": runs, "summary": summarize(runs),
        "wall_seconds": time.perf_counter() - begin,
    }
    publish(f"modelzoo_throughput.{model}", report, render(report), args.quick, args.docs,
            *markers(model))
    return report


if __name__ == "__main__":
    main()
