//! A tiny quadratic, 0.5 * |w - target|^2, trained to convergence through the
//! safe API in fp32, fp16 (with dynamic loss scaling) and bf16.
mod common;
use dszero::half::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};
use dszero::{Dtype, Engine, Param, ParamBuffer};

const N: usize = 12;

fn target(i: usize) -> f32 {
    (i as f32 * 0.37).sin() * 2.0
}

fn config(precision: &str) -> String {
    format!(
        r#"{{"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, {precision}
            "optimizer": {{"type": "AdamW", "params": {{"lr": 0.05, "weight_decay": 0.0}}}},
            "scheduler": {{"type": "WarmupDecayLR", "params": {{"warmup_num_steps": 5,
                "warmup_max_lr": 0.05, "total_num_steps": 400}}}}}}"#
    )
}

/// Trains the model whose current weights `read` returns; gives the final
/// max error and the number of skipped steps.
fn train(eng: &mut Engine<'_>, dtype: Dtype, steps: usize) -> (f32, i64) {
    let mut w = vec![0.0f32; N];
    let mut info = Default::default();
    for _ in 0..steps {
        for _micro in 0..2 {
            eng.read_param_f32(0, &mut w).unwrap();
            let mult = eng.loss_scale().unwrap() as f32;
            let g: Vec<f32> = (0..N).map(|i| (w[i] - target(i)) * mult).collect();
            match dtype {
                Dtype::F32 => eng.grad_ready(0, &g).unwrap(),
                Dtype::F16 => eng
                    .grad_ready(
                        0,
                        &g.iter().map(|&x| f32_to_f16_bits(x)).collect::<Vec<u16>>(),
                    )
                    .unwrap(),
                Dtype::Bf16 => eng
                    .grad_ready(
                        0,
                        &g.iter().map(|&x| f32_to_bf16_bits(x)).collect::<Vec<u16>>(),
                    )
                    .unwrap(),
            }
            eng.backward().unwrap();
            info = eng.step().unwrap();
        }
        assert!(info.boundary);
    }
    eng.read_param_f32(0, &mut w).unwrap();
    let err = (0..N).map(|i| (w[i] - target(i)).abs()).fold(0.0, f32::max);
    (err, info.skipped_steps)
}

#[test]
fn fp32_quadratic_converges_in_borrowed_memory() {
    let mut w = vec![0.0f32; N];
    {
        let mut eng = Engine::new(&config(""), &common::quiet()).unwrap();
        eng.register_params(vec![Param::f32("w", &[3, 4], &mut w).unwrap()])
            .unwrap();
        let (err, skipped) = train(&mut eng, Dtype::F32, 300);
        assert!(err < 1e-2, "max error {err}");
        assert_eq!(skipped, 0);
        let st = eng.state().unwrap();
        assert_eq!(
            (st.global_steps, st.micro_steps, st.n_params, st.n_elements),
            (300, 600, 1, N as i64)
        );
        assert_eq!(st.dtype, Some(Dtype::F32));
        assert_eq!(st.world_size, 1);
    }
    // The engine wrote the final weights into the host's own buffer.
    assert!((0..N).all(|i| (w[i] - target(i)).abs() < 1e-2));
}

#[test]
fn fp16_quadratic_converges_with_loss_scaling() {
    // Starting at -1, |w - target| reaches 3: at scale 2^16 (2^15 per
    // micro-batch) the fp16 gradient overflows, the first steps are skipped
    // and the scale comes down, as DeepSpeed does.
    let cfg =
        config(r#""fp16": {"enabled": true, "initial_scale_power": 16, "loss_scale_window": 50},"#);
    let mut eng = Engine::new(&cfg, &common::quiet()).unwrap();
    let buf = ParamBuffer::F16(vec![f32_to_f16_bits(-1.0); N]);
    eng.register_params(vec![Param::owned("w", &[N], buf).unwrap()])
        .unwrap();
    let (err, skipped) = train(&mut eng, Dtype::F16, 300);
    assert!(err < 2e-2, "max error {err}");
    assert!(
        skipped > 0,
        "expected overflow skips with an initial scale of 2^16"
    );
    match eng.param(0).unwrap() {
        dszero::ParamView::F16(bits) => {
            assert!((f16_bits_to_f32(bits[1]) - target(1)).abs() < 2e-2)
        }
        other => panic!("unexpected view {other:?}"),
    }
}

#[test]
fn bf16_quadratic_converges() {
    let cfg = config(r#""bf16": {"enabled": true},"#);
    let mut w = vec![f32_to_bf16_bits(0.0); N];
    let mut eng = Engine::new(&cfg, &common::quiet()).unwrap();
    eng.register_params(vec![Param::bf16("w", &[2, 6], &mut w).unwrap()])
        .unwrap();
    let (err, _) = train(&mut eng, Dtype::Bf16, 300);
    assert!(err < 5e-2, "max error {err}");
    assert!(eng.lr(0).unwrap() > 0.0);
    drop(eng);
    assert!((bf16_bits_to_f32(w[3]) - target(3)).abs() < 5e-2);
}

#[test]
fn stage3_trains_like_stage0_through_gathers() {
    // At ZeRO stage 3 the engine keeps the values itself: read_param_f32
    // gathers them. The same training as at stage 0 gives the same bits.
    let run = |stage: u32| {
        let cfg = config(&format!(
            r#""bf16": {{"enabled": true}}, "zero_optimization": {{"stage": {stage}}},"#
        ));
        let mut eng = Engine::new(&cfg, &common::quiet()).unwrap();
        let buf = ParamBuffer::Bf16(vec![f32_to_bf16_bits(0.5); N]);
        eng.register_params(vec![Param::owned("w", &[N], buf).unwrap()])
            .unwrap();
        train(&mut eng, Dtype::Bf16, 40);
        let mut w = vec![0.0f32; N];
        eng.read_param_f32(0, &mut w).unwrap();
        w
    };
    let (w0, w3) = (run(0), run(3));
    assert_eq!(w0, w3);
    assert!(w3.iter().any(|&x| x != 0.5), "stage 3 did not train");
}
