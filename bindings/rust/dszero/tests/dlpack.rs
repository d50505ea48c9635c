//! Parameters and gradients described by DLPack tensors (what a framework
//! hands over), next to the slice API: same result, and the library checks
//! dtype and placement.
mod common;
use dszero::sys::{DLDataType, DLDevice, DLTensor, kDLCPU, kDLCUDA, kDLFloat};
use dszero::{Engine, Param, Status};

// No clipping (DeepSpeed 0.19.3+ clips at 1.0 by default): plain SGD steps.
const SGD: &str = r#"{"train_micro_batch_size_per_gpu": 1, "gradient_clipping": 0,
    "optimizer": {"type": "SGD", "params": {"lr": 0.5}}}"#;

fn tensor(data: &mut [f32], shape: &mut [i64]) -> DLTensor {
    DLTensor {
        data: data.as_mut_ptr().cast(),
        device: DLDevice {
            device_type: kDLCPU,
            device_id: 0,
        },
        ndim: shape.len() as i32,
        dtype: DLDataType {
            code: kDLFloat as u8,
            bits: 32,
            lanes: 1,
        },
        shape: shape.as_mut_ptr(),
        strides: std::ptr::null_mut(),
        byte_offset: 0,
    }
}

#[test]
fn dlpack_parameter_and_gradient() {
    let mut w = vec![1.0f32; 6];
    let mut shape = [2i64, 3];
    let mut g = vec![0.5f32; 6];
    let mut gshape = [2i64, 3];
    let t = tensor(&mut w, &mut shape);
    let gt = tensor(&mut g, &mut gshape);
    {
        let mut eng = Engine::new(SGD, &common::quiet()).unwrap();
        // SAFETY: `w` outlives the engine and is not touched while it lives.
        let p = unsafe { Param::from_dlpack("w", &t) }.unwrap();
        assert_eq!(p.shape(), &[2, 3]);
        eng.register_params(vec![p]).unwrap();
        unsafe { eng.grad_ready_dlpack(0, &gt) }.unwrap();
        eng.backward().unwrap();
        assert!(eng.step().unwrap().stepped);
        assert_eq!(eng.param(0).unwrap().to_f32_vec(), vec![0.75f32; 6]);
    }
    assert_eq!(w, vec![0.75f32; 6]); // plain SGD: 1 - 0.5 * 0.5
}

#[test]
fn dlpack_device_and_dtype_are_checked() {
    let mut w = vec![0.0f32; 4];
    let mut shape = [4i64];
    let mut t = tensor(&mut w, &mut shape);
    t.device.device_type = kDLCUDA;
    let mut eng = Engine::new(SGD, &common::quiet()).unwrap();
    let err = eng
        .register_params(vec![unsafe { Param::from_dlpack("w", &t) }.unwrap()])
        .unwrap_err();
    assert!(
        matches!(err.status, Status::InvalidArgument | Status::Unsupported),
        "{err}"
    );
    assert!(err.message.contains("'w'"), "{err}");
    t.device.device_type = kDLCPU;
    t.dtype.bits = 64;
    let err = unsafe { Param::from_dlpack("w", &t) }.unwrap_err();
    assert_eq!(err.status, Status::Dtype);
}
