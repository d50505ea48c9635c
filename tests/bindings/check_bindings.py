#!/usr/bin/python3
"""check_bindings.py -- every binding declares exactly what dszero.h declares.

Julia cannot run on the build machines, and a Rust declaration that drifts
from the header still compiles, so this check reads the sources themselves:

  * C: include/dszero.h and DLPack's dlpack.h (functions with return and
    parameter types, structs with their fields in order, typedefs, #define
    and enum constants with their values);
  * Rust: bindings/rust/dszero-sys/src/*.rs (`extern "C"` fns, `#[repr(C)]`
    structs, `pub type` aliases, `pub const`s);
  * Julia: bindings/julia/DSZero.jl/src/LibDSZero.jl (every `ccall`: function,
    return type, argument type tuple; `struct`s; `const` aliases and values),

maps each C type to what each language must say, and prints every missing,
extra or mismatched item; the exit status is 1 if there is any. Mapping:

  C              Rust                          Julia
  int32_t ...    i32, u32, i64, u64, u8, u16   Int32, UInt32, Int64, ... (Cint, Cuint)
  int            c_int (or i32)                Cint (or Int32)
  size_t         usize                         Csize_t (or UInt)
  double/float   f64/f32                       Cdouble/Float64, Cfloat/Float32
  char           c_char                        Cchar (UInt8/Int8 behind a pointer)
  T * / const T* *mut T / *const T             Ptr{T} (Ref{T} as a ccall argument)
  const char *   *const c_char                 Cstring or Ptr{Cchar}/Ptr{UInt8}
  void *         *mut c_void                   Ptr{Cvoid}
  fn pointer     Option<unsafe extern "C" fn>  Ptr{Cvoid}
  enum type      its unsigned int alias        its Cuint alias
  typedef alias  resolved on both sides (dsz_status -> i32 / Int32)

The work is split: cheader.py reads the headers, rust_side.py and
julia_side.py read and compare the bindings, textutil.py holds what they
share; test_check_bindings.py proves each kind of drift is caught.

Usage: check_bindings.py REPO_ROOT [--dlpack PATH/dlpack.h]
Only the Python standard library is used.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cheader import read_headers  # noqa: E402
from julia_side import check_julia, read_julia  # noqa: E402
from rust_side import check_rust, read_rust  # noqa: E402


def find_dlpack(arg):
    for cand in [arg, os.environ.get('DLPACK_HEADER'), '/usr/include/dlpack/dlpack.h',
                 '/usr/local/include/dlpack/dlpack.h']:
        if cand and os.path.isfile(cand):
            return cand
    return None


def check(root, dlpack=None):
    """Returns (problems, summary) for the repository at `root`."""
    dl = find_dlpack(dlpack)
    if dl is None:
        return ['dlpack/dlpack.h not found (pass --dlpack PATH)'], ''
    h = read_headers(root, dl)
    problems = []
    check_rust(h, read_rust(os.path.join(root, 'bindings', 'rust', 'dszero-sys', 'src')), problems)
    check_julia(h, read_julia(os.path.join(root, 'bindings', 'julia', 'DSZero.jl', 'src', 'LibDSZero.jl')), problems)
    summary = '%d functions, %d structs, %d types, %d constants' % (
        len(h.functions), len(h.structs), len(h.typedefs) + len(h.enums), len(h.constants))
    return problems, summary


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('root', help='repository root')
    ap.add_argument('--dlpack', help='path of dlpack/dlpack.h')
    args = ap.parse_args(argv)
    problems, summary = check(args.root, args.dlpack)
    for line in problems:
        print(line)
    if problems:
        print('check_bindings: %d problem(s): the bindings do not match dszero.h' % len(problems))
        return 1
    print('check_bindings: Rust and Julia bindings match dszero.h and dlpack.h (%s)' % summary)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
