"""Tests for deeprec._module_tree, the deeprec -> tensorflow module mirror.

Each scenario runs in a fresh interpreter against a throwaway package
``fakedeeprec`` built in tmp_path, so the tests neither depend on the real
``deeprec/__init__.py`` nor leak finders or aliases into pytest's sys.modules.
"""

from __future__ import annotations

import os
import py_compile
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

MODULE_TREE = Path(__file__).resolve().parents[1] / "deeprec" / "_module_tree.py"


def _build_fake_package(root: Path) -> None:
    """Creates fakedeeprec with a few owned modules; the rest forwards to TF."""
    pkg = root / "fakedeeprec"
    (pkg / "python" / "ops").mkdir(parents=True)
    # Copied in (not imported from deeprec) so the real deeprec/__init__.py,
    # which others are editing, is never executed here.
    shutil.copy(MODULE_TREE, pkg / "_module_tree.py")
    (pkg / "__init__.py").write_text(
        "from fakedeeprec._module_tree import install\ninstall('fakedeeprec')\n"
    )
    (pkg / "python" / "__init__.py").write_text("")
    (pkg / "python" / "ops" / "__init__.py").write_text("")
    (pkg / "python" / "ops" / "mine.py").write_text("MARKER = 'ours'\n")
    # A sourceless .pyc counts as our module too.
    src = pkg / "python" / "ops" / "compiled.py"
    src.write_text("MARKER = 'compiled'\n")
    py_compile.compile(str(src), cfile=str(pkg / "python" / "ops" / "compiled.pyc"))
    src.unlink()
    # A directory without __init__.py is not a package of ours: it must not
    # shadow tensorflow.core as a namespace package.
    (pkg / "core").mkdir()


def _run(tmp_path: Path, code: str) -> None:
    """Runs code in a fresh interpreter with fakedeeprec importable."""
    _build_fake_package(tmp_path)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout == "", proc.stdout


def test_install_is_lazy_and_idempotent(tmp_path: Path) -> None:
    _run(
        tmp_path,
        """
        import sys
        import fakedeeprec
        from fakedeeprec._module_tree import install

        assert "tensorflow" not in sys.modules, "install must not import TF"
        def mine():
            return [f for f in sys.meta_path if getattr(f, "package", None) == "fakedeeprec"]
        assert len(mine()) == 1 and sys.meta_path[0] is mine()[0]
        install("fakedeeprec")
        assert len(mine()) == 1
        for bad in [("fakedeeprec", "other"), ("a.b", "tensorflow"), ("x", "x")]:
            try:
                install(*bad)
            except ValueError:
                pass
            else:
                raise AssertionError(f"install{bad} should raise ValueError")
        """,
    )


def test_owned_modules_load_from_our_files(tmp_path: Path) -> None:
    _run(
        tmp_path,
        """
        import os, sys
        import fakedeeprec
        import fakedeeprec.python.ops.mine as mine
        from fakedeeprec.python.ops import compiled
        import fakedeeprec.python as py
        import fakedeeprec.python.ops as ops

        root = os.path.dirname(fakedeeprec.__file__)
        assert mine.MARKER == "ours" and mine.__name__ == "fakedeeprec.python.ops.mine"
        assert mine.__file__.startswith(root)
        assert compiled.MARKER == "compiled"
        assert py.__name__ == "fakedeeprec.python" and py.__file__.startswith(root)
        assert ops.__name__ == "fakedeeprec.python.ops"
        assert fakedeeprec.python.ops.mine is mine
        """,
    )


def test_other_paths_alias_tensorflow_modules(tmp_path: Path) -> None:
    _run(
        tmp_path,
        """
        import os, sys
        from fakedeeprec.python.ops import partitioned_variables
        import fakedeeprec.python.framework.ops as o
        from fakedeeprec.core.protobuf import config_pb2
        import fakedeeprec.compiler
        import fakedeeprec.python.ops as our_ops
        import fakedeeprec

        import tensorflow
        import tensorflow.python.ops.partitioned_variables as tf_pv
        import tensorflow.python.framework.ops as tf_ops
        import tensorflow.core.protobuf.config_pb2 as tf_config_pb2

        assert partitioned_variables is tf_pv
        assert o is tf_ops
        assert sys.modules["fakedeeprec.python.framework.ops"] is tf_ops
        framework = sys.modules["tensorflow.python.framework"]
        assert sys.modules["fakedeeprec.python.framework"] is framework
        assert config_pb2.ConfigProto is tf_config_pb2.ConfigProto
        assert sys.modules["fakedeeprec.core"] is sys.modules["tensorflow.core"]
        # Bound on our own package objects, never on TF's: TF deletes
        # tensorflow.compiler from its top level and it must stay deleted.
        assert our_ops.partitioned_variables is tf_pv
        assert fakedeeprec.compiler is sys.modules["tensorflow.compiler"]
        assert not hasattr(tensorflow, "compiler")
        assert not hasattr(tensorflow, "python")

        # Every fakedeeprec.* entry is ours or the very TF object.
        root = os.path.dirname(fakedeeprec.__file__)
        for name, mod in list(sys.modules.items()):
            if not name.startswith("fakedeeprec."):
                continue
            if mod.__name__ == name:
                assert mod.__file__.startswith(root), name
            else:
                tf_name = "tensorflow" + name[len("fakedeeprec"):]
                assert mod is sys.modules[tf_name], name

        # No TF file was executed a second time under a fakedeeprec name.
        # (TF itself loads a few files twice, e.g. tensorflow.compat and
        # tensorflow._api.v2.compat, so only copies we made are flagged.)
        tf_dir = os.path.dirname(tensorflow.__file__)
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None) or ""
            if f.startswith(tf_dir):
                assert not mod.__name__.startswith("fakedeeprec"), f"{f} copied as {name}"
        """,
    )


