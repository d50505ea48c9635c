"""_loader.py -- finds libdszero, opens it once, and checks its version.

Where the library comes from, in this order (the first place that names a
file wins; nothing is tried after an explicit DSZERO_LIBRARY):

1. ``DSZERO_LIBRARY``: the library file, or a folder holding ``libdszero.so``
   (set it to use a build of your own over a bundled copy);
2. ``libdszero.so`` next to the package (``pip install`` copies the checkout's
   build there when it finds one);
3. the CMake build of the checkout the package sits in (``build/src``), so
   the package works from a source tree right after ``cmake --build build``;
4. the system's search path (``ldconfig``, ``LD_LIBRARY_PATH``), e.g. after
   ``cmake --install build``.

A failure lists every place it looked. The library is opened with
RTLD_GLOBAL: Open MPI, which libdszero links, loads its own plugins later and
they resolve symbols of libmpi from the global scope.
"""
import ctypes
import ctypes.util
import os
import threading

LIBRARY_FILE = "libdszero.so"
ENV_VAR = "DSZERO_LIBRARY"

_lock = threading.Lock()
_loaded = None  # (CDLL, path)


class LibraryNotFoundError(ImportError):
    """libdszero could not be found or opened; the message says where we looked."""


class LibraryVersionError(ImportError):
    """The libdszero that was found does not provide the ABI this package was written for."""


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def candidates():
    """[(description, path or soname)] in search order."""
    env = os.environ.get(ENV_VAR, "")
    if env:
        path = os.path.join(env, LIBRARY_FILE) if os.path.isdir(env) else env
        return [("%s=%s" % (ENV_VAR, env), path)]
    here = _package_dir()
    out = [("next to the package", os.path.join(here, LIBRARY_FILE)),
           ("the checkout's CMake build",
            os.path.normpath(os.path.join(here, "..", "..", "..", "build", "src", LIBRARY_FILE)))]
    found = ctypes.util.find_library("dszero")
    if found:
        out.append(("the system's library path (ldconfig)", found))
    out.append(("the dynamic loader's search path", LIBRARY_FILE))
    return out


def _open(path):
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def check_version(found, wanted):
    """Raises LibraryVersionError unless a library of version `found`
    ((major, minor, patch)) provides the ABI of version `wanted`: the same
    major version and at least the wanted minor version (structs and
    functions are only ever appended within a major version)."""
    if found[0] != wanted[0] or found[1] < wanted[1]:
        raise LibraryVersionError(
            "libdszero version %d.%d.%d does not provide the ABI of this dszero package "
            "(%d.%d.%d; needs %d.%d or a later %d.x)" % (found + wanted + (wanted[0], wanted[1], wanted[0])))


def load(declare, wanted_version):
    """The opened library (declared by `declare(cdll)`) and its path.

    Opened once per process; later calls return the same object."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        tried = []
        for where, path in candidates():
            is_file_path = os.sep in path
            if is_file_path and not os.path.exists(path):
                tried.append("%s: %s (no such file)" % (where, path))
                continue
            try:
                cdll = _open(path)
            except OSError as e:
                tried.append("%s: %s (%s)" % (where, path, e))
                continue
            try:
                declare(cdll)
            except AttributeError as e:
                raise LibraryVersionError("%s (from %s) lacks a function this package needs: %s"
                                          % (path, where, e)) from None
            raw = cdll.dsz_version().decode()
            try:
                found = tuple(int(x) for x in raw.split("."))
            except ValueError:
                raise LibraryVersionError("%s reports an unreadable version %r" % (path, raw)) from None
            try:
                check_version(found, wanted_version)
            except LibraryVersionError as e:
                raise LibraryVersionError("%s (from %s): %s" % (path, where, e)) from None
            _loaded = (cdll, path)
            return _loaded
        raise LibraryNotFoundError(
            "dszero: cannot load libdszero. Looked in:\n  " + "\n  ".join(tried) +
            "\nBuild it (cmake --preset default && cmake --build build), install it, or set "
            "%s to the library file or its folder." % ENV_VAR)
