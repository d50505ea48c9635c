"""conftest.py -- the package from this checkout (bindings/python) and the
tests' helpers on sys.path; the library comes from DSZERO_LIBRARY or the
checkout's build (dszero._loader)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if os.environ.get("DSZ_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "bindings", "python")))
