"""Builds deeprec's TensorFlow op library and serving processor against the installed TensorFlow."""

import glob
import os
import re
import shutil
import subprocess

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


PROCESSOR_DIR = "serving/processor/serving"
PROTO = f"{PROCESSOR_DIR}/predict.proto"
# In a folder that is no Python package, so that nothing takes it for an
# extension module (pkgutil lists every *.so of a package as one).
PROCESSOR_LIB_DIR = "deeprec/serving/lib"
PROCESSOR = f"{PROCESSOR_LIB_DIR}/libserving_processor.so"
PREDICT_PB2 = "deeprec/serving/predict_pb2.py"
SHIPPED_SOURCES = (PROTO, f"{PROCESSOR_DIR}/processor.h")


def _protoc():
    """protoc 3.21.x: its C++ output must match the protobuf headers TensorFlow 2.15 ships."""
    protoc = shutil.which("protoc")
    version = subprocess.run([protoc, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip() if protoc else ""
    if not re.fullmatch(r"libprotoc 3\.21\.\d+", version):
        raise RuntimeError(
            "building deeprec's serving processor needs protoc 3.21.x (TensorFlow "
            f"2.15's protobuf), found {version or 'none'}; on Debian 12: "
            "apt-get install protobuf-compiler")
    return protoc


class BuildOps(build_ext):
    """Compiles csrc/ and serving/processor/ with TensorFlow's flags, records the TF version."""

    def build_extensions(self):
        self._tf_version, self._compile_flags, self._link_flags = _tf_flags()
        for ext in self.extensions:
            # -fno-math-errno lets the optimizer loops vectorize sqrt.
            ext.extra_compile_args = self._compile_flags + [
                "-O3", "-fvisibility=hidden", "-fno-math-errno"]
            ext.extra_link_args = self._link_flags
        self.compiler.compiler_so = [
            flag for flag in self.compiler.compiler_so if flag != "-Wstrict-prototypes"]
        super().build_extensions()

    def _build_processor(self):
        """Builds libserving_processor.so and predict_pb2.py into the build tree.

        The processor links TensorFlow's libraries and the op library (so
        that EmbeddingVariable kernels are registered when a C program
        dlopens it), found at run time in the package ($ORIGIN/../..) and
        in the TensorFlow it was built against.
        """
        generated = os.path.join(self.build_temp, "generated")
        os.makedirs(generated, exist_ok=True)
        self.spawn([_protoc(), "-I.", f"--cpp_out={generated}", f"--python_out={generated}",
                    PROTO])
        os.makedirs(os.path.join(self.build_lib, PROCESSOR_LIB_DIR), exist_ok=True)
        shutil.copyfile(os.path.join(generated, PROCESSOR_DIR, "predict_pb2.py"),
                        os.path.join(self.build_lib, PREDICT_PB2))
        for path in SHIPPED_SOURCES:  # for C/C++ clients, beside the library
            shutil.copyfile(path, os.path.join(self.build_lib, PROCESSOR_LIB_DIR,
                                               os.path.basename(path)))
        sources = sorted(glob.glob(f"{PROCESSOR_DIR}/*.cc"))
        sources.append(os.path.join(generated, PROCESSOR_DIR, "predict.pb.cc"))
        objects = self.compiler.compile(
            sources, output_dir=self.build_temp, include_dirs=[".", generated],
            depends=glob.glob(f"{PROCESSOR_DIR}/*.h"),
            extra_postargs=self._compile_flags + ["-O2", "-fvisibility=hidden"])
        ops_library = os.path.join(self.build_lib, self.get_ext_filename("deeprec._ops"))
        tf_dir = next(flag[2:] for flag in self._link_flags if flag.startswith("-L"))
        self.compiler.link_shared_object(
            objects, os.path.join(self.build_lib, PROCESSOR), target_lang="c++",
            # Nothing here references the op library or libtensorflow_cc's
            # session factory by symbol: --no-as-needed keeps them loaded.
            extra_postargs=[
                "-Wl,--no-as-needed", "-l:libtensorflow_cc.so.2", *self._link_flags,
                f"-L{os.path.dirname(ops_library)}",
                f"-l:{os.path.basename(ops_library)}",
                f"-Wl,--version-script={PROCESSOR_DIR}/exported_symbols.lds",
                "-Wl,-rpath,$ORIGIN/../..:$ORIGIN/../../../tensorflow:" + tf_dir])

    def run(self):
        super().run()
        self._build_processor()
        if self.inplace:
            self.mkpath(PROCESSOR_LIB_DIR)
            shipped = [f"{PROCESSOR_LIB_DIR}/{os.path.basename(p)}" for p in SHIPPED_SOURCES]
            for path in (PROCESSOR, PREDICT_PB2, *shipped):
                self.copy_file(os.path.join(self.build_lib, path), path)
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
