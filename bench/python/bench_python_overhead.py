#!/usr/bin/python3
"""bench_python_overhead.py -- what dszero's Python binding costs per training
step on the CPU, next to plain PyTorch, for RESULTS-python.md.

The same GPT (examples/python/gpt.py), batch and thread count, three ways:
  floor   forward + backward only, no optimizer: no training step can be
          faster than the host's own compute (the limit, measured here);
  torch   forward + backward + torch.optim.AdamW (the peer a DeepSpeed user
          on CPU would otherwise run);
  dszero  forward + engine.backward (loss scaling, one AccumulateGrad hook
          per parameter handing the gradient over through DLPack) +
          engine.step (dszero's AdamW, ZeRO stage 0, fp32).
Rounds alternate the three so that load from other processes hits them
alike; the medians are reported, with dszero/torch as the overhead ratio and
the time each adds over the floor; and, timed inside the step, the
optimizer side alone (torch: opt.step + zero_grad; dszero: the time inside
grad_ready during backward + engine.step), which the noise of forward and
backward does not blur. Also: the cost of one grad_ready call
from Python (DLPack capsule, ctypes call) on a tiny tensor.

    OMP_NUM_THREADS=2 DSZERO_LIBRARY=build/src /usr/bin/python3 bench/python/bench_python_overhead.py
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import dszero  # noqa: E402
from gpt import GPT, GPTConfig  # noqa: E402

CONFIG = {"train_batch_size": 8, "gradient_clipping": 0.0, "steps_per_print": 0,
          "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8,
                                                   "weight_decay": 0.01}},
          "zero_optimization": {"stage": 0}}


def model_of(size, seed=0):
    layers, embd = size
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=96, block_size=64, n_layer=layers, n_head=4, n_embd=embd))


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 96, (8, 64), generator=g)
    return x, torch.roll(x, -1, dims=1)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench(size, rounds):
    x, y = batch()
    floor_model = model_of(size)
    torch_model = model_of(size)
    opt = torch.optim.AdamW(torch_model.parameters(), lr=1e-4, weight_decay=0.01)
    ds_model = model_of(size)
    engine, _, _, _ = dszero.initialize(model=ds_model, config=CONFIG, log_level="warning")

    def floor_step():
        floor_model(x, y).backward()
        floor_model.zero_grad(set_to_none=True)

    parts = {"torch optimizer": [], "dszero hooks": [], "dszero step": []}
    core = engine.dszero
    real_grad_ready = core.grad_ready
    in_hooks = [0.0]

    def timed_grad_ready(i, g):
        t = time.perf_counter()
        real_grad_ready(i, g)
        in_hooks[0] += time.perf_counter() - t
    core.grad_ready = timed_grad_ready

    def torch_step():
        torch_model(x, y).backward()
        parts["torch optimizer"].append(timed(lambda: (opt.step(), opt.zero_grad(set_to_none=True))))

    def dszero_step():
        in_hooks[0] = 0.0
        engine.backward(engine(x, y))
        parts["dszero hooks"].append(in_hooks[0])
        parts["dszero step"].append(timed(engine.step))

    steps = {"floor": floor_step, "torch": torch_step, "dszero": dszero_step}
    for fn in steps.values():  # warm-up: allocations, optimizer state
        for _ in range(3):
            fn()
    times = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            times[k].append(timed(fn))
    n_params = sum(p.numel() for p in ds_model.parameters())
    n_tensors = len(list(ds_model.parameters()))
    engine.close()
    times.update(parts)
    return n_params, n_tensors, {k: statistics.median(v[-rounds:]) for k, v in times.items()}


def grad_ready_cost(reps):
    w = torch.zeros(16)
    with dszero.Engine({"train_batch_size": 1, "optimizer": {"type": "SGD", "params": {"lr": 0.1}}},
                       log_level="warning") as e:
        e.register_params([("w", w)])
        g = torch.ones(16)
        best = []
        for _ in range(reps):
            t = time.perf_counter()
            e.grad_ready(0, g)
            best.append(time.perf_counter() - t)
            e.backward()
            e.step()
    return statistics.median(best)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--sizes", default="2x64,4x128", help="layers x width of the GPTs")
    a = ap.parse_args()
    print("torch %s, %d torch threads, dszero %s %s; batch 8 x 64 tokens; medians of %d alternating rounds"
          % (torch.__version__, torch.get_num_threads(), dszero.version(), dszero.features(), a.rounds))
    print("model            params tensors   floor ms   torch ms  dszero ms  dszero/torch  torch-floor  dszero-floor")
    for spec in a.sizes.split(","):
        size = tuple(int(v) for v in spec.split("x"))
        n, k, t = bench(size, a.rounds)
        print("GPT %-10s %10d %7d %10.2f %10.2f %10.2f %13.3f %10.2f ms %10.2f ms"
              % (spec, n, k, t["floor"] * 1e3, t["torch"] * 1e3, t["dszero"] * 1e3, t["dszero"] / t["torch"],
                 (t["torch"] - t["floor"]) * 1e3, (t["dszero"] - t["floor"]) * 1e3), flush=True)
        print("    optimizer side alone: torch AdamW step+zero_grad %.2f ms; dszero grad hand-over %.2f ms + "
              "step %.2f ms = %.2f ms (ratio %.3f)"
              % (t["torch optimizer"] * 1e3, t["dszero hooks"] * 1e3, t["dszero step"] * 1e3,
                 (t["dszero hooks"] + t["dszero step"]) * 1e3,
                 (t["dszero hooks"] + t["dszero step"]) / t["torch optimizer"]), flush=True)
    print("one grad_ready call from Python (16 floats, DLPack + ctypes): %.1f us" % (grad_ready_cost(2000) * 1e6))


if __name__ == "__main__":
    main()
