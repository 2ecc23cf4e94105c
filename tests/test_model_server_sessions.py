"""Model server: SessionGroup, batching, platform/batching config files and the command line."""

import os
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
from model_server_client import Served, predict_request
from model_server_models import batch, export_model, reference_predict, reference_predictor
from tensorflow_serving.apis import prediction_service_pb2_grpc

from deeprec.serving.model_server import config
from deeprec.serving.model_server.batching import Batcher
from deeprec.serving.model_server.errors import ServingError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models") / "wdl")
    return base, export_model(base, 1, seed=1)


def _concurrent_predictions(served, feeds, threads=8):
    """Each feed predicted once, from `threads` threads at once; {index: logit}."""
    results, errors = {}, []

    def work(indices):
        for i in indices:
            try:
                results[i] = served.predict("wdl", feeds[i])[0]["logit"]
            except Exception as err:  # re-raised below
                errors.append(err)

    workers = [threading.Thread(target=work, args=(range(k, len(feeds), threads),))
               for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors[0]
    return results


def test_session_group_shares_one_model_and_answers_the_same(model):
    base, path = model
    feeds = [batch(1 + i % 5, seed=i) for i in range(32)]
    predict = reference_predictor(path)
    expected = [predict(f)["logit"] for f in feeds]
    with Served(model_name="wdl", model_base_path=base, session_num_per_group=3,
                use_per_session_threads=True, tensorflow_inter_op_parallelism=2,
                tensorflow_intra_op_parallelism=1) as served:
        with served.server.manager.servable("wdl") as servable:
            group = servable.group
            # One session (one copy of every EV) with a thread pool per member.
            assert group.size == 3
            assert len(group.session._config.session_inter_op_thread_pool) == 3
        results = _concurrent_predictions(served, feeds)
    for i, logit in results.items():
        np.testing.assert_allclose(logit, expected[i], atol=1e-6)


def test_batching_gives_the_same_answers(model, tmp_path):
    base, path = model
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 16 } batch_timeout_micros { value: 20000 }\n"
                      "num_batch_threads { value: 2 } max_enqueued_batches { value: 100 }\n")
    feeds = [batch(1 + i % 3, seed=i) for i in range(48)]
    predict = reference_predictor(path)
    expected = [predict(f)["logit"] for f in feeds]
    with Served(model_name="wdl", model_base_path=base, enable_batching=True,
                batching_parameters_file=str(params)) as served:
        results = _concurrent_predictions(served, feeds, threads=12)
        _, text = served.rest("/monitoring/prometheus/metrics")
    for i, logit in results.items():
        np.testing.assert_allclose(logit, expected[i], atol=1e-6)
    count = [line for line in text.splitlines()
             if line.startswith('deeprec_serving_batch_size_count{model="wdl"}')]
    rows = [line for line in text.splitlines()
            if line.startswith('deeprec_serving_batch_size_sum{model="wdl"}')]
    batches, total_rows = float(count[0].split()[-1]), float(rows[0].split()[-1])
    assert total_rows == sum(len(f["user"]) for f in feeds)
    assert batches < len(feeds)  # requests were merged


def test_batcher_queue_limit_and_stop():
    started, release = threading.Event(), threading.Event()

    def slow(feeds, fetches):
        started.set()
        release.wait()
        return [feeds["x"]]

    params = config.BatchingParameters(max_batch_size=1, batch_timeout_micros=0,
                                       num_batch_threads=1, max_enqueued_batches=1)
    batcher = Batcher(params, slow)
    results = []

    def call(value):
        results.append(batcher.run({"x": np.full(1, value)}, ["y"])[0][0])

    callers = [threading.Thread(target=call, args=(1.0,))]
    callers[0].start()
    assert started.wait(30)  # the only worker is busy with the first batch
    callers.append(threading.Thread(target=call, args=(2.0,)))
    callers[1].start()
    waited = threading.Event()
    while batcher.queued_batches < 1:  # the second request waits in the queue
        assert not waited.wait(0.01) and callers[1].is_alive()
    with pytest.raises(ServingError, match="max_enqueued_batches") as err:
        batcher.run({"x": np.zeros(1)}, ["y"])
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    release.set()
    for caller in callers:
        caller.join()
    batcher.stop()
    assert sorted(results) == [1.0, 2.0]
    with pytest.raises(ServingError, match="unloading"):
        batcher.run({"x": np.ones(1)}, ["y"])


