"""deeprec-model-server under load: gRPC and REST, 1/8/32 clients, SessionGroup 1 vs 2, batching.

Exports a small model zoo Wide & Deep (EmbeddingVariable columns) once, then
for each server configuration

  s1        --session_num_per_group=1
  s2        --session_num_per_group=2 --use_per_session_threads
  s1+batch  s1 with --enable_batching
  s2+batch  s2 with --enable_batching

starts the server in its own process and drives it over loopback with
closed-loop clients (each sends its next request when the previous answer
arrives): the official gRPC client (one channel) and HTTP/1.1 keep-alive
REST connections (one per client), at each concurrency. Every request
carries `--rows_per_request` test rows (64 distinct requests, cycled).
Reported: requests/s, p50 and p99 latency, errors, and the server's CPU
seconds per 1000 requests (steadier than req/s on a shared machine). The
clients run in this process, on the same cores as the server.

    PYTHONPATH=. python benchmarks/model_server.py              # full: 10 s per point
    PYTHONPATH=. python benchmarks/model_server.py --quick      # 2 s per point

Writes benchmarks/results/model_server.json (model_server.partial.json for
--quick) and prints a markdown table; --docs writes it into docs/benchmarks.md
between the model_server markers.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from publish import git_commit, publish

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BEGIN, END = "<!-- model_server:begin -->", "<!-- model_server:end -->"
CONFIGS = {
    "s1": [],
    "s2": ["--session_num_per_group=2", "--use_per_session_threads=true"],
    "s1+batch": ["--enable_batching=true"],
    "s2+batch": ["--session_num_per_group=2", "--use_per_session_threads=true",
                 "--enable_batching=true"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _export(work: str, rows: int) -> tuple[str, str]:
    """Trains a small WDL (model zoo) and exports it; returns (base path, data dir)."""
    data, out = os.path.join(work, "data"), os.path.join(work, "wdl")
    subprocess.run([sys.executable, os.path.join(REPO, "modelzoo", "wdl", "train.py"),
                    "--train_rows", str(max(rows, 20000)), "--test_rows", "10000",
                    "--vocab_scale", "0.01", "--steps", "100", "--batch_size", "256",
                    "--no_eval", "--data_location", data, "--output_dir", out],
                   check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=REPO))
    return os.path.join(out, "saved_model"), data


def _requests(data: str, rows_per_request: int, count: int):
    """`count` distinct (PredictRequest, REST body) pairs of test rows."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from modelzoo.data import files

    meta = files.read_meta(data)
    columns = files.read_columns(files.split_files(data, "test", meta)[:1], meta["schema"])
    pairs = []
    for i in range(count):
        start = (i * rows_per_request) % (files.num_rows(columns) - rows_per_request)
        feed = {name: columns[name][start:start + rows_per_request]
                for name in meta["schema"].features}
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "wdl"
        for name, value in feed.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        body = json.dumps({"inputs": {k: v.tolist() for k, v in feed.items()}}).encode()
        pairs.append((request, body))
    return pairs


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Server:
    def __init__(self, base: str, flags: list[str], batching_file: str, threads: int) -> None:
        self.rest_port = _free_port()
        command = [sys.executable, "-m", "deeprec.serving.model_server", "--host=127.0.0.1",
                   "--port=0", f"--rest_api_port={self.rest_port}", "--model_name=wdl",
                   f"--model_base_path={base}", "--file_system_poll_wait_seconds=0",
                   f"--tensorflow_inter_op_parallelism={threads}",
                   f"--tensorflow_intra_op_parallelism={threads}"] + flags
        if "--enable_batching=true" in flags:
            command.append(f"--batching_parameters_file={batching_file}")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"))
        line = self.process.stdout.readline()
        if "grpc_port=" not in line:
            self.process.kill()
            raise RuntimeError(f"server did not start: {' '.join(command)}")
        self.grpc_port = int(line.split("grpc_port=")[1].split()[0])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)
        self.process.stdout.close()


