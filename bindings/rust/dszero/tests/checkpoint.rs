//! save/load round trip through the safe API: a fresh engine that loads a
//! checkpoint gets the weights, the client state, and continues bitwise like
//! the engine that saved it.
mod common;
use dszero::{Engine, LoadFlags, Param, Status};

const CFG: &str = r#"{"train_micro_batch_size_per_gpu": 1,
    "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
    "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 10, "warmup_max_lr": 0.01}}}"#;

fn micro_step(eng: &mut Engine<'_>, k: usize) {
    let g: Vec<f32> = (0..6).map(|i| ((k * 7 + i) as f32 * 0.3).cos()).collect();
    eng.grad_ready(0, &g).unwrap();
    eng.backward().unwrap();
    eng.step().unwrap();
}

#[test]
fn save_load_round_trip() {
    let dir = common::TempDir::new("ckpt");
    let mut a = vec![0.25f32; 6];
    let mut b = vec![-1.0f32; 6];
    let mut src = Engine::new(CFG, &common::quiet()).unwrap();
    src.register_params(vec![Param::f32("layer.w", &[2, 3], &mut a).unwrap()])
        .unwrap();
    for k in 0..5 {
        micro_step(&mut src, k);
    }
    src.save(&dir.0, Some("mid"), Some(r#"{"epoch": 3}"#))
        .unwrap();
    assert!(dir.0.join("mid").is_dir());

    let mut dst = Engine::new(CFG, &common::quiet()).unwrap();
    dst.register_params(vec![Param::f32("layer.w", &[2, 3], &mut b).unwrap()])
        .unwrap();
    let client = dst.load(&dir.0, None, LoadFlags::ALL).unwrap();
    assert_eq!(client.replace(' ', ""), r#"{"epoch":3}"#);
    assert_eq!(
        dst.param(0).unwrap().to_f32_vec(),
        src.param(0).unwrap().to_f32_vec()
    );
    assert_eq!(dst.state().unwrap().global_steps, 5);
    assert_eq!(dst.lr(0).unwrap(), src.lr(0).unwrap());

    for k in 5..9 {
        micro_step(&mut src, k);
        micro_step(&mut dst, k);
    }
    let (wa, wb) = (
        src.param(0).unwrap().to_f32_vec(),
        dst.param(0).unwrap().to_f32_vec(),
    );
    assert!(
        wa.iter().zip(&wb).all(|(x, y)| x.to_bits() == y.to_bits()),
        "{wa:?} vs {wb:?}"
    );
    drop((src, dst));
    assert_ne!(a, vec![0.25f32; 6]);
    assert_eq!(a, b);
}

#[test]
fn load_errors_leave_the_engine_usable() {
    let dir = common::TempDir::new("ckpt_missing");
    let mut w = vec![0.5f32; 6];
    let mut eng = Engine::new(CFG, &common::quiet()).unwrap();
    eng.register_params(vec![Param::f32("layer.w", &[2, 3], &mut w).unwrap()])
        .unwrap();
    let err = eng
        .load(&dir.0, Some("nope"), LoadFlags::MODULE_ONLY)
        .unwrap_err();
    assert!(
        matches!(
            err.status,
            Status::NotFound | Status::Io | Status::Checkpoint
        ),
        "{err}"
    );
    assert!(!err.message.is_empty());
    assert_eq!(eng.param(0).unwrap().to_f32_vec(), vec![0.5f32; 6]);
    micro_step(&mut eng, 0);
}

/// consolidate writes a safetensors file whose data is the engine's weights.
#[test]
fn consolidate_to_safetensors() {
    let dir = common::TempDir::new("consolidate");
    let mut a = vec![0.25f32; 6];
    let mut eng = Engine::new(CFG, &common::quiet()).unwrap();
    eng.register_params(vec![Param::f32("layer.w", &[2, 3], &mut a).unwrap()])
        .unwrap();
    micro_step(&mut eng, 0);
    eng.save(&dir.0, Some("t"), None).unwrap();
    let out = dir.0.join("model.safetensors");
    dszero::consolidate(&dir.0, None, &out, dszero::Dtype::F32).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.contains(r#""layer.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}"#));
    let data: Vec<f32> = bytes[8 + n..]
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(data, eng.param(0).unwrap().to_f32_vec());
    let err = dszero::consolidate(&dir.0, Some("missing"), &out, dszero::Dtype::F32).unwrap_err();
    assert_eq!(err.status, Status::NotFound);
}
