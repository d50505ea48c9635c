//! train_mlp (Rust) -- examples/c/train_mlp.c through the safe `dszero` crate.
//!
//! The host owns the model (a 2-layer MLP, 32-128-8, softmax cross-entropy),
//! computes forward and backward itself in f32 on weights stored in the
//! config's dtype, and hands each gradient to dszero, which does the rest:
//! loss scaling, accumulation, clipping, the optimizer, the LR schedule.
//! Labels come from a fixed random "teacher", so the loss can fall far below
//! ln(8). Same random streams and arithmetic order as the C example: a
//! single-rank run prints the same numbers.
//!
//!   train_mlp CONFIG.json [STEPS]
//!
//! The world size and rank come from the library (`Engine::state`). Under
//! `mpirun -np N` every rank builds the same teacher and initial weights and
//! draws its own micro-batches; this needs dszero's MPI communicator, and a
//! build without it refuses a multi-rank launch with a clear error.
// Index loops on purpose: they mirror the C example line by line.
#![allow(clippy::needless_range_loop)]

use dszero::half::{f32_to_bf16_bits, f32_to_f16_bits};
use dszero::{Dtype, Engine, InitOptions, Param, ParamBuffer};
use std::process::ExitCode;

const IN: usize = 32;
const HID: usize = 128;
const OUT: usize = 8;

/// xorshift64*, uniform in [-1, 1) -- the C example's generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(2685821657736338717) >> 40) as f32 / 8388608.0 - 1.0
    }
}

/// The initial values in the model dtype, as a buffer the engine will own.
fn buffer(dtype: Dtype, values: &[f32]) -> ParamBuffer {
    match dtype {
        Dtype::F32 => ParamBuffer::F32(values.to_vec()),
        Dtype::F16 => ParamBuffer::F16(values.iter().map(|&v| f32_to_f16_bits(v)).collect()),
        Dtype::Bf16 => ParamBuffer::Bf16(values.iter().map(|&v| f32_to_bf16_bits(v)).collect()),
    }
}

/// C's "%.3e": at least two exponent digits, with a sign.
fn c_exp(x: f64) -> String {
    let s = format!("{x:.3e}");
    let (mant, exp) = s.split_once('e').unwrap();
    let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
    format!("{mant}e{sign}{digits:0>2}")
}

/// A layer tensor: its fp32 working copy and gradient.
struct Tensor {
    name: &'static str,
    shape: Vec<usize>,
    work: Vec<f32>,
    grad: Vec<f32>,
}

impl Tensor {
    fn new(name: &'static str, shape: &[usize], scale: f32, rng: &mut Rng) -> Tensor {
        let n = shape.iter().product();
        let work = (0..n).map(|_| scale * rng.next()).collect();
        Tensor {
            name,
            shape: shape.to_vec(),
            work,
            grad: vec![0.0; n],
        }
    }
}

/// Forward and backward of mean cross-entropy; gradients scaled by `mult`.
fn forward_backward(t: &mut [Tensor; 4], x: &[f32], y: &[usize], mult: f64) -> f32 {
    let [w1, b1, w2, b2] = t;
    let batch = y.len();
    let mut h = vec![0.0f32; batch * HID];
    let mut dh = vec![0.0f32; batch * HID];
    let mut loss = 0.0f32;
    for p in [&mut *w1, &mut *b1, &mut *w2, &mut *b2] {
        p.grad.fill(0.0);
    }
    for b in 0..batch {
        let xb = &x[b * IN..(b + 1) * IN];
        let hb = &mut h[b * HID..(b + 1) * HID];
        let (mut logits, mut p) = ([0.0f32; OUT], [0.0f32; OUT]);
        let (mut mx, mut z) = (-1e30f32, 0.0f32);
        for j in 0..HID {
            let mut v = b1.work[j];
            for i in 0..IN {
                v += w1.work[j * IN + i] * xb[i];
            }
            hb[j] = if v > 0.0 { v } else { 0.0 };
        }
        for o in 0..OUT {
            let mut v = b2.work[o];
            for j in 0..HID {
                v += w2.work[o * HID + j] * hb[j];
            }
            logits[o] = v;
            if v > mx {
                mx = v;
            }
        }
        for o in 0..OUT {
            p[o] = (logits[o] - mx).exp();
            z += p[o];
        }
        loss += -(logits[y[b]] - mx - z.ln()) / batch as f32;
        for o in 0..OUT {
            let d = (p[o] / z - if o == y[b] { 1.0 } else { 0.0 }) / batch as f32 * mult as f32;
            b2.grad[o] += d;
            for j in 0..HID {
                w2.grad[o * HID + j] += d * hb[j];
                dh[b * HID + j] += d * w2.work[o * HID + j];
            }
        }
        for j in 0..HID {
            let d = if hb[j] > 0.0 { dh[b * HID + j] } else { 0.0 };
            b1.grad[j] += d;
            for i in 0..IN {
                w1.grad[j * IN + i] += d * xb[i];
            }
        }
    }
    loss
}

