"""tools/remove_filtered_features.py: strips filtered-feature tensors (§3.3)."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "remove_filtered_features.py"

_spec = importlib.util.spec_from_file_location("remove_filtered_features", TOOL)
rff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rff)

FILTERED = ("-keys_filtered", "-freqs_filtered", "-versions_filtered",
            "-partition_filter_offset")


def _offsets(seed):
    """An int32[1001] partition offset table, non-decreasing like the real ones."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.integers(0, 2, size=1001)).astype(np.int32)


def ev_tensors():
    """EmbeddingVariable-style tensors (after the guide's var_dist example).

    Returns {name: numpy value}; every `_filtered` kind appears for the
    primary `var_dist` and for its slot `var_dist/Adagrad`.
    """
    rng = np.random.default_rng(0)
    t = {"global_step": np.int64(1)}
    for name in ("var_dist", "var_dist/Adagrad"):
        t[f"{name}-keys"] = np.array([1, 2, 1 << 40], np.int64)
        t[f"{name}-values"] = rng.standard_normal((3, 4)).astype(np.float32)
        t[f"{name}-freqs"] = np.array([3, 3, 9], np.int64)
        t[f"{name}-versions"] = np.zeros([0], np.int64)
        t[f"{name}-partition_offset"] = _offsets(1)
        t[f"{name}-keys_filtered"] = np.array([3, 4], np.int64)
        t[f"{name}-freqs_filtered"] = np.array([2, 1], np.int64)
        t[f"{name}-versions_filtered"] = np.zeros([0], np.int64)
        t[f"{name}-partition_filter_offset"] = _offsets(2)
    t["vocab"] = np.array([b"a", b"", b"\x00\xffz"], dtype=object)
    t["model_name"] = b"ranker"
    t["dense/kernel"] = rng.standard_normal((5, 2)).astype(np.float64)
    t["dense/empty"] = np.zeros([0, 4], np.float32)
    t["half"] = np.array([1.5, -2.25], np.float16)
    return t


def _dtype_of(value):
    return tf.string if isinstance(value, bytes) or np.asarray(value).dtype == object \
        else tf.as_dtype(np.asarray(value).dtype)


def save_checkpoint(prefix, tensors, slices=None):
    """Writes `tensors` ({name: numpy value}) as a V2 checkpoint at `prefix`.

    `slices` optionally maps a name to a list of (slice spec, value) pairs
    saved instead of `tensors[name]`.  Uses graph mode, as deeprec's tests run.
    """
    names, specs, values = [], [], []
    for name, value in tensors.items():
        names.append(name)
        specs.append("")
        values.append(value)
    for name, parts in (slices or {}).items():
        for spec, value in parts:
            names.append(name)
            specs.append(spec)
            values.append(value)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        sess.run(tf.raw_ops.SaveV2(
            prefix=prefix, tensor_names=names, shape_and_slices=specs,
            tensors=[tf.constant(v, dtype=_dtype_of(v)) for v in values]))


def read_checkpoint(prefix):
    """Returns ({name: numpy value}, {name: tf.DType}) of the checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    return {n: reader.get_tensor(n) for n in dtypes}, dtypes


def assert_identical(a, b, name):
    """Asserts two checkpoint values have the same dtype, shape and bytes."""
    if isinstance(a, bytes) or isinstance(b, bytes):
        assert type(a) is type(b) and a == b, name
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, name
    assert a.shape == b.shape, name
    if a.dtype == object:
        assert [type(x) for x in a.ravel()] == [type(x) for x in b.ravel()], name
        assert a.ravel().tolist() == b.ravel().tolist(), name
    else:
        assert a.tobytes() == b.tobytes(), name


def assert_stripped_copy(input_prefix, output_prefix):
    """The output holds exactly the input's non-filtered tensors, unchanged."""
    before, before_dtypes = read_checkpoint(input_prefix)
    after, after_dtypes = read_checkpoint(output_prefix)
    expected = {n for n in before if not n.endswith(FILTERED)}
    assert set(after) == expected
    for name in expected:
        assert after_dtypes[name] == before_dtypes[name], name
        assert_identical(before[name], after[name], name)
    assert {n for n, _ in tf.train.list_variables(output_prefix)} == expected


