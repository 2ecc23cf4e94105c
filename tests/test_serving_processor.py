"""libserving_processor.so: the C API of user guide §3.38 on SavedModels with EVs.

Most tests call the library through ctypes in this process; one compiles a C
program that dlopens it, as a serving framework would.
"""

import ctypes
import json
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import serving_models as sm

import deeprec as tf
from deeprec.serving import predict_pb2, processor_library


class Processor:
    """The C API through ctypes: one initialized model."""

    lib = ctypes.CDLL(processor_library())
    lib.initialize.restype = ctypes.c_void_p
    lib.initialize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    lib.process.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                            ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)]
    lib.get_serving_model_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_int)]
    lib.free_output_data.argtypes = [ctypes.c_void_p]

    def __init__(self, **config):
        self.state = ctypes.c_int(7)
        self.handle = self.lib.initialize(b"", json.dumps(config).encode(),
                                          ctypes.byref(self.state))

    def _reply(self, call, *args):
        out, size = ctypes.c_void_p(), ctypes.c_int(-1)
        status = call(*args, ctypes.byref(out), ctypes.byref(size))
        data = ctypes.string_at(out, size.value)
        assert ctypes.string_at(out, size.value + 1)[-1] == 0  # NUL-terminated
        self.lib.free_output_data(out)
        return status, data

    def raw(self, data: bytes):
        """(status, output bytes) of process()."""
        return self._reply(self.lib.process, self.handle, data, len(data))

    def predict(self, req) -> dict:
        """{name: numpy array} of a request that must succeed."""
        status, data = self.raw(req.SerializeToString())
        assert status == 200, data.decode()
        response = predict_pb2.PredictResponse.FromString(data)
        return {name: sm.to_numpy(value) for name, value in response.outputs.items()}

    def error(self, req) -> str:
        """The message of a request that must fail."""
        status, data = self.raw(req if isinstance(req, bytes) else req.SerializeToString())
        assert status == 500
        return data.decode()

    def model_path(self) -> str:
        status, data = self._reply(self.lib.get_serving_model_info, self.handle)
        assert status == 200
        return predict_pb2.ServingModelInfo.FromString(data).model_path


def python_predict(export_dir, features, signature="serving_default"):
    """Predictions of the SavedModel loaded into a Python session."""
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], export_dir)
        sig = meta.signature_def[signature]
        return sess.run({k: v.name for k, v in sig.outputs.items()},
                        {sig.inputs[k].name: v for k, v in features.items()})


@pytest.fixture(scope="module")
def wdl(tmp_path_factory):
    paths, probe, at_10, at_20 = sm.export_wdl(str(tmp_path_factory.mktemp("wdl")))
    # Unseen users and items as well as seen ones.
    mixed = sm.wdl_features(np.random.default_rng(5), 40, user_range=200)
    mixed["item"][:5] = [b"never-seen"] * 5
    return {"paths": paths, "probe": probe, "at_10": at_10, "at_20": at_20, "mixed": mixed,
            "expected": python_predict(paths["savedmodel_dir"], mixed)}


@pytest.fixture(scope="module")
def served(wdl):
    return Processor(savedmodel_dir=wdl["paths"]["savedmodel_dir"])