def _drive(server: _Server, protocol: str, clients: int, pairs, seconds: float,
           warmup: float) -> dict:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    measuring, stop = threading.Event(), threading.Event()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    first_errors: list[str] = []

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        i = k
        while not stop.is_set():
            request, body = pairs[i % len(pairs)]
            i += clients
            start = time.perf_counter()
            try:
                if protocol == "grpc":
                    stub.Predict(request, timeout=60)
                else:
                    connection.request("POST", "/v1/models/wdl:predict", body,
                                       {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(response.status)
            except Exception as err:  # counted, and the client goes on
                if measuring.is_set():
                    errors[k] += 1
                    first_errors.append(repr(err))
                connection.close()  # a broken keep-alive connection is not reused
                continue
            if measuring.is_set():
                latencies[k].append(time.perf_counter() - start)
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    stop.wait(warmup)
    cpu0, t0 = _cpu_seconds(server.process.pid), time.perf_counter()
    measuring.set()
    stop.wait(seconds)
    measuring.clear()
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds(server.process.pid) - cpu0
    stop.set()
    for thread in threads:
        thread.join()
    channel.close()
    done = np.array([x for per in latencies for x in per])
    return {"protocol": protocol, "clients": clients, "requests": int(done.size),
            "errors": int(sum(errors)), "error_examples": sorted(set(first_errors))[:3],
            "req_per_sec": done.size / elapsed,
            "p50_ms": float(np.percentile(done, 50) * 1e3) if done.size else None,
            "p99_ms": float(np.percentile(done, 99) * 1e3) if done.size else None,
            "server_cpu_s_per_1k": cpu / max(done.size, 1) * 1e3}


def _software() -> str:
    import grpc
    import tensorflow as tf
    return (f"Python {platform.python_version()}, tensorflow-cpu {tf.__version__}, "
            f"grpcio {grpc.__version__}, tensorflow-serving-api 2.15.1, deeprec at "
            f"{git_commit()}")


def render(report: dict) -> str:
    a = report["args"]
    configs = list(CONFIGS)
    lines = [
        BEGIN,
        "## Model server under load (`benchmarks/model_server.py`)",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}",
        f"- Software: {report['software']}",
        f"- Command: `{report['command']}`",
        f"- Workload: model zoo WDL (EV columns) exported after 100 steps; Predict with "
        f"{a['rows_per_request']} test rows per request, closed-loop clients on loopback in "
        f"one process on the same cores as the server, {a['seconds']} s per point after "
        f"{a['warmup']} s warm-up; server threads {a['threads']} inter/intra-op per pool; "
        f"batching: {report['batching']}.",
        "- Configs: s1 = `--session_num_per_group=1`; s2 = `--session_num_per_group=2 "
        "--use_per_session_threads`; +batch = `--enable_batching`.",
        "",
        "| protocol | clients | " + " | ".join(
            f"{c} req/s | {c} p50 / p99 ms" for c in configs) + " |",
        "|---|---:|" + "---:|---:|" * len(configs),
    ]
    by_key = {(r["config"], r["protocol"], r["clients"]): r for r in report["runs"]}
    for protocol in ("grpc", "rest"):
        for clients in a["concurrency"]:
            cells = []
            for config in configs:
                r = by_key.get((config, protocol, clients))
                if r is None or r["p50_ms"] is None:
                    cells += ["n/a", "n/a"]
                    continue
                error = f" ({r['errors']} errors)" if r["errors"] else ""
                cells += [f"{r['req_per_sec']:,.0f}{error}",
                          f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}"]
            lines.append(f"| {protocol} | {clients} | " + " | ".join(cells) + " |")
    lines += ["", "Server CPU seconds per 1000 requests: " + "; ".join(
        f"{r['config']} {r['protocol']} x{r['clients']}: {r['server_cpu_s_per_1k']:.2f}"
        for r in report["runs"]) + ".", END]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", default="1,8,32", help="client counts")
    parser.add_argument("--rows_per_request", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2,
                        help="--tensorflow_inter/intra_op_parallelism of the server")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated subset of {list(CONFIGS)}")
    parser.add_argument("--quick", action="store_true", help="2 s per point, 0.5 s warm-up")
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md's section")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 2.0, 0.5
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS)}")

    batching = ("max_batch_size { value: 512 } batch_timeout_micros { value: 1000 } "
                "num_batch_threads { value: 2 } max_enqueued_batches { value: 1000 }")
    began = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory() as work:
        base, data = _export(work, 20000)
        pairs = _requests(data, args.rows_per_request, 64)
        batching_file = os.path.join(work, "batching.config")
        with open(batching_file, "w") as f:
            f.write(batching)
        for config in configs:
            server = _Server(base, CONFIGS[config], batching_file, args.threads)
            try:
                for protocol in ("grpc", "rest"):
                    for clients in args.concurrency:
                        result = _drive(server, protocol, clients, pairs, args.seconds,
                                        args.warmup)
                        result["config"] = config
                        runs.append(result)
                        print(f"{config:9} {protocol:4} x{clients:<3} "
                              f"{result['req_per_sec']:8.0f} req/s  p50 {result['p50_ms']:.1f} "
                              f"ms  p99 {result['p99_ms']:.1f} ms  errors {result['errors']}",
                              flush=True)
            finally:
                server.stop()
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"Linux {platform.release()}",
        "software": _software(),
        "command": "python benchmarks/model_server.py " + " ".join(argv or sys.argv[1:]),
        "args": vars(args),
        "batching": batching,
        "runs": runs,
        "wall_seconds": time.perf_counter() - began,
    }
    publish("model_server", report, render(report), args.quick, args.docs, BEGIN, END)
    return report


if __name__ == "__main__":
    main()