def _size(prefix):
    return sum(f.stat().st_size for f in pathlib.Path(prefix).parent.iterdir()
               if f.name == pathlib.Path(prefix).name + ".index"
               or f.name.startswith(pathlib.Path(prefix).name + ".data-"))


@pytest.fixture
def ev_checkpoint(tmp_path):
    prefix = str(tmp_path / "train" / "model.ckpt-1")
    save_checkpoint(prefix, ev_tensors())
    return prefix


def test_removes_filtered_tensors_of_primary_and_slot(ev_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "serve" / "model.ckpt-1")
    assert rff.main(["--input_checkpoint", ev_checkpoint, "--output_checkpoint", out]) == 0

    assert_stripped_copy(ev_checkpoint, out)
    names = {n for n, _ in tf.train.list_variables(out)}
    assert "var_dist-keys" in names and "var_dist/Adagrad-values" in names
    assert not any(n.endswith(FILTERED) for n in names)
    assert tf.train.latest_checkpoint(str(tmp_path / "serve")) == out

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    kept = len(ev_tensors()) - 8
    assert lines[0] == (
        f"remove_filtered_features: kept {kept} tensors, removed 8 tensors, "
        f"{_size(ev_checkpoint)} -> {_size(out)} bytes ({out})")
    assert _size(out) < _size(ev_checkpoint)


def test_verbose_lists_removed_tensors(ev_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "serve" / "model.ckpt-1")
    assert rff.main(["--input_checkpoint", ev_checkpoint, "--output_checkpoint", out,
                     "--verbose"]) == 0
    removed = [line.split()[1] for line in capsys.readouterr().out.splitlines()
               if line.startswith("removed ")]
    assert removed == sorted(n for n in ev_tensors() if n.endswith(FILTERED))


def test_small_shards_are_merged_into_one_checkpoint(ev_checkpoint, tmp_path):
    out = str(tmp_path / "serve" / "model.ckpt-1")
    assert rff.main(["--input_checkpoint", ev_checkpoint, "--output_checkpoint", out,
                     "--max_shard_bytes", "64"]) == 0
    assert_stripped_copy(ev_checkpoint, out)
    files = sorted(p.name for p in (tmp_path / "serve").iterdir())
    data = [f for f in files if f.startswith("model.ckpt-1.data-")]
    assert len(data) > 1 and all(f.endswith(f"-of-{len(data):05d}") for f in data)
    assert set(files) == {"checkpoint", "model.ckpt-1.index", *data}  # No temp dir left.


def test_checkpoint_without_filtered_tensors_is_copied_unchanged(tmp_path, capsys):
    tensors = {n: v for n, v in ev_tensors().items() if not n.endswith(FILTERED)}
    src = str(tmp_path / "model.ckpt-5")
    save_checkpoint(src, tensors)
    out = str(tmp_path / "stripped" / "model.ckpt-5")
    assert rff.main(["--input_checkpoint", src, "--output_checkpoint", out]) == 0
    assert_stripped_copy(src, out)
    assert set(read_checkpoint(out)[0]) == set(tensors)
    assert f"kept {len(tensors)} tensors, removed 0 tensors" in capsys.readouterr().out


