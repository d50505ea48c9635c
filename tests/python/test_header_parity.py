"""test_header_parity.py -- the ctypes declarations of dszero._capi say what
include/dszero.h and dlpack.h say.

Types: every function (arguments and result), every struct field and every
DSZ_* constant is compared with the header as tests/bindings/cheader.py (the
parser of the Rust/Julia check) reads it. Layout: a C program compiled here
prints sizeof and offsetof of every struct, which must equal ctypes' own
(skipped when there is no C compiler)."""
import ctypes
import os
import shutil
import subprocess
import sys

import pytest
from dszero import _capi
from helpers import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "bindings"))
from cheader import read_headers  # noqa: E402

DLPACK = next((p for p in [os.environ.get("DLPACK_HEADER"), "/usr/include/dlpack/dlpack.h",
                           "/usr/local/include/dlpack/dlpack.h"] if p and os.path.isfile(p)), None)
PRIMS = {"usize": "u64"}  # x86-64 / aarch64 Linux
SIMPLE = {"b": "i8", "B": "u8", "h": "i16", "H": "u16", "i": "i32", "I": "u32", "l": "i64", "L": "u64",
          "q": "i64", "Q": "u64", "f": "f32", "d": "f64"}


def c_side(t):
    """A cheader type with the pointer constness dropped (ctypes has none)."""
    kind = t[0]
    if kind == "prim":
        return ("prim", PRIMS.get(t[1], t[1]))
    if kind == "ptr":
        return ("ptr", c_side(t[2]))
    if kind == "fn":
        return ("fn", c_side(t[1]), tuple(c_side(a) for a in t[2]))
    return t


def py_side(ct):
    if ct is None:
        return ("prim", "void")
    if ct is ctypes.c_char_p or ct is _capi.owned_char_p:
        return ("ptr", ("prim", "char"))
    if ct is ctypes.c_void_p:
        return ("ptr", ("prim", "void"))
    if isinstance(ct, type) and issubclass(ct, ctypes._Pointer):
        return ("ptr", py_side(ct._type_))
    if isinstance(ct, type) and issubclass(ct, ctypes._CFuncPtr):
        return ("fn", py_side(ct._restype_), tuple(py_side(a) for a in ct._argtypes_))
    if isinstance(ct, type) and issubclass(ct, ctypes.Structure):
        return ("struct", ct.__name__)
    return ("prim", SIMPLE[ct._type_])


@pytest.fixture(scope="module")
def header():
    if DLPACK is None:
        pytest.skip("dlpack/dlpack.h not found")
    return read_headers(ROOT, DLPACK)


def test_every_function_matches(header):
    assert set(_capi.FUNCTIONS) == set(header.functions), \
        (set(header.functions) ^ set(_capi.FUNCTIONS))
    for name, (ret, params) in header.functions.items():
        restype, argtypes = _capi.FUNCTIONS[name]
        assert py_side(restype) == c_side(ret), name
        assert len(argtypes) == len(params), name
        for i, ((pname, ptype), at) in enumerate(zip(params, argtypes)):
            assert py_side(at) == c_side(ptype), "%s argument %d (%s)" % (name, i, pname)


def structs(header):
    return {n: f for n, f in header.structs.items() if f is not None}


def test_every_struct_matches(header):
    for name, fields in structs(header).items():
        cls = getattr(_capi, name, None)
        assert cls is not None, "struct %s is not declared" % name
        ours = [(n, py_side(t)) for n, t in cls._fields_]
        theirs = [(n, c_side(t)) for n, t in fields]
        assert ours == theirs, name


def test_constants_match(header):
    for name, value in header.constants.items():
        if name.startswith("DSZ_") and name not in ("DSZ_API",):
            assert getattr(_capi, name, None) == value, name
        elif hasattr(_capi, name):
            assert getattr(_capi, name) == value, name


def test_layout_matches_the_c_compiler(header, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <dszero.h>", "int main(void) {"]
    for name, fields in structs(header).items():
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (name, name))
        for f, _ in fields:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (name, f, name, f))
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", os.path.join(ROOT, "include"), "-I", os.path.dirname(os.path.dirname(DLPACK)),
                    str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    expected = dict(line.split() for line in out.splitlines())
    for name, fields in structs(header).items():
        cls = getattr(_capi, name)
        assert ctypes.sizeof(cls) == int(expected[name]), name
        for f, _ in fields:
            assert getattr(cls, f).offset == int(expected["%s.%s" % (name, f)]), "%s.%s" % (name, f)
