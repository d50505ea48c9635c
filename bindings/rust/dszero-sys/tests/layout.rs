//! Layout test: every `#[repr(C)]` mirror of this crate has the size,
//! alignment and field offsets/sizes the C compiler gives the structs of
//! dszero.h and dlpack.h, and every constant has the header's value.
//!
//! One table below drives both sides: it generates a C program (compiled with
//! `cc`, no crates) that prints what the C compiler sees, and the Rust values
//! computed with `size_of`/`offset_of!`; the two listings must be equal. A
//! missing or reordered Rust field changes the struct size or a later offset.
use core::mem::{align_of, offset_of, size_of};
use dszero_sys::*;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// (C program text, Rust listing) built from one description.
#[derive(Default)]
struct Table {
    c: String,
    rust: String,
}

macro_rules! record {
    ($t:ident, $name:ident { $($f:ident),* $(,)? }) => {{
        writeln!($t.c, "    S({});", stringify!($name)).unwrap();
        writeln!($t.rust, "size {} {} {}", stringify!($name), size_of::<$name>(), align_of::<$name>()).unwrap();
        $(
            writeln!($t.c, "    F({}, {});", stringify!($name), stringify!($f)).unwrap();
            writeln!($t.rust, "field {}.{} {} {}", stringify!($name), stringify!($f),
                     offset_of!($name, $f), field_size(|s: &$name| &s.$f)).unwrap();
        )*
    }};
}

macro_rules! constants {
    ($t:ident, $($c:ident),* $(,)?) => {{
        $(
            writeln!($t.c, "    K({});", stringify!($c)).unwrap();
            writeln!($t.rust, "const {} {}", stringify!($c), $c as i64).unwrap();
        )*
    }};
}

fn table() -> Table {
    let mut t = Table::default();
    record!(
        t,
        dsz_init_options {
            size,
            reserved0,
            world_size,
            rank,
            local_rank,
            cpu_threads,
            auto_values,
            log_fn,
            log_user_data,
            log_level,
            log_all_ranks,
            mpi_comm
        }
    );
    record!(
        t,
        dsz_param {
            name,
            tensor,
            group,
            flags
        }
    );
    record!(
        t,
        dsz_param_group {
            name,
            set_fields,
            ep_size,
            lr,
            weight_decay
        }
    );
    record!(
        t,
        dsz_step_info {
            size,
            boundary,
            stepped,
            skipped,
            global_steps,
            micro_steps,
            skipped_steps,
            grad_norm,
            lr,
            loss_scale,
            comm_wait_ms
        }
    );
    record!(
        t,
        dsz_engine_state {
            size,
            world_size,
            rank,
            zero_stage,
            dtype_code,
            dtype_bits,
            train_batch_size,
            micro_batch_size,
            gradient_accumulation_steps,
            n_params,
            n_groups,
            reserved0,
            n_elements,
            global_steps,
            micro_steps,
            skipped_steps,
            global_samples,
            loss_scale,
            grad_norm
        }
    );
    record!(
        t,
        dsz_memory_stats {
            size,
            reserved0,
            host_param_bytes,
            master_bytes,
            optimizer_bytes,
            grad_bytes,
            comm_buffer_bytes,
            gathered_bytes,
            total_bytes,
            peak_total_bytes,
            comm_elements,
            collectives
        }
    );
    record!(
        t,
        DLDevice {
            device_type,
            device_id
        }
    );
    record!(t, DLDataType { code, bits, lanes });
    record!(
        t,
        DLTensor {
            data,
            device,
            ndim,
            dtype,
            shape,
            strides,
            byte_offset
        }
    );
    record!(
        t,
        DLManagedTensor {
            dl_tensor,
            manager_ctx,
            deleter
        }
    );
    // Scalar typedefs and enums: their size must match too.
    for (name, size) in [
        ("dsz_status", size_of::<dsz_status>()),
        ("dsz_log_fn", size_of::<dsz_log_fn>()),
        ("DLDeviceType", size_of::<DLDeviceType>()),
        ("DLDataTypeCode", size_of::<DLDataTypeCode>()),
    ] {
        writeln!(t.c, "    T({name});").unwrap();
        writeln!(t.rust, "type {name} {size}").unwrap();
    }
    constants!(
        t,
        DSZ_VERSION_MAJOR,
        DSZ_VERSION_MINOR,
        DSZ_VERSION_PATCH,
        DSZ_VERSION_NUMBER,
        DSZ_FEATURE_CUDA,
        DSZ_FEATURE_NCCL,
        DSZ_FEATURE_MPI,
        DSZ_FEATURE_AIO,
        DSZ_FEATURE_AVX2,
        DSZ_FEATURE_AVX512,
        DSZ_OK,
        DSZ_ERR_INVALID_ARGUMENT,
        DSZ_ERR_CONFIG,
        DSZ_ERR_DTYPE,
        DSZ_ERR_SHAPE,
        DSZ_ERR_STATE,
        DSZ_ERR_IO,
        DSZ_ERR_CHECKPOINT,
        DSZ_ERR_OUT_OF_MEMORY,
        DSZ_ERR_NOT_FOUND,
        DSZ_ERR_UNSUPPORTED,
        DSZ_ERR_COMM,
        DSZ_ERR_TIMEOUT,
        DSZ_ERR_LOSS_SCALE,
        DSZ_ERR_INTERNAL,
        DSZ_ERR_CUDA,
        DSZ_LOG_DEBUG,
        DSZ_LOG_INFO,
        DSZ_LOG_WARNING,
        DSZ_LOG_ERROR,
        DSZ_GROUP_LR,
        DSZ_GROUP_WEIGHT_DECAY,
        DSZ_GROUP_EXPERT,
        DSZ_LOAD_SKIP_OPTIMIZER_STATES,
        DSZ_LOAD_SKIP_LR_SCHEDULER,
        DSZ_LOAD_MODULE_ONLY,
        DLPACK_VERSION,
        kDLCPU,
        kDLCUDA,
        kDLCUDAHost,
        kDLOpenCL,
        kDLVulkan,
        kDLMetal,
        kDLVPI,
        kDLROCM,
        kDLROCMHost,
        kDLExtDev,
        kDLCUDAManaged,
        kDLInt,
        kDLUInt,
        kDLFloat,
        kDLOpaqueHandle,
        kDLBfloat,
        kDLComplex
    );
    // ---- mixture of experts ----
    record!(
        t,
        dsz_moe_gate_config {
            size,
            k,
            capacity_factor,
            eval_capacity_factor,
            min_capacity,
            training,
            drop_tokens,
            use_rts,
            noisy_gate_policy,
            top2_2nd_expert_sampling,
            drop_policy,
            tensor_parallel_size,
            seed
        }
    );
    record!(
        t,
        dsz_moe_routing_info {
            size,
            k,
            tokens,
            experts,
            capacity,
            dropped,
            l_aux
        }
    );
    constants!(
        t,
        DSZ_MOE_NOISE_NONE,
        DSZ_MOE_NOISE_JITTER,
        DSZ_MOE_NOISE_RSAMPLE,
        DSZ_MOE_DROP_PROBS,
        DSZ_MOE_DROP_POSITION
    );
    // ---- pipeline parallelism ----
    record!(
        t,
        dsz_pipe_instr {
            kind,
            step,
            buffer_id,
            micro_batch
        }
    );
    record!(
        t,
        dsz_pipe_options {
            size,
            stages,
            load_micro_batch,
            forward,
            backward,
            user_data
        }
    );
    record!(
        t,
        dsz_pipe_info {
            size,
            stages,
            stage_id,
            data_parallel_size,
            data_parallel_rank,
            world_size,
            rank,
            micro_batches,
            n_buffers,
            n_steps
        }
    );
    record!(
        t,
        dsz_pipe_batch_info {
            size,
            stepped,
            skipped,
            reserved0,
            loss,
            grad_norm,
            global_steps,
            schedule_ms,
            compute_ms,
            transfer_wait_ms,
            step_ms
        }
    );
    for (name, size) in [
        ("dsz_pipe_load_fn", size_of::<dsz_pipe_load_fn>()),
        ("dsz_pipe_forward_fn", size_of::<dsz_pipe_forward_fn>()),
        ("dsz_pipe_backward_fn", size_of::<dsz_pipe_backward_fn>()),
    ] {
        writeln!(t.c, "    T({name});").unwrap();
        writeln!(t.rust, "type {name} {size}").unwrap();
    }
    constants!(
        t,
        DSZ_ERR_CALLBACK,
        DSZ_PIPE_LOAD_MICRO_BATCH,
        DSZ_PIPE_FORWARD_PASS,
        DSZ_PIPE_BACKWARD_PASS,
        DSZ_PIPE_SEND_ACTIVATION,
        DSZ_PIPE_RECV_ACTIVATION,
        DSZ_PIPE_SEND_GRAD,
        DSZ_PIPE_RECV_GRAD,
        DSZ_PIPE_REDUCE_TIED_GRADS,
        DSZ_PIPE_REDUCE_GRADS,
        DSZ_PIPE_OPTIMIZER_STEP,
        DSZ_PIPE_SCHEDULE_TRAIN,
        DSZ_PIPE_SCHEDULE_INFERENCE
    );
    t
}

