"""Mirror TensorFlow's module tree under the ``deeprec`` package.

DeepRec 1.15 scripts are ported by rewriting ``tensorflow`` to ``deeprec`` in
their imports (``from deeprec.python.ops import partitioned_variables``). A
``deeprec.*`` module path that has its own file in this package is ours; every
other ``deeprec.*`` path resolves to TensorFlow's module of the same path.

Resolution is by aliasing, never copying: ``sys.modules["deeprec.X"]`` is the
very object ``sys.modules["tensorflow.X"]``. Executing a TF source file a second
time under another name would create a second set of classes, and objects of
one copy would then fail ``isinstance`` checks against the other.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["install"]


class _AliasLoader(importlib.abc.Loader):
    """Loads a mirrored name by importing the target module and aliasing it."""

    def __init__(self, name: str, target_name: str, bind_on_parent: bool) -> None:
        self._name = name
        self._target_name = target_name
        self._bind_on_parent = bind_on_parent

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        # Let the import system build a throwaway placeholder. Returning TF's
        # module here would make the import system overwrite its ``__spec__``.
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Replaces the placeholder in ``sys.modules`` with the target module.

        Args:
            module: The placeholder module created by the import system.
        """
        try:
            real = importlib.import_module(self._target_name)
        except ModuleNotFoundError as err:
            if not _names_missing_target(err, self._target_name):
                raise
            raise _not_found(self._name, self._target_name) from err
        # The import system re-reads sys.modules after exec_module, so the
        # importer receives TF's object and the placeholder is dropped.
        sys.modules[self._name] = real
        if self._bind_on_parent:
            parent_name, _, child = self._name.rpartition(".")
            setattr(sys.modules[parent_name], child, real)


class _MirrorFinder(importlib.abc.MetaPathFinder):
    """Routes ``<package>.*`` names to our files or to ``<target>.*`` modules.

    It must sit before ``PathFinder``: once a parent like ``deeprec.python`` is
    an alias of ``tensorflow.python``, its ``__path__`` is TF's directory and
    ``PathFinder`` would load TF's files a second time under deeprec names.
    """

    def __init__(self, package: str, target: str) -> None:
        self.package = package
        self.target = target

    def _roots(self) -> list[str]:
        # Read lazily, as install() runs while the package is importing. Read
        # __spec__, not __path__: `from tensorflow.compat.v1 import *` rebinds
        # __path__ to TF's dirs (that module lists "__path__" in __all__).
        return [_real(p) for p in _spec_locations(sys.modules.get(self.package))]

    def _own_locations(self, name: str, module: ModuleType) -> list[str]:
        """Returns the package dirs of ``module`` if it is ours, else []."""
        # An alias's spec carries TF's name; a package of ours keeps its own
        # name and lives in our source directory.
        spec = getattr(module, "__spec__", None)
        if spec is None or spec.name != name:
            return []
        locations = _spec_locations(module)
        roots = self._roots()
        if not roots or not all(_is_within(_real(p), roots) for p in locations):
            return []
        return locations

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Finds the spec for a mirrored name.

        Args:
            fullname: Absolute module name being imported.
            path: The parent's ``__path__`` (unused: it may be TF's directory
                or a clobbered ``__path__``; the parent's spec is used).
            target: Module being reloaded, if any (unused).

        Returns:
            None when the name is outside the package; the file spec of our
            module when the parent is our package and has a file for it;
            otherwise a spec whose loader aliases the target module.

        Raises:
            ModuleNotFoundError: The name is not ours and the target module
                does not exist.
        """
        if not fullname.startswith(self.package + "."):
            return None
        parent_name = fullname.rpartition(".")[0]
        parent = sys.modules.get(parent_name)
        if parent is None:
            return None  # Not a normal import; nothing sensible to forward.
        locations = self._own_locations(parent_name, parent)
        if locations:
            spec = importlib.machinery.PathFinder.find_spec(fullname, locations)
            # A directory without __init__ (namespace spec, no location) is
            # not a package of ours and must not shadow the TF module.
            if spec is not None and spec.has_location:
                return spec
        target_name = self.target + fullname[len(self.package):]
        # find_spec runs under the global import lock, so it must not import:
        # the target is checked here only once its parent is loaded (the
        # usual case); otherwise exec_module reports a missing target.
        is_package = False
        if target_name.rpartition(".")[0] in sys.modules:
            is_package = _target_is_package(fullname, target_name)
        loader = _AliasLoader(fullname, target_name, bind_on_parent=bool(locations))
        return importlib.machinery.ModuleSpec(fullname, loader, is_package=is_package)


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _is_within(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in roots)


def _spec_locations(module: ModuleType | None) -> list[str]:
    spec = getattr(module, "__spec__", None)
    return list(getattr(spec, "submodule_search_locations", None) or [])


def _names_missing_target(err: ModuleNotFoundError, target_name: str) -> bool:
    # Only "the target path is missing" is translated; a module missing from
    # inside TF's own imports must surface unchanged.
    missing = err.name or ""
    return target_name == missing or target_name.startswith(missing + ".")


def _not_found(name: str, target_name: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"No module named {name!r}: it has no file in the "
        f"{name.partition('.')[0]!r} package, and the module it forwards "
        f"to, {target_name!r}, does not exist",
        name=name,
    )


def _target_is_package(name: str, target_name: str) -> bool:
    """Checks that the target module exists; its parent must be loaded.

    Args:
        name: The mirrored name being imported, for error messages.
        target_name: The target module name it forwards to.

    Returns:
        Whether the target module is a package.

    Raises:
        ModuleNotFoundError: The target module is missing.
    """
    loaded = sys.modules.get(target_name)
    if loaded is not None:
        return hasattr(loaded, "__path__")
    try:
        spec = importlib.util.find_spec(target_name)
    except ModuleNotFoundError as err:
        if not _names_missing_target(err, target_name):
            raise
        raise _not_found(name, target_name) from err
    if spec is None:
        raise _not_found(name, target_name)
    return spec.submodule_search_locations is not None


def install(package: str = "deeprec", target: str = "tensorflow") -> None:
    """Makes ``<package>.*`` module paths mirror ``<target>.*``.

    Inserts a finder at ``sys.meta_path[0]``. Calling it again for the same
    package and target does nothing. Installing imports nothing; target
    modules are imported only when a forwarded name is first imported.

    Args:
        package: Top-level name of our package, whose own module files win.
        target: Top-level name of the package that every other path forwards
            to.

    Raises:
        ValueError: A name is not a top-level module name, both names are
            equal, or ``package`` is already mirroring a different target.
    """
    for arg, value in (("package", package), ("target", target)):
        if not value.isidentifier():
            raise ValueError(f"{arg} must be a top-level module name, got {value!r}")
    if package == target:
        raise ValueError(f"package and target are both {package!r}")
    for finder in sys.meta_path:
        # Duck-typed so a reloaded copy of this module still sees its finder.
        if getattr(finder, "package", None) == package and hasattr(finder, "_roots"):
            if getattr(finder, "target", None) == target:
                return
            raise ValueError(
                f"{package!r} already mirrors {finder.target!r}, "
                f"cannot also mirror {target!r}"
            )
    sys.meta_path.insert(0, _MirrorFinder(package, target))