def test_batching_parameters_file_errors():
    assert config.parse_batching_parameters("max_batch_size: 4").max_batch_size == 4
    with pytest.raises(config.ConfigError, match="unsupported field 'allowed_batch_sizes'"):
        config.parse_batching_parameters("allowed_batch_sizes: 4")
    with pytest.raises(config.ConfigError, match="num_batch_threads must be an integer >= 1"):
        config.parse_batching_parameters("num_batch_threads { value: 0 }")


PLATFORM_CONFIG = """
platform_configs {
  key: "tensorflow"
  value {
    source_adapter_config {
      [type.googleapis.com/tensorflow.serving.SavedModelBundleV2SourceAdapterConfig] {
        legacy_config {
          model_session_config {
            session_config {
              intra_op_parallelism_threads: 1
              inter_op_parallelism_threads: 2
              use_per_session_threads: true
              use_per_session_stream: true
            }
            session_num: 2
          }
          model_session_config {
            session_config { inter_op_parallelism_threads: 1 }
            session_num: 1
          }
        }
      }
    }
  }
}
"""


def test_platform_config_gives_each_model_its_sessions(model, tmp_path):
    base, path = model
    (tmp_path / "platform.config").write_text(PLATFORM_CONFIG)
    (tmp_path / "models.config").write_text(f"""
        model_config_list:{{
          config:{{ name:"second", base_path:"{base}", model_platform:"tensorflow", model_id: 1 }},
          config:{{ name:"wdl", base_path:"{base}", model_platform:"tensorflow", model_id: 0 }},
        }}""")
    with Served(model_config_file=str(tmp_path / "models.config"),
                platform_config_file=str(tmp_path / "platform.config")) as served:
        with served.server.manager.servable("wdl") as servable:
            assert servable.group.size == 2
            assert servable.group.session._config.inter_op_parallelism_threads == 2
        with served.server.manager.servable("second") as servable:
            assert servable.group.size == 1
        feed = batch(3, seed=2)
        for name in ("wdl", "second"):
            np.testing.assert_allclose(served.predict(name, feed)[0]["logit"],
                                       reference_predict(path, feed)["logit"], atol=1e-6)

    with pytest.raises(config.ConfigError, match="unsupported field 'cpusets'"):
        config.parse_platform_config(PLATFORM_CONFIG.replace("session_num: 2",
                                                             'session_num: 2 cpusets: "1;2"'))
    with pytest.raises(config.ConfigError, match=r"model 'x' \(model_id 5\)"):
        config.apply_platform_config([config.ModelConfig("x", "/x", model_id=5)],
                                     config.parse_platform_config(PLATFORM_CONFIG))


def test_command_line_serves_until_terminated(model):
    base, path = model
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [sys.executable, "-m", "deeprec.serving.model_server", "--port=0", "--host=127.0.0.1",
         "--model_name=wdl", f"--model_base_path={base}", "--session_num_per_group=2",
         "--use_per_session_threads=true"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert "grpc_port=" in line, line
        port = int(line.split("grpc_port=")[1].split()[0])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            feed = batch(2, seed=1)
            response = stub.Predict(predict_request("wdl", feed), timeout=30)
            assert response.model_spec.version.value == 1
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
        process.stdout.close()


def test_command_line_rejects_bad_flags(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = [sys.executable, "-m", "deeprec.serving.model_server"]
    bad_flag = subprocess.run(run + ["--no_such_flag=1"], capture_output=True, text=True,
                              env=env)
    assert bad_flag.returncode == 2 and "--no_such_flag" in bad_flag.stderr
    no_model = subprocess.run(run + ["--port=0"], capture_output=True, text=True, env=env)
    assert no_model.returncode == 1 and "--model_base_path" in no_model.stderr