fn make_batch(rng: &mut Rng, teacher: &[f32], x: &mut [f32], y: &mut [usize]) {
    for (b, label) in y.iter_mut().enumerate() {
        let xb = &mut x[b * IN..(b + 1) * IN];
        xb.iter_mut().for_each(|v| *v = rng.next());
        let (mut best, mut bv) = (0, -1e30f32);
        for o in 0..OUT {
            let mut v = 0.0f32;
            for i in 0..IN {
                v += teacher[o * IN + i] * xb[i];
            }
            if v > bv {
                bv = v;
                best = o;
            }
        }
        *label = best;
    }
}

fn run(config: &str, steps: u64) -> dszero::Result<bool> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let teacher: Vec<f32> = (0..OUT * IN).map(|_| rng.next()).collect();

    let mut eng = Engine::new(config, &InitOptions::default())?;
    let st = eng.state()?;
    let dtype = st
        .dtype
        .expect("the library reports a model dtype this example knows");
    let (batch, gas) = (st.micro_batch_size as usize, st.gradient_accumulation_steps);

    let mut t = [
        Tensor::new("fc1.weight", &[HID, IN], 0.25, &mut rng),
        Tensor::new("fc1.bias", &[HID], 0.0, &mut rng),
        Tensor::new("fc2.weight", &[OUT, HID], 0.1, &mut rng),
        Tensor::new("fc2.bias", &[OUT], 0.0, &mut rng),
    ];
    // Every rank draws different micro-batches (rank 0 keeps the C stream).
    rng.0 ^= (st.rank as u64).wrapping_mul(0xd1b54a32d192ed03);

    // The engine owns the parameter memory (the model dtype is known only
    // now); the host reads the updated weights back after each step.
    let params = t
        .iter()
        .map(|p| Param::owned(p.name, &p.shape, buffer(dtype, &p.work)))
        .collect::<Result<_, _>>()?;
    eng.register_params(params)?;
    for (i, p) in t.iter_mut().enumerate() {
        eng.read_param_f32(i, &mut p.work)?;
    }

    let rank0 = st.rank == 0;
    let label = match dtype {
        Dtype::F32 => "fp32",
        Dtype::F16 => "fp16",
        Dtype::Bf16 => "bf16",
    };
    if rank0 {
        println!(
            "dszero {}: MLP {IN}-{HID}-{OUT}, {label}, micro batch {batch} x {gas} accumulation, rank {} of {}",
            dszero::version(),
            st.rank,
            st.world_size
        );
    }
    let mut x = vec![0.0f32; batch * IN];
    let mut y = vec![0usize; batch];
    let mut grad16 = Vec::<u16>::new();
    let (mut first, mut recent) = (0.0f64, 0.0f64);
    for step in 1..=steps {
        let mut window_loss = 0.0f64;
        let mut info = dszero::StepInfo::default();
        for _ in 0..gas {
            let mult = eng.loss_scale()?;
            make_batch(&mut rng, &teacher, &mut x, &mut y);
            window_loss += (forward_backward(&mut t, &x, &y, mult) / gas as f32) as f64;
            for (i, p) in t.iter().enumerate() {
                match dtype {
                    Dtype::F32 => eng.grad_ready(i, &p.grad)?,
                    _ => {
                        let enc = if dtype == Dtype::Bf16 {
                            f32_to_bf16_bits
                        } else {
                            f32_to_f16_bits
                        };
                        grad16.clear();
                        grad16.extend(p.grad.iter().map(|&g| enc(g)));
                        eng.grad_ready(i, &grad16)?;
                    }
                }
            }
            eng.backward()?;
            info = eng.step()?;
        }
        for (i, p) in t.iter_mut().enumerate() {
            eng.read_param_f32(i, &mut p.work)?;
        }
        if step == 1 {
            first = window_loss;
        }
        recent = if step == 1 {
            window_loss
        } else {
            0.9 * recent + 0.1 * window_loss
        };
        if rank0 && (step == 1 || step % 25 == 0 || info.skipped) {
            println!(
                "step {step:4}  loss {window_loss:.4}  lr {}  loss_scale {}{}",
                c_exp(info.lr),
                info.loss_scale,
                if info.skipped {
                    "  (overflow: step skipped)"
                } else {
                    ""
                }
            );
        }
    }
    if rank0 {
        println!("loss: first {first:.4}, last (running mean) {recent:.4}");
    }
    eng.close()?;
    Ok(recent < first * 0.5)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: {} CONFIG.json [STEPS]", args[0]);
        return ExitCode::from(2);
    }
    let steps = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(300);
    match run(&args[1], steps) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("train_mlp: {e}");
            ExitCode::FAILURE
        }
    }
}