const PRELUDE: &str = r#"#include <stddef.h>
#include <stdio.h>
#include <dszero.h>
#define S(T) printf("size %s %zu %zu\n", #T, sizeof(T), _Alignof(T))
#define F(T, f) printf("field %s.%s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))
#define T(T) printf("type %s %zu\n", #T, sizeof(T))
#define K(c) printf("const %s %lld\n", #c, (long long)(c))
int main(void) {
"#;

fn c_listing(program: &str) -> String {
    let dir = std::env::temp_dir().join(format!("dszero_sys_layout_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, program).unwrap();
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.arg("-std=c11").arg("-Wall").arg("-Werror");
    let inc = env!("DSZERO_INCLUDE_DIR");
    assert!(
        !inc.is_empty(),
        "dszero.h not found at build time: set DSZERO_INCLUDE_DIR"
    );
    cc.arg(format!("-I{inc}"));
    if let Some(dl) = std::env::var_os("DLPACK_INCLUDE_DIR") {
        cc.arg(format!("-I{}", PathBuf::from(dl).display()));
    }
    let status = cc
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("cannot run the C compiler (cc)");
    assert!(status.success(), "compiling {} failed", src.display());
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn structs_and_constants_match_the_c_compiler() {
    let t = table();
    let program = format!("{PRELUDE}{}    return 0;\n}}\n", t.c);
    let c = c_listing(&program);
    let mut bad = Vec::new();
    for (cl, rl) in c.lines().zip(t.rust.lines()) {
        if cl != rl {
            bad.push(format!("  C:    {cl}\n  Rust: {rl}"));
        }
    }
    assert_eq!(c.lines().count(), t.rust.lines().count());
    assert!(bad.is_empty(), "layout mismatches:\n{}", bad.join("\n"));
}
