"""setup.py -- only what pyproject.toml cannot say: copy libdszero.so into the
package when one is at hand, so an installed dszero finds its library next
to itself (dszero/_loader.py). Taken from DSZERO_LIBRARY (a file or a
folder) or this checkout's CMake build (../../build/src); without either the
package installs alone and finds the library at run time."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = "libdszero.so"


def library_to_bundle():
    env = os.environ.get("DSZERO_LIBRARY", "")
    candidates = [os.path.join(env, LIB) if os.path.isdir(env) else env] if env else []
    candidates.append(os.path.join(HERE, "..", "..", "build", "src", LIB))
    return next((os.path.realpath(c) for c in candidates if c and os.path.isfile(c)), None)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        lib = library_to_bundle()
        if lib:
            target = os.path.join(self.build_lib, "dszero", LIB)
            self.announce("dszero: bundling %s" % lib, level=2)
            shutil.copyfile(lib, target)
            os.chmod(target, 0o755)
        else:
            self.announce("dszero: no libdszero.so to bundle; it will be looked for at run time", level=2)


class BinaryDistribution(Distribution):
    """A bundled shared library makes the wheel platform-specific."""

    def has_ext_modules(self):
        return library_to_bundle() is not None


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
