#!/usr/bin/python3
"""test_check_bindings.py -- proves check_bindings.py can fail.

Copies the header and both bindings into a scratch tree, checks that the
copy passes, then applies one mutation at a time (a missing function, a
wrong argument or return type, a wrong or missing struct field, a wrong
constant, a header that grew) and expects the checker to name the item.
Run: /usr/bin/python3 tests/bindings/test_check_bindings.py [REPO_ROOT]
"""
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_bindings  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
FILES = {
    'header': 'include/dszero.h',
    'rust': 'bindings/rust/dszero-sys/src/lib.rs',
    'rust_dlpack': 'bindings/rust/dszero-sys/src/dlpack.rs',
    'julia': 'bindings/julia/DSZero.jl/src/LibDSZero.jl',
}


class CheckerFails(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='check_bindings_')
        for rel in FILES.values():
            os.makedirs(os.path.dirname(os.path.join(self.tmp, rel)), exist_ok=True)
            shutil.copy(os.path.join(ROOT, rel), os.path.join(self.tmp, rel))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def mutate(self, which, old, new, count=1):
        path = os.path.join(self.tmp, FILES[which])
        text = open(path).read()
        self.assertIn(old, text, 'the mutation no longer applies: update this test')
        open(path, 'w').write(text.replace(old, new, count))

    def problems(self):
        problems, _ = check_bindings.check(self.tmp)
        return problems

    def expect(self, *needles):
        problems = self.problems()
        self.assertTrue(problems, 'the checker accepted a broken binding')
        text = '\n'.join(problems)
        for n in needles:
            self.assertIn(n, text)
        self.assertEqual(check_bindings.main([self.tmp]), 1)

    def test_unmodified_copy_passes(self):
        self.assertEqual(self.problems(), [])

    # ---- Rust ----
    def test_rust_missing_function(self):
        self.mutate('rust', '    pub fn dsz_backward(engine: *mut dsz_engine) -> dsz_status;\n', '')
        self.expect('rust: function dsz_backward is missing')

    def test_rust_wrong_argument_type(self):
        self.mutate('rust', 'pub fn dsz_get_lr(engine: *mut dsz_engine, group: usize,',
                    'pub fn dsz_get_lr(engine: *mut dsz_engine, group: u32,')
        self.expect('rust: dsz_get_lr(group): u32, the header usize')

    def test_rust_wrong_pointer_constness(self):
        self.mutate('rust', 'config: *const c_char,', 'config: *mut c_char,')
        self.expect('rust: dsz_init(config)')

    def test_rust_wrong_return_type(self):
        self.mutate('rust', 'pub fn dsz_features() -> u32;', 'pub fn dsz_features() -> i32;')
        self.expect('rust: dsz_features returns i32')

    def test_rust_wrong_struct_field(self):
        self.mutate('rust', '    pub log_level: i32,', '    pub log_level: i64,')
        self.expect('rust: dsz_init_options.log_level: i64, the header i32')

    def test_rust_missing_struct_field(self):
        self.mutate('rust', '    pub skipped_steps: i64,\n    pub grad_norm: f64,\n    pub lr: f64,',
                    '    pub grad_norm: f64,\n    pub lr: f64,')
        self.expect('rust: struct dsz_step_info fields')

    def test_rust_function_pointer_must_be_nullable(self):
        self.mutate('rust', 'pub type dsz_log_fn =\n    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;',
                    'pub type dsz_log_fn = unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void);')
        self.expect('rust: type dsz_log_fn', 'rust: dsz_init_options.log_fn')

    def test_rust_wrong_constant(self):
        self.mutate('rust', 'pub const DSZ_ERR_CUDA: dsz_status = 15;', 'pub const DSZ_ERR_CUDA: dsz_status = 16;')
        self.expect('rust: constant DSZ_ERR_CUDA = 16, the header 15')

    def test_rust_wrong_dlpack_field(self):
        self.mutate('rust_dlpack', '    pub lanes: u16,', '    pub lanes: u8,')
        self.expect('rust: DLDataType.lanes: u8, the header u16')

    def test_rust_struct_without_repr_c(self):
        self.mutate('rust', '#[repr(C)]\n#[derive(Debug, Copy, Clone)]\npub struct dsz_param {',
                    '#[derive(Debug, Copy, Clone)]\npub struct dsz_param {')
        self.expect('rust: struct dsz_param is not #[repr(C)]')

    # ---- Julia ----
    def test_julia_missing_function(self):
        self.mutate('julia', 'ccall(sym(:dsz_get_lr)', 'ccall(sym(:dsz_get_lr_typo)')
        self.expect('julia: function dsz_get_lr is missing', 'julia: function dsz_get_lr_typo is not in the header')

    def test_julia_wrong_argument_type(self):
        self.mutate('julia', '(Ptr{dsz_engine}, Csize_t, Ptr{Cdouble}), engine, group, lr)',
                    '(Ptr{dsz_engine}, Int32, Ptr{Cdouble}), engine, group, lr)')
        self.expect('julia: dsz_get_lr(group): Int32, the header usize')

    def test_julia_wrong_argument_count(self):
        self.mutate('julia', '(Ptr{dsz_engine}, Ptr{Cdouble}), engine, multiplier)',
                    '(Ptr{dsz_engine},), engine)')
        self.expect('julia: dsz_loss_scale takes 1 arguments, the header 2')

    def test_julia_wrong_return_type(self):
        self.mutate('julia', 'ccall(sym(:dsz_features), UInt32, ())', 'ccall(sym(:dsz_features), Int32, ())')
        self.expect('julia: dsz_features returns Int32')

    def test_julia_wrong_struct_field(self):
        self.mutate('julia', '    global_steps::Int64\n    micro_steps::Int64\n    skipped_steps::Int64\n    grad_norm',
                    '    global_steps::Int32\n    micro_steps::Int64\n    skipped_steps::Int64\n    grad_norm')
        self.expect('julia: dsz_step_info.global_steps: Int32, the header i64')

    def test_julia_missing_struct_field(self):
        self.mutate('julia', '    log_all_ranks::Int32\n', '')
        self.expect('julia: struct dsz_init_options fields')

    def test_julia_wrong_constant(self):
        self.mutate('julia', 'const DSZ_LOAD_MODULE_ONLY = UInt32(1) << 2', 'const DSZ_LOAD_MODULE_ONLY = UInt32(1) << 3')
        self.expect('julia: constant DSZ_LOAD_MODULE_ONLY = 8, the header 4')

    # ---- the header moves on ----
    def test_header_gains_a_function(self):
        self.mutate('header', '#ifdef __cplusplus\n}\n#endif',
                    'DSZ_API dsz_status dsz_barrier(dsz_engine *engine, int64_t timeout_ms);\n\n#ifdef __cplusplus\n}\n#endif')
        self.expect('rust: function dsz_barrier is missing', 'julia: function dsz_barrier is missing (no ccall)')

    def test_header_gains_a_struct_field(self):
        self.mutate('header', '    int32_t log_all_ranks; /* 0 (default): only rank 0 logs */',
                    '    int32_t log_all_ranks; /* 0 (default): only rank 0 logs */\n    uint64_t timeout_ns;')
        self.expect('rust: struct dsz_init_options fields', 'julia: struct dsz_init_options fields')

    def test_header_changes_a_parameter_type(self):
        self.mutate('header', 'DSZ_API dsz_status dsz_get_lr(dsz_engine *engine, size_t group, double *lr);',
                    'DSZ_API dsz_status dsz_get_lr(dsz_engine *engine, int32_t group, double *lr);')
        self.expect('rust: dsz_get_lr(group): usize, the header i32', 'julia: dsz_get_lr(group): Csize_t, the header i32')

    def test_header_gains_a_status(self):
        self.mutate('header', '    DSZ_ERR_CUDA = 15             /* a CUDA error */',
                    '    DSZ_ERR_CUDA = 15,            /* a CUDA error */\n    DSZ_ERR_NVME = 16')
        self.expect('rust: constant DSZ_ERR_NVME is missing', 'julia: constant DSZ_ERR_NVME is missing')


if __name__ == '__main__':
    if len(sys.argv) > 1 and not sys.argv[1].startswith('-'):
        ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
