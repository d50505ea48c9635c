//! Failures come back as `Error { status, message }` carrying the library's
//! own message (which names the culprit), or this crate's for checks it
//! must make itself (a gradient of the wrong length).
mod common;
use dszero::half::f32_to_f16_bits;
use dszero::{Engine, Error, Param, Status};

const ADAM: &str = r#"{"train_micro_batch_size_per_gpu": 2, "optimizer": {"type": "AdamW"}}"#;
const ADAM_FP16: &str = r#"{"train_micro_batch_size_per_gpu": 2, "fp16": {"enabled": true}, "optimizer": {"type": "AdamW"}}"#;

#[test]
fn bad_config_names_the_key() {
    let cfg = r#"{"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": "four"}}"#;
    let err = Engine::new(cfg, &common::quiet()).unwrap_err();
    assert_eq!(err.status, Status::Config);
    assert!(err.message.contains("zero_optimization.stage"), "{err}");
    // Display: the message, then the status's description.
    assert_eq!(
        err.to_string(),
        format!("{} ({})", err.message, Status::Config.description())
    );
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().contains("zero_optimization.stage"));
}

#[test]
fn missing_config_file_is_not_found_and_named() {
    let err = Engine::new("/nonexistent/ds_config.json", &common::quiet()).unwrap_err();
    assert_eq!(err.status, Status::NotFound);
    assert!(err.message.contains("/nonexistent/ds_config.json"), "{err}");
    assert_eq!(
        dszero::config_resolve("   ", &common::quiet())
            .unwrap_err()
            .status,
        Status::Config
    );
}

#[test]
fn parameter_dtype_mismatch() {
    let mut w = vec![0.0f32; 16];
    let mut h = vec![f32_to_f16_bits(0.5); 16];
    let mut eng = Engine::new(ADAM_FP16, &common::quiet()).unwrap();
    let err = eng
        .register_params(vec![Param::f32("fc.weight", &[4, 4], &mut w).unwrap()])
        .unwrap_err();
    assert_eq!(err.status, Status::Dtype);
    assert!(
        err.message.contains("parameter 'fc.weight' is float32"),
        "{err}"
    );
    // The engine is unchanged: a correct registration still works.
    eng.register_params(vec![Param::f16("fc.weight", &[4, 4], &mut h).unwrap()])
        .unwrap();
    assert_eq!(eng.param_index("fc.weight").unwrap(), 0);
    assert_eq!(
        eng.param_index("nope").unwrap_err().status,
        Status::NotFound
    );
}

#[test]
fn gradient_dtype_and_length_mismatch() {
    let mut w = vec![0.0f32; 6];
    let mut eng = Engine::new(ADAM, &common::quiet()).unwrap();
    eng.register_params(vec![Param::f32("w", &[2, 3], &mut w).unwrap()])
        .unwrap();
    let err = eng.grad_ready(0, &[0u16; 6]).unwrap_err();
    assert_eq!(err.status, Status::Dtype);
    assert!(err.message.contains("gradient of 'w' is float16"), "{err}");
    let err = eng.grad_ready(0, &[0.0f32; 5]).unwrap_err();
    assert_eq!(err.status, Status::Shape);
    assert!(err.message.contains("'w'"), "{err}");
    assert_eq!(
        eng.grad_ready(7, &[0.0f32; 6]).unwrap_err().status,
        Status::InvalidArgument
    );
}

#[test]
fn calls_out_of_order_are_state_errors() {
    let mut w = vec![0.0f32; 4];
    let mut eng = Engine::new(ADAM, &common::quiet()).unwrap();
    eng.register_params(vec![Param::f32("w", &[4], &mut w).unwrap()])
        .unwrap();
    assert_eq!(eng.step().unwrap_err().status, Status::State);
    eng.grad_ready(0, &[1.0f32; 4]).unwrap();
    let err: Error = eng.grad_ready(0, &[1.0f32; 4]).unwrap_err();
    assert_eq!(err.status, Status::State);
}

#[test]
fn shape_mismatch_is_refused_before_the_library() {
    let mut w = vec![0.0f32; 5];
    let err = Param::f32("w", &[2, 3], &mut w).unwrap_err();
    assert_eq!(err.status, Status::Shape);
    let err = Param::f32("w\0x", &[5], &mut w).unwrap_err();
    assert_eq!(err.status, Status::InvalidArgument);
}

#[test]
fn status_numbers_are_the_headers() {
    assert_eq!(Status::from_raw(0), None);
    assert_eq!(Status::from_raw(2), Some(Status::Config));
    assert_eq!(Status::from_raw(99), Some(Status::Unknown(99)));
    assert_eq!(Status::Cuda.code(), 15);
    assert_eq!(Status::Config.description(), "invalid configuration");
}
