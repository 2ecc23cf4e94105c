"""Serving a model zoo WDL SavedModel: the processor's `process` vs a Python TF session.

The model: Wide & Deep from modelzoo/wdl/train.py (EmbeddingVariable
columns, fused lookups), trained --train-steps steps on generated Criteo-like
data and exported as the model zoo exports it. Requests: --batch rows of the
test split each, --requests distinct ones used in turn.

Variants, all in this one process, on the same SavedModel and requests:

  processor/N  libserving_processor.so with session_num = N (for each N in
               --session-nums), use_per_session_threads, each session's
               inter = intra op pools of --threads threads; callers call
               `process` with the serialized request through ctypes (which
               releases the GIL) and get the serialized response
  python       the SavedModel loaded by tf.saved_model.loader into one
               tf.Session (inter = intra = --threads), callers call
               sess.run with a feed dict of numpy arrays

For each number of concurrent callers in --callers, every variant runs
--seconds seconds after --warmup requests per caller, the variants in
rotating order per round (--rounds rounds; this machine may be shared).
Reported per variant and caller count: requests/s over the round, p50 and
p99 latency of the requests (all rounds), and the other processes' share of
the CPUs.

How to run (the worktree's deeprec must be importable, e.g. PYTHONPATH=.):

    python benchmarks/serving_processor.py            # full run
    python benchmarks/serving_processor.py --quick    # smoke run, seconds

Writes benchmarks/results/serving_processor.json (a quick run writes
serving_processor.partial.json) and prints a markdown table; --docs also
writes it as a section of docs/benchmarks.md.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np
from publish import OtherCpu, git_commit, publish

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
BEGIN, END = "<!-- serving_processor:begin -->", "<!-- serving_processor:end -->"


def export_model(args, root):
    """(SavedModel path, [features dict of --batch rows] x --requests)."""
    from modelzoo.data import files
    from modelzoo.wdl import train as wdl_train

    data = os.path.join(root, "data")
    report = wdl_train.main([
        "--train_rows", str(args.train_rows), "--test_rows", str(args.batch * args.requests),
        "--vocab_scale", str(args.vocab_scale), "--steps", str(args.train_steps), "--no_eval",
        "--data_location", data, "--output_dir", os.path.join(root, "out")])
    meta = files.read_meta(data)
    columns = files.read_columns(files.split_files(data, "test", meta), meta["schema"])
    batches = [{name: columns[name][i * args.batch:(i + 1) * args.batch]
                for name in meta["schema"].features} for i in range(args.requests)]
    return report["saved_model"], batches


def _array(value):
    from deeprec.serving import predict_pb2

    proto = predict_pb2.ArrayProto(array_shape=predict_pb2.ArrayShape(dim=value.shape))
    if value.dtype == np.float32:
        proto.dtype = predict_pb2.DT_FLOAT
        proto.float_val.extend(value.reshape(-1))
    else:
        proto.dtype = predict_pb2.DT_INT64
        proto.int64_val.extend(value.reshape(-1))
    return proto


class ProcessorVariant:
    """process() of one initialized processor."""

    def __init__(self, library, export_dir, batches, session_num, threads):
        from deeprec.serving import predict_pb2

        self.lib = library
        config = {"savedmodel_dir": export_dir, "session_num": session_num,
                  "use_per_session_threads": True, "inter_op_parallelism_threads": threads,
                  "intra_op_parallelism_threads": threads}
        state = ctypes.c_int(-1)
        self.model = library.initialize(b"", json.dumps(config).encode(), ctypes.byref(state))
        if state.value != 0:
            raise RuntimeError(f"initialize failed for {config} (see stderr)")
        self.requests = []
        for batch in batches:
            request = predict_pb2.PredictRequest()
            for name, value in batch.items():
                request.inputs[name].CopyFrom(_array(value))
            self.requests.append(request.SerializeToString())

    def __call__(self, i):
        data = self.requests[i % len(self.requests)]
        out, size = ctypes.c_void_p(), ctypes.c_int()
        status = self.lib.process(self.model, data, len(data), ctypes.byref(out),
                                  ctypes.byref(size))
        self.lib.free_output_data(out)
        if status != 200:
            raise RuntimeError(f"process returned {status}")


class PythonVariant:
    """sess.run of the SavedModel in one Python session."""

    def __init__(self, export_dir, batches, threads):
        import deeprec as tf

        graph = tf.Graph()
        config = tf.ConfigProto(inter_op_parallelism_threads=threads,
                                intra_op_parallelism_threads=threads)
        self.sess = tf.Session(graph=graph, config=config)
        with graph.as_default():
            meta = tf.saved_model.loader.load(self.sess, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        self.fetches = {k: v.name for k, v in signature.outputs.items()}
        self.feeds = [{signature.inputs[k].name: v for k, v in batch.items()}
                      for batch in batches]

    def __call__(self, i):
        self.sess.run(self.fetches, self.feeds[i % len(self.feeds)])


def measure(variant, callers, seconds, warmup):
    """(requests/s, latencies in ms, other processes' CPU share) of one round."""
    latencies, errors = [[] for _ in range(callers)], []
    start = threading.Barrier(callers + 1)
    stop = threading.Event()

    def caller(k):
        try:
            for i in range(warmup):
                variant(k + i)
            start.wait()
            i = k
            while not stop.is_set():
                t0 = time.perf_counter()
                variant(i)
                latencies[k].append(time.perf_counter() - t0)
                i += callers
        except Exception as e:  # Reported after the round.
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    with OtherCpu() as other:
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    flat = [x * 1e3 for lat in latencies for x in lat]
    return len(flat) / other.seconds, flat, other.share


def run(args, export_dir, batches):
    from deeprec.serving import processor_library

    library = ctypes.CDLL(processor_library())
    library.initialize.restype = ctypes.c_void_p
    library.process.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)]
    library.free_output_data.argtypes = [ctypes.c_void_p]
    variants = {"python": PythonVariant(export_dir, batches, args.threads)}
    for n in args.session_nums:
        variants[f"processor/{n}"] = ProcessorVariant(library, export_dir, batches, n,
                                                      args.threads)
    results = []
    for callers in args.callers:
        stats = {name: {"rps": [], "lat": [], "other": []} for name in variants}
        names = list(variants)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                rps, lat, other = measure(variants[name], callers, args.seconds, args.warmup)
                stats[name]["rps"].append(rps)
                stats[name]["lat"].extend(lat)
                stats[name]["other"].append(other)
        base = float(np.median(stats["python"]["rps"]))
        for name, s in stats.items():
            rps = float(np.median(s["rps"]))
            results.append({
                "callers": callers, "variant": name, "requests_per_s": rps,
                "vs_python": rps / base, "p50_ms": float(np.percentile(s["lat"], 50)),
                "p99_ms": float(np.percentile(s["lat"], 99)),
                "other_cpu": [min(s["other"]), max(s["other"])]})
            print(f"callers {callers:3d} {name:12s} {rps:8.1f} req/s  "
                  f"p50 {results[-1]['p50_ms']:7.2f} ms  p99 {results[-1]['p99_ms']:7.2f} ms",
                  flush=True)
    return results


