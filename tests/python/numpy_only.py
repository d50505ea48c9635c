"""numpy_only.py -- dszero from a program that has NumPy and no torch
(run by test_numpy.py in its own interpreter, with torch made unimportable).

Trains a linear least-squares model with dszero.Engine on float32 arrays and
checks it against AdamW written here in float64; then fp16 arrays and bf16
(uint16 bits) arrays train too. Exits non-zero on any failure."""
import sys

sys.modules["torch"] = None  # any `import torch` now fails

import numpy as np  # noqa: E402

import dszero  # noqa: E402

LR, BETAS, EPS, WD = 0.05, (0.9, 0.999), 1e-8, 0.01


def config(precision=None):
    cfg = {"train_batch_size": 64, "gradient_clipping": 0.0,
           "optimizer": {"type": "AdamW", "params": {"lr": LR, "betas": list(BETAS), "eps": EPS, "weight_decay": WD}}}
    if precision:
        cfg[precision] = {"enabled": True}
    return cfg


def problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 8))
    return x, x @ rng.standard_normal(8) + 0.5


def grads(x, y, w, b):
    r = x @ w + b - y
    return 2 * x.T @ r / len(y), np.array([2 * r.mean()]), float((r ** 2).mean())


def adamw_reference(x, y, steps):
    w, b = np.zeros(8), np.zeros(1)
    state = [(np.zeros_like(p), np.zeros_like(p)) for p in (w, b)]
    for t in range(1, steps + 1):
        gw, gb, _ = grads(x, y, w, b)
        for p, g, (m, v) in zip((w, b), (gw, gb), state):
            m *= BETAS[0]
            m += (1 - BETAS[0]) * g
            v *= BETAS[1]
            v += (1 - BETAS[1]) * g * g
            p *= 1 - LR * WD
            p -= LR / (1 - BETAS[0] ** t) * m / (np.sqrt(v) / np.sqrt(1 - BETAS[1] ** t) + EPS)
    return w, b


def train(precision, dtype, steps, to_model=None, from_model=None):
    to_model = to_model or (lambda a: a.astype(dtype))
    from_model = from_model or (lambda a: a.astype(np.float64))
    x, y = problem()
    w, b = to_model(np.zeros(8)), to_model(np.zeros(1))
    losses = []
    with dszero.Engine(config(precision)) as engine:
        engine.register_params([("w", w), ("b", b)])
        for _ in range(steps):
            mult = engine.loss_scale()
            gw, gb, loss = grads(x, y, from_model(w), from_model(b))
            engine.grad_ready(0, to_model(gw * mult))
            engine.grad_ready(1, to_model(gb * mult))
            engine.backward()
            engine.step()
            losses.append(loss)
        assert engine.state().global_steps == steps
    return from_model(w), from_model(b), losses


def bf16_bits(a):
    u = np.asarray(a, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def main():
    steps = 40
    w, b, losses = train(None, np.float32, steps)
    rw, rb = adamw_reference(*problem(), steps)
    diff = max(np.abs(w - rw).max() / np.abs(rw).max(), np.abs(b - rb).max() / np.abs(rb).max())
    print("float32: max relative difference to float64 AdamW after %d steps: %.3g" % (steps, diff))
    assert diff <= 1e-5, diff
    assert losses[-1] < 0.2 * losses[0], losses

    _, _, losses16 = train("fp16", np.float16, steps)
    print("fp16 loss %.4f -> %.4f" % (losses16[0], losses16[-1]))
    assert losses16[-1] < 0.2 * losses16[0]

    _, _, lossesbf = train("bf16", None, steps, to_model=bf16_bits, from_model=bf16_value)
    print("bf16 loss %.4f -> %.4f" % (lossesbf[0], lossesbf[-1]))
    assert lossesbf[-1] < 0.2 * lossesbf[0]

    assert "torch" not in sys.modules or sys.modules["torch"] is None
    print("numpy-only OK")


if __name__ == "__main__":
    main()