def test_saver_restores_output_including_partitioned_variable(tmp_path):
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((3, 2)).astype(np.float32)
    table = rng.standard_normal((4, 3)).astype(np.float32)
    src = str(tmp_path / "model.ckpt-9")
    save_checkpoint(
        src,
        {"kernel": kernel, "global_step": np.int64(9),
         "emb-keys_filtered": np.array([7], np.int64),
         "emb-partition_filter_offset": _offsets(4)},
        slices={"table": [("4 3 0,2:-", table[:2]), ("4 3 2,2:-", table[2:])]})
    out = str(tmp_path / "serve" / "model.ckpt-9")
    assert rff.main(["--input_checkpoint", src, "--output_checkpoint", out]) == 0

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        k = tf.compat.v1.get_variable("kernel", [3, 2], tf.float32)
        step = tf.compat.v1.get_variable("global_step", [], tf.int64)
        t = tf.compat.v1.get_variable(
            "table", [4, 3], tf.float32,
            partitioner=tf.compat.v1.fixed_size_partitioner(2))
        saver = tf.compat.v1.train.Saver([k, step, t])
        saver.restore(sess, tf.train.latest_checkpoint(str(tmp_path / "serve")))
        got_k, got_step, got_t = sess.run([k, step, tf.convert_to_tensor(t)])
    np.testing.assert_array_equal(got_k, kernel)
    assert got_step == 9
    np.testing.assert_array_equal(got_t, table)


def test_checkpoint_state_keeps_earlier_entries(ev_checkpoint, tmp_path):
    serve = tmp_path / "serve"
    for step in ("a", "b", "a"):
        out = str(serve / f"model.ckpt-{step}")
        assert rff.main(["--input_checkpoint", ev_checkpoint, "--output_checkpoint", out]) == 0
    state = tf.train.get_checkpoint_state(str(serve))
    assert state.model_checkpoint_path == str(serve / "model.ckpt-a")
    assert list(state.all_model_checkpoint_paths) == [
        str(serve / "model.ckpt-b"), str(serve / "model.ckpt-a")]
    # Written relative to the directory, so the directory can be moved.
    assert 'model_checkpoint_path: "model.ckpt-a"' in (serve / "checkpoint").read_text()


def test_missing_input_exits_2_naming_the_path(tmp_path, capsys):
    missing = str(tmp_path / "nowhere" / "model.ckpt-3")
    out = str(tmp_path / "serve" / "model.ckpt-3")
    assert rff.main(["--input_checkpoint", missing, "--output_checkpoint", out]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and missing in err
    assert not (tmp_path / "serve").exists()


def test_input_given_as_index_file_gets_a_hint(ev_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "serve" / "model.ckpt-1")
    assert rff.main(["--input_checkpoint", ev_checkpoint + ".index",
                     "--output_checkpoint", out]) == 2
    assert "without '.index'" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["same", "dotdot"])
def test_output_equal_to_input_is_refused(ev_checkpoint, tmp_path, capsys, spelling):
    out = ev_checkpoint if spelling == "same" else \
        str(tmp_path / "train" / ".." / "train" / "model.ckpt-1")
    files = {p: p.read_bytes() for p in (tmp_path / "train").iterdir()}
    assert rff.main(["--input_checkpoint", ev_checkpoint, "--output_checkpoint", out]) == 2
    assert "is the input checkpoint" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tmp_path / "train").iterdir()} == files


def test_missing_arguments_are_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        rff.main(["--input_checkpoint", "x"])
    assert exc.value.code == 2


def _run(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=env, cwd=kwargs.get("cwd", ROOT), timeout=300)


def test_command_line_in_eager_tensorflow_without_deeprec(ev_checkpoint, tmp_path):
    out = str(tmp_path / "serve" / "model.ckpt-1")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import remove_filtered_features as r;"
        "rc = r.main(sys.argv[2:]);"
        "assert 'deeprec' not in sys.modules, 'deeprec was imported';"
        "import tensorflow as tf; assert tf.executing_eagerly();"
        "sys.exit(rc)")
    proc = _run(["-c", code, str(TOOL.parent), "--input_checkpoint", ev_checkpoint,
                 "--output_checkpoint", out])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("remove_filtered_features: kept ")
    assert_stripped_copy(ev_checkpoint, out)
    assert tf.train.latest_checkpoint(str(tmp_path / "serve")) == out


def test_command_line_missing_input_exit_status(tmp_path):
    missing = str(tmp_path / "model.ckpt-404")
    proc = _run([str(TOOL), "--input_checkpoint", missing,
                 "--output_checkpoint", str(tmp_path / "out" / "m")])
    assert proc.returncode == 2
    assert missing in proc.stderr and proc.stdout == ""