def render(report):
    a = report["args"]
    other = [x for r in report["results"] for x in r["other_cpu"]]
    lines = [
        BEGIN,
        "## Serving processor vs a Python session, WDL (`benchmarks/serving_processor.py`)",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}",
        f"- Software: Python {platform.python_version()}, deeprec at {report['commit']}",
        f"- Command: `{report['command']}`",
        f"- Model: model zoo WDL (EV columns, fused lookups) after {a['train_steps']} training "
        f"steps; requests of {a['batch']} rows, {a['requests']} distinct ones in turn. "
        f"processor/N: session_num N, use_per_session_threads, inter = intra = "
        f"{a['threads']} threads per session; python: one tf.Session, inter = intra = "
        f"{a['threads']}. Callers are Python threads ({a['rounds']} rounds of "
        f"{a['seconds']} s per variant, variants in rotating order).",
        f"- Load: other processes used {min(other) * 100:.0f}-{max(other) * 100:.0f}% of the "
        "CPUs during the rounds.",
        "",
        "| callers | variant | requests/s | vs python | p50 ms | p99 ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['callers']} | {r['variant']} | {r['requests_per_s']:.1f} | "
                     f"{r['vs_python']:.2f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", default="1,8,32")
    parser.add_argument("--session-nums", default="1,2,4")
    parser.add_argument("--threads", type=int, default=2,
                        help="inter and intra op threads per session")
    parser.add_argument("--batch", type=int, default=256, help="rows per request")
    parser.add_argument("--requests", type=int, default=16, help="distinct requests")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="requests per caller")
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--vocab-scale", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run; writes the .partial.json only")
    parser.add_argument("--docs", action="store_true",
                        help="also write the table to docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.callers, args.session_nums, args.seconds, args.rounds = "1,4", "1,2", 0.5, 1
        args.train_rows, args.train_steps, args.vocab_scale = 5000, 10, 0.001
        args.batch, args.requests = 64, 4
    command = "python benchmarks/serving_processor.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if k not in ("quick", "docs"))
    args.callers = [int(x) for x in args.callers.split(",")]
    args.session_nums = [int(x) for x in args.session_nums.split(",")]
    with tempfile.TemporaryDirectory() as root:
        export_dir, batches = export_model(args, root)
        report = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"{platform.system()} {platform.release()}",
            "commit": git_commit(), "command": command, "args": vars(args),
        }
        report["results"] = run(args, export_dir, batches)
    publish("serving_processor", report, render(report), args.quick, args.docs, BEGIN, END)


if __name__ == "__main__":
    main()
