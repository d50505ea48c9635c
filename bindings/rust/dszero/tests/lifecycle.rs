//! Ownership: an engine is freed exactly once (drop or close), keeps its log
//! closure alive while it lives and releases it after; a panicking log
//! closure does not cross into C; owned buffers live in the engine.
mod common;
use dszero::{Engine, InitOptions, LogLevel, Param, ParamBuffer, Status, sys};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ADAM: &str = r#"{"train_micro_batch_size_per_gpu": 1, "optimizer": {"type": "AdamW", "params": {"lr": 0.1}}}"#;

fn live(raw: *mut sys::dsz_engine) -> bool {
    // A freed handle is refused with "not a live engine" and left alone.
    let mut st = sys::dsz_engine_state::default();
    unsafe { sys::dsz_engine_state_init(&mut st, size_of::<sys::dsz_engine_state>()) };
    unsafe { sys::dsz_get_state(raw, &mut st) == sys::DSZ_OK }
}

#[test]
fn drop_frees_once() {
    let eng = Engine::new(ADAM, &common::quiet()).unwrap();
    let raw = eng.as_raw();
    assert!(live(raw));
    drop(eng);
    assert!(!live(raw));
    // A second free is refused by the library, proving drop freed it.
    assert_eq!(
        unsafe { sys::dsz_engine_free(raw) },
        sys::DSZ_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn close_reports_and_frees_once() {
    let mut w = vec![1.0f32; 3];
    let mut eng = Engine::new(ADAM, &common::quiet()).unwrap();
    eng.register_params(vec![Param::f32("w", &[3], &mut w).unwrap()])
        .unwrap();
    let raw = eng.as_raw();
    eng.close().unwrap();
    assert!(!live(raw));
    assert_eq!(w, vec![1.0; 3]);
}

#[test]
fn many_engines_come_and_go() {
    for _ in 0..200 {
        let mut eng = Engine::new(ADAM, &common::quiet()).unwrap();
        let buf = ParamBuffer::F32(vec![0.5; 64]);
        eng.register_params(vec![Param::owned("w", &[8, 8], buf).unwrap()])
            .unwrap();
    }
}

#[test]
fn log_closure_lives_as_long_as_the_engine() {
    let seen = Arc::new(Mutex::new(Vec::<(LogLevel, String)>::new()));
    let sink = Arc::clone(&seen);
    let opts = InitOptions::new()
        .log(move |level, msg| sink.lock().unwrap().push((level, msg.to_owned())));
    let eng = Engine::new(ADAM, &opts).unwrap();
    drop(opts);
    assert_eq!(
        Arc::strong_count(&seen),
        2,
        "the engine must hold the closure"
    );
    {
        let msgs = seen.lock().unwrap();
        assert!(
            msgs.iter()
                .any(|(l, m)| *l == LogLevel::Info && m.contains("dszero")),
            "{msgs:?}"
        );
    }
    drop(eng);
    assert_eq!(
        Arc::strong_count(&seen),
        1,
        "dropping the engine releases the closure"
    );
}

#[test]
fn panicking_log_closure_does_not_unwind_into_c() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let opts = InitOptions::new().cpu_threads(1).log(move |_, _| {
        c.fetch_add(1, Ordering::SeqCst);
        panic!("logger failure");
    });
    let eng = Engine::new(ADAM, &opts).expect("engine creation survives a panicking logger");
    assert!(calls.load(Ordering::SeqCst) >= 1);
    drop(eng);
}

#[test]
fn owned_buffers_are_updated_in_place() {
    let mut eng = Engine::new(ADAM, &common::quiet()).unwrap();
    eng.register_params(vec![
        Param::owned("w", &[4], ParamBuffer::F32(vec![1.0; 4])).unwrap(),
    ])
    .unwrap();
    eng.grad_ready(0, &[1.0f32; 4]).unwrap();
    eng.backward().unwrap();
    let info = eng.step().unwrap();
    assert!(info.stepped && info.boundary && !info.skipped);
    let w = eng.param(0).unwrap().to_f32_vec();
    assert!(w.iter().all(|&x| x < 1.0), "{w:?}");
    assert_eq!(eng.param(1).unwrap_err().status, Status::InvalidArgument);
}

#[test]
fn engine_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Engine<'static>>();
    let eng = Engine::new(ADAM, &common::quiet()).unwrap();
    std::thread::spawn(move || drop(eng)).join().unwrap();
}

#[test]
fn version_and_features() {
    assert_eq!(dszero::version_number(), dszero::BINDINGS_VERSION_NUMBER);
    assert_eq!(dszero::version(), "0.1.0");
    assert!(dszero::features().has(dszero::Features::AVX2) || !cfg!(target_arch = "x86_64"));
    let resolved = dszero::config_resolve(ADAM, &common::quiet()).unwrap();
    assert!(resolved.contains("train_batch_size"), "{resolved}");
}
