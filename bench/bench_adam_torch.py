#!/usr/bin/python3
"""bench_adam_torch.py -- torch.optim.AdamW's CPU step rate, for RESULTS.md.

The comparison point for bench_adam: one flat fp32 parameter of 2^k
elements (as a ZeRO partition is), a fixed fp32 gradient, AdamW with
weight decay, foreach=True and foreach=False, at 1 and 2 threads. Prints
Gparams/s from the best and the median of several timed steps after a
warm-up. Run with Debian's torch: /usr/bin/python3 bench/bench_adam_torch.py
"""
import argparse
import statistics
import time

import torch


def bench(n, threads, foreach, reps):
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.rand(n, generator=gen) * 2 - 1)
    p.grad = (torch.rand(n, generator=gen) - 0.5) * 2e-2
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01, foreach=foreach)
    for _ in range(2):
        opt.step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20,22,24,26", help="log2 of the parameter counts")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, AdamW on one flat fp32 parameter")
    print("threads  params  foreach   best ms   med ms  Gparam/s (best)  (median)")
    for t in (int(x) for x in a.threads.split(",")):
        for k in (int(x) for x in a.sizes.split(",")):
            n = 1 << k
            for foreach in (True, False):
                best, med = bench(n, t, foreach, a.reps)
                print(f"{t:7d}  2^{k:<4d} {str(foreach):7s} {best * 1e3:9.2f} {med * 1e3:8.2f}"
                      f" {n / best * 1e-9:12.4f} {n / med * 1e-9:12.4f}", flush=True)


if __name__ == "__main__":
    main()