def test_missing_modules_name_both_paths(tmp_path: Path) -> None:
    _run(
        tmp_path,
        """
        import importlib

        for name, tf_name in [
            ("fakedeeprec.python.nope", "tensorflow.python.nope"),
            ("fakedeeprec.python.ops.nope", "tensorflow.python.ops.nope"),
            ("fakedeeprec.core.nope", "tensorflow.core.nope"),
            ("fakedeeprec.nosuchpkg", "tensorflow.nosuchpkg"),
        ]:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                assert err.name == name, (err.name, name)
                assert repr(name) in str(err) and repr(tf_name) in str(err), str(err)
            else:
                raise AssertionError(f"{name} should not import")

        # from-imports keep Python's own rule: a missing submodule becomes
        # "cannot import name", exactly as it would for tensorflow.python.
        try:
            from fakedeeprec.python import nope  # noqa: F401
        except ImportError as err:
            assert "cannot import name 'nope'" in str(err), str(err)
        else:
            raise AssertionError("from-import of a missing module should fail")
        """,
    )


def test_errors_inside_target_modules_pass_through(tmp_path: Path) -> None:
    # A small non-TF target keeps this fast and lets us plant broken modules.
    orig = tmp_path / "origpkg"
    (orig / "sub").mkdir(parents=True)
    (orig / "__init__.py").write_text("")
    (orig / "sub" / "__init__.py").write_text("")
    (orig / "sub" / "leaf.py").write_text("VALUE = 1\n")
    (orig / "broken.py").write_text("import no_such_thirdparty_module\n")
    (orig / "raises.py").write_text("raise ImportError('boom from origpkg.raises')\n")
    mirror = tmp_path / "mirrorpkg"
    mirror.mkdir()
    shutil.copy(MODULE_TREE, mirror / "_module_tree.py")
    (mirror / "__init__.py").write_text(
        "from mirrorpkg._module_tree import install\ninstall('mirrorpkg', 'origpkg')\n"
    )
    _run(
        tmp_path,
        """
        import sys
        import mirrorpkg
        import mirrorpkg.sub.leaf as leaf
        assert leaf is sys.modules["origpkg.sub.leaf"] and leaf.VALUE == 1
        assert mirrorpkg.sub is sys.modules["origpkg.sub"]

        try:
            import mirrorpkg.broken
        except ModuleNotFoundError as err:
            assert err.name == "no_such_thirdparty_module", err
        else:
            raise AssertionError("mirrorpkg.broken should fail")
        try:
            import mirrorpkg.raises
        except ImportError as err:
            assert str(err) == "boom from origpkg.raises", err
        else:
            raise AssertionError("mirrorpkg.raises should fail")
        assert "mirrorpkg.broken" not in sys.modules
        assert "mirrorpkg.raises" not in sys.modules
        """,
    )


def test_star_import_clobbering_path_is_harmless(tmp_path: Path) -> None:
    # tensorflow.compat.v1 lists "__path__" in its __all__, so a star import
    # in our __init__ rebinds our __path__ to TF's dirs; ownership must still
    # come from our own files, and TF's files must not be loaded as copies.
    pkg = tmp_path / "starpkg"
    pkg.mkdir()
    shutil.copy(MODULE_TREE, pkg / "_module_tree.py")
    (pkg / "__init__.py").write_text(
        "from starpkg._module_tree import install\n"
        "install('starpkg')\n"
        "from tensorflow.compat.v1 import *\n"
    )
    (pkg / "mine.py").write_text("MARKER = 'ours'\n")
    _run(
        tmp_path,
        """
        import os, sys
        import starpkg
        import tensorflow
        assert not any(p.startswith(str(os.getcwd())) for p in starpkg.__path__)

        import starpkg.compat.v1 as v1
        from starpkg import mine
        from starpkg.compat.v1 import nn

        assert mine.MARKER == "ours" and mine.__name__ == "starpkg.mine"
        assert v1 is sys.modules["tensorflow.compat.v1"]
        assert nn is tensorflow.compat.v1.nn
        tf_dir = os.path.dirname(tensorflow.__file__)
        for name, mod in list(sys.modules.items()):
            if name.startswith("starpkg."):
                f = getattr(mod, "__file__", None) or ""
                assert not mod.__name__.startswith("starpkg.") or not f.startswith(tf_dir), name
        """,
    )
