"""Builds deeprec's TensorFlow op library against the installed TensorFlow."""

import glob

import setuptools
from setuptools.command.build_ext import build_ext


def _tf_flags():
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - build environment error
        raise RuntimeError(
            "building deeprec needs tensorflow-cpu==2.15.1 installed in the "
            "build environment") from e
    return tf.__version__, tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()


class BuildOps(build_ext):
    """Compiles csrc/ with TensorFlow's flags and records the TF version."""

    def build_extensions(self):
        self._tf_version, compile_flags, link_flags = _tf_flags()
        for ext in self.extensions:
            # -fno-math-errno lets the optimizer loops vectorize sqrt.
            ext.extra_compile_args = compile_flags + [
                "-O3", "-fvisibility=hidden", "-fno-math-errno"]
            ext.extra_link_args = link_flags
        self.compiler.compiler_so = [
            flag for flag in self.compiler.compiler_so if flag != "-Wstrict-prototypes"]
        super().build_extensions()

    def run(self):
        super().run()
        # Written beside the library wherever it lands (build tree, and the
        # source tree for in-place and editable builds) so that deeprec can
        # refuse a mismatched TensorFlow before loading the library.
        targets = {self.build_lib}
        if self.inplace or getattr(self, "editable_mode", False):
            targets.add(".")
        for root in targets:
            with open(f"{root}/deeprec/_build_info.py", "w") as f:
                f.write('"""Written by setup.py: the TensorFlow the op library was '
                        'built against."""\n')
                f.write(f"TF_VERSION = {self._tf_version!r}\n")


setuptools.setup(
    ext_modules=[
        setuptools.Extension(
            "deeprec._ops",
            sources=sorted(glob.glob("csrc/ops/*.cc")),
            include_dirs=["."],
            language="c++",
        )
    ],
    cmdclass={"build_ext": BuildOps},
)
