"""Serve an exported model zoo SavedModel and ask it for predictions, as a client would.

The last step of `make demo`: starts `deeprec-model-server` on the newest
version under `--model_base_path`, sends the first `--rows` rows of the data
set's test split with TensorFlow Serving's official gRPC client
(`tensorflow-serving-api`), prints the answers next to the labels, checks the
REST API gives the same, and stops the server.

    python tools/serve_demo.py --model_base_path result/demo/saved_model \\
        --data_location data/criteo
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_rows(data_location: str, rows: int) -> tuple[dict, dict]:
    """(features, labels) of the first `rows` test rows; sequences padded with -1."""
    import numpy as np

    from modelzoo.data import files

    meta = files.read_meta(data_location)
    schema = meta["schema"]
    columns = files.slice_rows(
        files.read_columns(files.split_files(data_location, "test", meta)[:1], schema), 0, rows)
    features = {}
    for name in schema.features:
        value = columns[name]
        if name in schema.sequence:
            lists = value.to_lists()
            padded = np.full((rows, max(1, max(len(r) for r in lists))), -1, np.int64)
            for i, ids in enumerate(lists):
                padded[i, :len(ids)] = ids
            value = padded
        features[name] = value
    return features, {name: columns[name] for name in schema.labels}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", default="result/demo/saved_model",
                        help="directory of numbered SavedModel versions")
    parser.add_argument("--data_location", default="data/criteo",
                        help="model zoo data set whose test rows are sent")
    parser.add_argument("--model_name", default="wdl")
    parser.add_argument("--rows", type=int, default=5, help="rows in the request")
    parser.add_argument("--log", default=None,
                        help="server log file (default <model_base_path>/../model_server.log)")
    args = parser.parse_args(argv)
    log_path = args.log or os.path.join(os.path.dirname(os.path.abspath(args.model_base_path)),
                                        "model_server.log")

    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    features, labels = _test_rows(args.data_location, args.rows)
    rest_port = _free_port()
    command = [sys.executable, "-m", "deeprec.serving.model_server", "--host=127.0.0.1",
               "--port=0", f"--rest_api_port={rest_port}", f"--model_name={args.model_name}",
               f"--model_base_path={args.model_base_path}", "--session_num_per_group=2",
               "--use_per_session_threads=true"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                                  env=env)
    try:
        ready = server.stdout.readline()  # printed once the model is loaded
        if "grpc_port=" not in ready:
            server.wait()
            with open(log_path) as log:
                print(log.read()[-3000:], file=sys.stderr)
            print(f"serve_demo: the server did not start (exit {server.returncode})",
                  file=sys.stderr)
            return 1
        grpc_port = int(ready.split("grpc_port=")[1].split()[0])
        print(f"deeprec-model-server: gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}, "
              f"SessionGroup of 2 (log: {log_path})")

        request = predict_pb2.PredictRequest()
        request.model_spec.name = args.model_name
        for name, value in features.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=60)
        outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        print(f"Predict over gRPC (tensorflow-serving-api client): model "
              f"{response.model_spec.name!r} version {response.model_spec.version.value}, "
              f"{args.rows} test rows")
        prob_names = sorted(k for k in outputs if k.endswith("probability"))
        header = "  row  " + "  ".join(f"{n:>12}" for n in labels) + "  " + "  ".join(
            f"{n:>24}" for n in prob_names)
        print(header)
        for i in range(args.rows):
            print(f"  {i:>3}  " + "  ".join(f"{labels[n][i]:>12.0f}" for n in labels) + "  " +
                  "  ".join(f"{outputs[n][i]:>24.6f}" for n in prob_names))

        body = json.dumps({"inputs": {k: v.tolist() for k, v in features.items()}}).encode()
        url = f"http://127.0.0.1:{rest_port}/v1/models/{args.model_name}:predict"
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as r:
            rest = json.load(r)["outputs"]
        diff = max(float(np.max(np.abs(np.asarray(rest[n]) - outputs[n]))) for n in prob_names)
        print(f"REST :predict answers the same (max |difference| {diff:.1e})")
        return 0 if diff < 1e-5 else 1
    finally:
        server.terminate()
        server.wait(timeout=120)
        server.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
