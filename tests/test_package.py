"""The `deeprec` package: TF1 namespace, module mirror and version guards."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tensorflow as stock_tf

import deeprec
import deeprec as tf

REPO = Path(__file__).resolve().parents[1]


# --- namespace ------------------------------------------------------------------

def test_mirrored_modules_are_tensorflows_own():
    from deeprec.core.protobuf import config_pb2
    from deeprec.python.framework import ops
    from tensorflow.core.protobuf import config_pb2 as tf_config_pb2
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import partitioned_variables as tf_partitioned_variables

    from deeprec.python.ops import partitioned_variables

    assert partitioned_variables is tf_partitioned_variables
    assert ops is tf_ops
    assert config_pb2 is tf_config_pb2
    # Imported by dotted name, the mirror aliases TF's module object.
    assert importlib.import_module("deeprec.python.ops.partitioned_variables") \
        is tf_partitioned_variables
    assert sys.modules["deeprec.python.ops.partitioned_variables"] is tf_partitioned_variables
    assert importlib.import_module("deeprec.python.framework.ops") is tf_ops
    # The same classes, not copies: objects pass isinstance both ways.
    assert tf.ConfigProto is config_pb2.ConfigProto
    assert isinstance(tf.get_default_graph(), ops.Graph)
    assert partitioned_variables.fixed_size_partitioner is tf.fixed_size_partitioner


def test_missing_mirrored_module_raises_module_not_found():
    with pytest.raises(ModuleNotFoundError, match="deeprec.python.no_such_module"):
        importlib.import_module("deeprec.python.no_such_module")


def test_tf1_namespace_in_graph_mode():
    assert tf.executing_eagerly() is False
    assert tf.Session is stock_tf.compat.v1.Session
    assert tf.get_variable is stock_tf.compat.v1.get_variable
    assert tf.placeholder is stock_tf.compat.v1.placeholder
    assert tf.GraphKeys is stock_tf.compat.v1.GraphKeys
    assert tf.float32 is stock_tf.float32


def test_nn_is_deeprecs_module_with_stock_functions():
    assert deeprec.nn.__name__ == "deeprec.nn"
    assert deeprec.nn is not stock_tf.compat.v1.nn
    assert deeprec.nn.embedding_lookup is stock_tf.compat.v1.nn.embedding_lookup
    assert tf.nn.embedding_lookup_sparse is stock_tf.compat.v1.nn.embedding_lookup_sparse
    assert (tf.nn.safe_embedding_lookup_sparse
            is stock_tf.compat.v1.nn.safe_embedding_lookup_sparse)
    assert tf.nn.relu is stock_tf.compat.v1.nn.relu
    # Names not copied at import time still forward to TF.
    assert tf.nn.softmax_cross_entropy_with_logits_v2 is \
        stock_tf.compat.v1.nn.softmax_cross_entropy_with_logits_v2


@pytest.mark.parametrize("name", ["AdagradOptimizer", "AdamOptimizer", "FtrlOptimizer",
                                  "GradientDescentOptimizer", "MomentumOptimizer"])
def test_optimizers_subclass_the_stock_ones(name):
    ours, stock = getattr(tf.train, name), getattr(stock_tf.compat.v1.train, name)
    assert ours is not stock
    assert issubclass(ours, stock)
    assert ours.__module__ == "deeprec.train.optimizers"
    kwargs = {"momentum": 0.9} if name == "MomentumOptimizer" else {}
    assert isinstance(ours(0.1, **kwargs), stock_tf.compat.v1.train.Optimizer)


def test_train_forwards_other_names():
    assert tf.train.get_or_create_global_step is \
        stock_tf.compat.v1.train.get_or_create_global_step
    assert tf.train.Coordinator is stock_tf.compat.v1.train.Coordinator


def test_deeprec_api_names():
    from deeprec.embedding import EmbeddingVariable, get_embedding_variable

    assert tf.get_embedding_variable is get_embedding_variable
    assert tf.EmbeddingVariable is EmbeddingVariable
    assert issubclass(tf.EmbeddingVariable, stock_tf.Variable)
    for name in ["InitializerOption", "EmbeddingVariableOption",
                 "PartitionedEmbeddingVariable"]:
        assert getattr(tf, name).__module__.startswith("deeprec.embedding.")
    option = tf.InitializerOption()
    assert option.default_value_dim == 4096
    assert option.default_value_no_permission == 0.0
    assert option.initializer is None
    assert isinstance(tf.EmbeddingVariableOption().init_option, tf.InitializerOption)


# --- TensorFlow version guards -------------------------------------------------------

def test_check_tensorflow_accepts_the_required_version():
    from deeprec import _tf_check

    assert stock_tf.__version__ == _tf_check.REQUIRED_TF == "2.15.1"
    _tf_check.check_tensorflow()


@pytest.mark.parametrize("version", ["2.16.1", "2.15.0", "2.15.1rc0"])
def test_check_tensorflow_rejects_other_versions(monkeypatch, version):
    from deeprec import _tf_check

    monkeypatch.setattr(stock_tf, "__version__", version)
    with pytest.raises(ImportError) as info:
        _tf_check.check_tensorflow()
    message = str(info.value)
    assert f"needs TensorFlow 2.15.1 but found {version}" in message
    assert "pip install tensorflow-cpu==2.15.1" in message


def test_check_tensorflow_without_tensorflow(monkeypatch):
    from deeprec import _tf_check

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(ImportError, match=r"not installed: pip install tensorflow-cpu==2\.15\.1"):
        _tf_check.check_tensorflow()


def test_native_loader_refuses_library_built_for_another_tf(monkeypatch):
    from deeprec import _build_info, _native

    assert stock_tf.__version__ == _build_info.TF_VERSION
    monkeypatch.setattr(_build_info, "TF_VERSION", "2.14.0")
    with pytest.raises(ImportError) as info:
        _native._load()
    message = str(info.value)
    assert "built against TensorFlow 2.14.0 but TensorFlow 2.15.1 is installed" in message
    assert "reinstall deeprec" in message


def test_native_loader_reports_missing_library(monkeypatch, tmp_path):
    from deeprec import _native

    monkeypatch.setattr(_native, "_HERE", str(tmp_path))
    with pytest.raises(ImportError, match="op library .* is missing from .*build_ext --inplace"):
        _native._load()


def _python(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO)] + sys.path))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_fails_cleanly_with_a_library_for_another_tf():
    # A fresh interpreter whose build record names another TensorFlow: the
    # first import of deeprec must fail before the .so is loaded.
    proc = _python("""
        import sys, types
        import tensorflow as tf
        real_load = tf.load_op_library
        def load(path):
            print("LOADED", path)
            return real_load(path)
        tf.load_op_library = load
        info = types.ModuleType("deeprec._build_info")
        info.TF_VERSION = "2.14.0"
        sys.modules["deeprec._build_info"] = info
        try:
            import deeprec
        except ImportError as e:
            print("IMPORT ERROR:", e)
        else:
            print("imported")
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("IMPORT ERROR: deeprec's op library was built against TensorFlow 2.14.0 "
            "but TensorFlow 2.15.1 is installed") in proc.stdout, proc.stdout
    assert "imported" not in proc.stdout and "LOADED" not in proc.stdout


def test_subprocess_harness_sees_the_library_load():
    # Guards the test above: the same probe does see a normal load.
    proc = _python("""
        import tensorflow as tf
        real_load = tf.load_op_library
        def load(path):
            print("LOADED", path)
            return real_load(path)
        tf.load_op_library = load
        import deeprec
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("LOADED ") and "_ops" in proc.stdout


def test_import_in_fresh_interpreter_gives_graph_mode():
    proc = _python("""
        import deeprec as tf
        print(tf.executing_eagerly(), tf.__name__, tf.nn.__name__, tf.train.__name__)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "deeprec", "deeprec.nn", "deeprec.train"]