@pytest.fixture(scope="module")
def lookups(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lookups") / "saved_model")
    return path, sm.export_lookups(path)


def test_predictions_equal_the_python_session(wdl, served):
    assert served.state.value == 0 and served.handle
    out = served.predict(sm.request(wdl["mixed"]))
    assert set(out) == {"probability", "logit"}
    for name in out:
        np.testing.assert_allclose(out[name], wdl["expected"][name], rtol=0, atol=1e-6)
    probe = served.predict(sm.request(wdl["probe"], output_filter=["probability"]))
    assert set(probe) == {"probability"}
    np.testing.assert_allclose(probe["probability"], wdl["at_10"], rtol=0, atol=1e-6)
    assert served.model_path() == wdl["paths"]["savedmodel_dir"]


def test_inputs_and_outputs_by_tensor_name(wdl, served):
    features = {f"{name}:0": value for name, value in wdl["mixed"].items()}
    out = served.predict(sm.request(features, output_filter=["probability:0"]))
    np.testing.assert_allclose(out["probability:0"], wdl["expected"]["probability"], atol=1e-6)


def test_lookups_never_insert(lookups):
    path, trained = lookups
    proc = Processor(savedmodel_dir=path)
    sizes = proc.predict(sm.request({}, signature_name="sizes"))
    assert {k: int(v) for k, v in sizes.items()} == {"plain": 5, "grouped": 5, "filtered": 5}
    ids = np.array([1, 7, 8, 999, -5, 3], np.int64)
    for _ in range(3):  # an insert would admit 8 and 999 to the filtered EV
        out = proc.predict(sm.request({"ids": ids}))
    assert proc.predict(sm.request({}, signature_name="sizes")) == sizes
    row = {1: 0, 3: 2, 7: 3, 8: 4}
    for name in ("plain", "grouped"):
        for i, key in enumerate(ids):
            want = trained[name][row[key]] if key in row else np.full(sm.DIM, sm.DEFAULT)
            np.testing.assert_allclose(out[name][i], want, atol=1e-6, err_msg=f"{name} {key}")
    filtered = out["filtered"]
    np.testing.assert_allclose(filtered[1], trained["filtered"][3], atol=1e-6)  # admitted
    for i in (2, 3, 4):  # not admitted, never seen, negative
        np.testing.assert_allclose(filtered[i], np.full(sm.DIM, sm.NO_PERMISSION))
    # The same SavedModel in Python: the export marked the lookups, so it
    # does not insert either and agrees with the processor.
    np.testing.assert_allclose(python_predict(path, {"ids": ids})["filtered"], filtered)


@pytest.mark.parametrize("policy", ["MOD", "RR"])
@pytest.mark.parametrize("session_num,per_session", [(2, False), (2, True), (4, True)])
def test_session_group_equals_one_session(wdl, policy, session_num, per_session):
    proc = Processor(savedmodel_dir=wdl["paths"]["savedmodel_dir"], session_num=session_num,
                     select_session_policy=policy, use_per_session_threads=per_session,
                     inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
    req = sm.request(wdl["mixed"])
    results, errors = [], []

    def work():
        try:
            for _ in range(6):
                results.append(proc.predict(req))
        except Exception as e:  # Re-raised below.
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(results) == 36
    for out in results:
        np.testing.assert_allclose(out["probability"], wdl["expected"]["probability"],
                                   rtol=0, atol=1e-6)


def _threads():
    """{thread id: (name, allowed CPUs)} of this process's threads."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                found[tid] = (f.read().strip(), frozenset(os.sched_getaffinity(int(tid))))
        except (FileNotFoundError, ProcessLookupError):  # the thread ended
            continue
    return found


def test_cpusets_pin_each_sessions_pools(wdl):
    cpus = sorted(os.sched_getaffinity(0))
    first, last = cpus[0], cpus[-1]
    before = _threads()
    proc = Processor(savedmodel_dir=wdl["paths"]["savedmodel_dir"], session_num=2,
                     use_per_session_threads=True, cpusets=f"{first};{last}",
                     inter_op_parallelism_threads=1, intra_op_parallelism_threads=2)
    assert proc.handle
    proc.predict(sm.request(wdl["mixed"]))
    pools = {}
    for tid, (name, allowed) in _threads().items():
        if tid not in before and name.startswith("tf_sg"):
            pools.setdefault(name, []).append(allowed)
    assert pools == {"tf_sg0_inter": [{first}], "tf_sg0_intra": [{first}] * 2,
                     "tf_sg1_inter": [{last}], "tf_sg1_intra": [{last}] * 2}


def test_newest_checkpoint_is_served(wdl):
    paths = wdl["paths"]
    proc = Processor(savedmodel_dir=paths["savedmodel_dir"], checkpoint_dir=paths["checkpoint_dir"],
                     model_store_type="local")
    assert proc.model_path() == paths["checkpoint_2"]
    out = proc.predict(sm.request(wdl["probe"]))
    np.testing.assert_allclose(out["probability"], wdl["at_20"], rtol=0, atol=1e-6)
    assert np.abs(wdl["at_20"] - wdl["at_10"]).max() > 1e-3  # the versions differ


def test_warmup_and_timeline(wdl, tmp_path):
    warmup = tmp_path / "warm_up.bin"
    warmup.write_bytes(sm.request(wdl["probe"]).SerializeToString())
    timelines = tmp_path / "timeline"
    proc = Processor(savedmodel_dir=wdl["paths"]["savedmodel_dir"], warmup_file_name=str(warmup),
                     timeline_start_step=2, timeline_interval_step=3, timeline_trace_count=2,
                     timeline_path=str(timelines))
    for _ in range(9):
        proc.predict(sm.request(wdl["mixed"]))
    assert sorted(os.listdir(timelines)) == ["timeline_2.json", "timeline_5.json"]
    trace = json.loads((timelines / "timeline_5.json").read_text())
    ops = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert ops and all(e["dur"] >= 0 for e in ops)
    assert any("KvResourceGather" in e["args"]["label"] for e in ops)


@pytest.mark.parametrize("case", [
    "malformed", "unknown_input", "missing_input", "unknown_output", "wrong_dtype",
    "wrong_shape", "value_count", "unsupported_dtype", "missing_signature", "out_of_range"])
def test_bad_requests_fail_with_a_message_and_the_model_stays_usable(wdl, served, case):
    good = dict(wdl["mixed"])
    n = len(good["user"])
    if case == "malformed":
        message = served.error(b"\x0a\xff\xff\xff")
        assert "not a serialized PredictRequest" in message
    else:
        features, kwargs = dict(good), {}
        if case == "unknown_input":
            features["age"] = np.ones(n, np.float32)
        elif case == "missing_input":
            del features["price"]
        elif case == "unknown_output":
            kwargs["output_filter"] = ["probability", "score"]
        elif case == "wrong_dtype":
            features["user"] = good["user"].astype(np.int32)
        elif case == "wrong_shape":
            features["price"] = good["price"].reshape(-1)
        elif case == "value_count":
            proto = sm.array(good["price"])
            del proto.float_val[-1]
            features["price"] = proto
        elif case == "unsupported_dtype":
            features["price"] = sm.array(good["price"])
            features["price"].dtype = predict_pb2.DT_COMPLEX64
        elif case == "missing_signature":
            kwargs["signature_name"] = "nope"
        elif case == "out_of_range":
            features["user"] = sm.array([300] * n, dtype="DT_INT8")
        message = served.error(sm.request(features, **kwargs))
        expected = {
            "unknown_input": ['input "age" is not an input', "item, price, user"],
            "missing_input": ["lacks input(s) price"],
            "unknown_output": ['output "score" is not an output', "logit, probability"],
            "wrong_dtype": ['input "user" has dtype int32', "expects int64"],
            "wrong_shape": ['input "price" has shape [40]', "expects [?,1]"],
            "value_count": ['input "price" has 39 values', "needs 40"],
            "unsupported_dtype": ['input "price" has dtype DT_COMPLEX64'],
            "missing_signature": ['signature_name "nope" is not in the model',
                                  "serving_default"],
            "out_of_range": ['input "user" has value 300', "int8"],
        }[case]
        for part in expected:
            assert part in message, message
    out = served.predict(sm.request(good))
    np.testing.assert_allclose(out["probability"], wdl["expected"]["probability"], atol=1e-6)


def test_null_arguments():
    lib = Processor.lib
    out, size = ctypes.c_void_p(), ctypes.c_int()
    assert lib.process(None, b"", 0, ctypes.byref(out), ctypes.byref(size)) == 500
    assert b"model_buf is NULL" in ctypes.string_at(out, size.value)
    lib.free_output_data(out)
    lib.free_output_data(None)


@pytest.mark.parametrize("config,message", [
    ({"sesion_num": 2}, 'unknown key "sesion_num"'),
    ({"oss_endpoint": "oss-cn-shanghai.aliyuncs.com"}, '"oss_endpoint" is not supported: OSS'),
    ({"redis_url": "redis://x"}, '"redis_url" is not supported: Redis'),
    ({"gpu_ids_list": "0"}, '"gpu_ids_list" is not supported'),
    ({"model_store_type": "oss"}, '"model_store_type" is "oss"'),
    ({"feature_store_type": "redis"}, '"feature_store_type" is "redis"'),
    ({"savedmodel_dir": "hdfs://a/b"}, '"savedmodel_dir" is "hdfs://a/b", but only local'),
    ({"timeline_path": "oss://bucket/t"}, '"timeline_path" is "oss://bucket/t"'),
    ({"session_num": 0}, '"session_num" must be an integer >= 1, got 0'),
    ({"session_num": "2"}, '"session_num" must be an integer >= 1, got "2"'),
    ({"select_session_policy": "RANDOM"}, '"select_session_policy" must be "MOD" or "RR"'),
    ({"use_per_session_threads": 1}, '"use_per_session_threads" must be true or false'),
    ({"session_num": 2, "cpusets": "0;0"}, 'needs "use_per_session_threads": true'),
    ({"session_num": 3, "use_per_session_threads": True, "cpusets": "0;0"},
     '"cpusets" is "0;0" with 2 entries, but "session_num" is 3'),
    ({"use_per_session_threads": True, "cpusets": "3-1"}, 'empty range "3-1"'),
    ({"use_per_session_threads": True, "cpusets": "x"}, 'bad CPU id "x"'),
    ({"use_per_session_threads": True, "cpusets": "100000"}, 'bad CPU id "100000"'),
    ({"timeline_trace_count": 2}, '"timeline_path" is not set'),
    ({"signature_name": "nope"}, 'signature_name "nope" is not in the SavedModel'),
    ({"savedmodel_dir": "/nonexistent"}, '"/nonexistent" has no saved_model.pb'),
    ({"checkpoint_dir": "/nonexistent", "init_timeout_minutes": 0},
     'checkpoint_dir "/nonexistent" holds no checkpoint'),
    ({"warmup_file_name": "/nonexistent/warm_up.bin"}, "/nonexistent/warm_up.bin"),
])
def test_bad_configs_fail_initialize_naming_the_key(wdl, capfd, config, message):
    config = {"savedmodel_dir": wdl["paths"]["savedmodel_dir"], **config}
    proc = Processor(**config)
    assert proc.handle is None and proc.state.value == -1
    err = capfd.readouterr().err
    assert "initialize failed" in err and message in err, err


@pytest.mark.parametrize("text,message", [
    ("", "not valid JSON: unexpected end at byte 0"),
    ('{"session_num": 2,}', "expected a quoted key at byte 18"),
    ('{"session_num": 2} x', "unexpected text after the object"),
    ("[1]", "must be a JSON object, got an array"),
    ('{"session_num": 1, "session_num": 2}', 'key "session_num" appears twice'),
])
def test_bad_json_fails_initialize(capfd, text, message):
    state = ctypes.c_int(0)
    assert Processor.lib.initialize(b"", text.encode(), ctypes.byref(state)) is None
    assert state.value == -1
    assert message in capfd.readouterr().err


def test_bad_warmup_request_fails_initialize(wdl, tmp_path, capfd):
    warmup = tmp_path / "warm_up.bin"
    warmup.write_bytes(sm.request({"user": wdl["mixed"]["user"]}).SerializeToString())
    proc = Processor(savedmodel_dir=wdl["paths"]["savedmodel_dir"], warmup_file_name=str(warmup))
    assert proc.handle is None
    assert "the warmup request" in capfd.readouterr().err


def test_accepted_guide_keys(wdl):
    proc = Processor(savedmodel_dir=wdl["paths"]["savedmodel_dir"], omp_num_threads=4,
                     kmp_blocktime=0, feature_store_type="memory", serialize_protocol="protobuf",
                     init_timeout_minutes=1, signature_name="serving_default")
    assert proc.handle and proc.state.value == 0


def test_exports_only_the_c_api():
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", processor_library()], check=True,
                         capture_output=True, text=True).stdout
    assert sorted(line.split()[-1] for line in out.splitlines()) == [
        "free_output_data", "get_serving_model_info", "initialize", "process"]


C_CLIENT = r"""
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processor.h"

/* The library is dlopened: the header gives the functions' types. */
typedef __typeof__(initialize)* InitializeFn;
typedef __typeof__(process)* ProcessFn;
typedef __typeof__(get_serving_model_info)* InfoFn;
typedef __typeof__(free_output_data)* FreeFn;

static ProcessFn process_fn;
static FreeFn free_fn;
static void* model;
static char* request;
static long request_size;
static void* first_output;
static int first_size;
static int mismatches;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static char* read_file(const char* path, long* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* data = malloc(*size + 1);
  if (fread(data, 1, *size, f) != (size_t)*size) return NULL;
  data[*size] = 0;
  fclose(f);
  return data;
}

static void* worker(void* arg) {
  for (int i = 0; i < 20; ++i) {
    void* out = NULL;
    int size = 0;
    int status = process_fn(model, request, (int)request_size, &out, &size);
    pthread_mutex_lock(&mu);
    if (status != PROCESSOR_STATUS_OK || size != first_size ||
        memcmp(out, first_output, size) != 0) {
      ++mismatches;
    }
    pthread_mutex_unlock(&mu);
    free_fn(out);
  }
  return arg;
}

/* argv: library, config file, request file, response file, model path file */
int main(int argc, char** argv) {
  if (argc != 6) return 64;
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  InitializeFn initialize = (InitializeFn)dlsym(lib, "initialize");
  process_fn = (ProcessFn)dlsym(lib, "process");
  InfoFn info = (InfoFn)dlsym(lib, "get_serving_model_info");
  free_fn = (FreeFn)dlsym(lib, "free_output_data");
  if (!initialize || !process_fn || !info || !free_fn) return 2;
  long config_size = 0;
  char* config = read_file(argv[2], &config_size);
  request = read_file(argv[3], &request_size);
  if (!config || !request) return 3;
  int state = -7;
  model = initialize("", config, &state);
  if (!model || state != 0) return 4;
  if (process_fn(model, request, (int)request_size, &first_output, &first_size) != 200) {
    fprintf(stderr, "process: %s\n", (char*)first_output);
    return 5;
  }
  FILE* f = fopen(argv[4], "wb");
  fwrite(first_output, 1, first_size, f);
  fclose(f);
  void* model_info = NULL;
  int info_size = 0;
  if (info(model, &model_info, &info_size) != 200) return 6;
  f = fopen(argv[5], "wb");
  fwrite(model_info, 1, info_size, f);
  fclose(f);
  free_fn(model_info);
  void* error = NULL;
  int error_size = 0;
  if (process_fn(model, "\x0a\xff", 2, &error, &error_size) != 500) return 7;
  if (strlen((char*)error) != (size_t)error_size) return 8;
  free_fn(error);
  pthread_t threads[4];
  for (int i = 0; i < 4; ++i) pthread_create(&threads[i], NULL, worker, NULL);
  for (int i = 0; i < 4; ++i) pthread_join(threads[i], NULL);
  free_fn(first_output);
  printf("mismatches %d\n", mismatches);
  FILE* status = fopen("/proc/self/status", "r");
  char line[256];
  while (fgets(line, sizeof(line), status)) {
    if (strncmp(line, "VmHWM:", 6) == 0) fputs(line, stdout);
  }
  fclose(status);
  return mismatches == 0 ? 0 : 9;
}
"""


@pytest.fixture(scope="module")
def c_client(tmp_path_factory):
    """run(config, request) -> (response, model info, peak RSS in kB) of a C
    program that dlopens the library, then calls process from 4 threads."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    root = tmp_path_factory.mktemp("c_client")
    source, binary = root / "client.c", root / "client"
    source.write_text(C_CLIENT)
    subprocess.run([compiler, "-O1", "-Wall", "-Werror", "-I", os.path.dirname(processor_library()),
                    "-o", str(binary), str(source), "-ldl", "-lpthread"], check=True)

    def run(config, req):
        files = {name: root / name for name in ("config.json", "request.bin", "response.bin",
                                                 "info.bin")}
        files["config.json"].write_text(json.dumps(config))
        files["request.bin"].write_bytes(req.SerializeToString())
        result = subprocess.run([str(binary), processor_library()] + [str(f) for f in
                                                                       files.values()],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "mismatches 0" in result.stdout
        peak_kb = int(result.stdout.split("VmHWM:")[1].split()[0])
        return (predict_pb2.PredictResponse.FromString(files["response.bin"].read_bytes()),
                predict_pb2.ServingModelInfo.FromString(files["info.bin"].read_bytes()), peak_kb)
    return run


def test_c_program_dlopens_the_processor(wdl, c_client):
    response, model_info, _ = c_client({
        "savedmodel_dir": wdl["paths"]["savedmodel_dir"], "session_num": 2,
        "select_session_policy": "RR", "use_per_session_threads": True,
        "inter_op_parallelism_threads": 2, "intra_op_parallelism_threads": 2},
        sm.request(wdl["mixed"]))
    for name in ("probability", "logit"):
        np.testing.assert_allclose(sm.to_numpy(response.outputs[name]), wdl["expected"][name],
                                   rtol=0, atol=1e-6)
    assert model_info.model_path == wdl["paths"]["savedmodel_dir"]


def test_session_group_shares_the_tables(c_client, tmp_path):
    """Peak RSS with session_num=4 is within 1.2x of session_num=1 for a model
    whose EV holds 288 MB (1.1M ids x 64 floats)."""
    path = str(tmp_path / "big")
    sm.export_big(path, ids=1_100_000, dim=64)
    req = sm.request({"ids": np.arange(0, 2_000_000, 1000, dtype=np.int64)})
    peaks = {}
    for n in (1, 4):
        response, _, peaks[n] = c_client({"savedmodel_dir": path, "session_num": n,
                                          "use_per_session_threads": True,
                                          "inter_op_parallelism_threads": 2,
                                          "intra_op_parallelism_threads": 2}, req)
        ids = np.array(req.inputs["ids"].int64_val)
        np.testing.assert_allclose(sm.to_numpy(response.outputs["score"]),
                                   np.where(ids < 1_100_000, sm.big_score(ids), sm.big_score(0)),
                                   rtol=0, atol=1e-4)
    assert peaks[4] <= 1.2 * peaks[1], peaks


def _publish(source_prefix, version_dir):
    """Copies a checkpoint into `version_dir` as a writer would: its files
    first, then the state file that names it."""
    os.makedirs(version_dir)
    name = os.path.basename(source_prefix)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(source_prefix + suffix, os.path.join(version_dir, name + suffix))
    with open(os.path.join(version_dir, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{name}"\n')
    return os.path.join(version_dir, name)


def _wait_for_model_path(proc, path, timeout=30):
    deadline = time.monotonic() + timeout
    while proc.model_path() != path:
        assert time.monotonic() < deadline, f"still serving {proc.model_path()}"
        time.sleep(0.05)


def test_checkpoint_update_and_rollback_under_load(wdl, tmp_path):
    paths = wdl["paths"]
    first = _publish(paths["checkpoint_1"], str(tmp_path / "ckpt" / "checkpoint_1"))
    proc = Processor(savedmodel_dir=paths["savedmodel_dir"], checkpoint_dir=str(tmp_path / "ckpt"),
                     session_num=2, use_per_session_threads=True, inter_op_parallelism_threads=1,
                     intra_op_parallelism_threads=1)
    assert proc.model_path() == first
    req = sm.request(wdl["probe"], output_filter=["probability"])
    versions = {"10": wdl["at_10"], "20": wdl["at_20"]}
    seen, errors, stop = [], [], threading.Event()

    def work():
        try:
            while not stop.is_set():
                out = proc.predict(req)["probability"]
                # Every answer comes wholly from one version.
                match = [k for k, v in versions.items() if np.abs(out - v).max() <= 1e-6]
                assert match, "an answer from no version"
                seen.append(match[0])
        except Exception as e:  # Re-raised below.
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        second = _publish(paths["checkpoint_2"], str(tmp_path / "ckpt" / "checkpoint_2"))
        _wait_for_model_path(proc, second)
        time.sleep(0.3)
        shutil.rmtree(tmp_path / "ckpt" / "checkpoint_2")  # roll back
        _wait_for_model_path(proc, first)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert {"10", "20"} <= set(seen)
    switches = sum(a != b for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1] == "10" and switches >= 2
    np.testing.assert_allclose(proc.predict(req)["probability"], wdl["at_10"], atol=1e-6)


def test_a_broken_version_is_skipped(wdl, tmp_path, capfd):
    paths = wdl["paths"]
    first = _publish(paths["checkpoint_1"], str(tmp_path / "ckpt" / "checkpoint_1"))
    proc = Processor(savedmodel_dir=paths["savedmodel_dir"], checkpoint_dir=str(tmp_path / "ckpt"))
    broken = _publish(paths["checkpoint_2"], str(tmp_path / "ckpt" / "checkpoint_2"))
    with open(broken + ".data-00000-of-00001", "r+b") as f:
        f.truncate(16)
    deadline = time.monotonic() + 30
    while f'checkpoint "{broken}" not loaded' not in capfd.readouterr().err:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert proc.model_path() == first
    out = proc.predict(sm.request(wdl["probe"]))
    np.testing.assert_allclose(out["probability"], wdl["at_10"], atol=1e-6)
