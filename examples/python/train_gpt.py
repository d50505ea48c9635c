#!/usr/bin/python3
"""train_gpt.py -- a character-level GPT trained with dszero, the way a
DeepSpeed script does it: dszero.initialize, engine(x), engine.backward(loss),
engine.step(). The ZeRO stage, precision, optimizer and schedule come from the
config; the same script runs on one process or under mpirun.

    examples/python/train_gpt.py --config examples/configs/gpt_fp16_zero2.json
    mpirun -np 2 python3 examples/python/train_gpt.py --config examples/configs/gpt_bf16_zero3.json

Text: --text FILE, else the first of a few files every Debian system has
(the GPL, Python's own sources), else text generated here. Rank 0 shows a
progress bar, prints a loss line every steps_per_print steps in the format of
DeepSpeed's pipeline engine (`steps: N loss: L iter time (s): T
samples/sec: S`), saves the loss curve as PNG and prints a sample. The exit
status says whether the loss fell by 15% (first ten steps against the last ten).
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt import GPT, GPTConfig, CharData, param_groups  # noqa: E402

try:
    import dszero
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
    import dszero

TEXT_FILES = ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0",
              os.path.join(os.path.dirname(os.__file__), "argparse.py")]


def generated_text(n_chars=200_000, seed=0):
    """Sentences from a tiny grammar: enough structure for a model to learn."""
    rng = random.Random(seed)
    subjects = ["the engine", "a rank", "the optimizer", "every gradient", "the loss scale", "a bucket"]
    verbs = ["reduces", "gathers", "updates", "scales", "saves", "releases", "skips"]
    objects = ["the partition", "its shard", "the parameters", "a checkpoint", "the master weights"]
    out = []
    while sum(len(s) for s in out) < n_chars:
        out.append("%s %s %s.\n" % (rng.choice(subjects), rng.choice(verbs), rng.choice(objects)))
    return "".join(out)


def load_text(path):
    if path:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(), path
    for candidate in TEXT_FILES:
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8", errors="replace") as f:
                return f.read(), candidate
    return generated_text(), "generated"


def plot(losses, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(losses) + 1), losses, lw=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (rank 0)")
    ax.set_title("char-level GPT with dszero")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def sample(engine, data, prompt, n, generator):
    engine.eval()
    ids = torch.tensor([[data.stoi.get(c, 0) for c in prompt]])
    for _ in range(n):
        logits = engine(ids[:, -data.block_size:])[0, -1].float()
        nxt = torch.multinomial(torch.softmax(logits / 0.8, dim=-1), 1, generator=generator)
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    engine.train()
    return data.decode(ids[0].tolist())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "configs",
                                                     "gpt_fp16_zero2.json"))
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps")
    ap.add_argument("--text", help="a text file to learn (default: one found on the machine)")
    ap.add_argument("--out", default="gpt_out", help="folder for the loss curve and the checkpoint")
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--save", action="store_true", help="save a checkpoint at the end")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    text, source = load_text(args.text)
    data = CharData(text, args.block)
    torch.manual_seed(args.seed)  # the same initial model on every rank
    model = GPT(GPTConfig(vocab_size=data.vocab_size, block_size=args.block, n_layer=args.layers,
                          n_head=4, n_embd=args.embd))
    with open(args.config) as f:
        weight_decay = json.load(f).get("optimizer", {}).get("params", {}).get("weight_decay", 0.0)
    engine, _, _, _ = dszero.initialize(model=model, model_parameters=param_groups(model, weight_decay),
                                        config=args.config)
    rank, world = engine.global_rank, engine.world_size
    micro, gas = engine.train_micro_batch_size_per_gpu(), engine.gradient_accumulation_steps()
    every = engine.steps_per_print() or 10
    if rank == 0:
        cfg = engine.config
        precision = "bf16" if cfg["bf16"]["enabled"] else "fp16" if cfg["fp16"]["enabled"] else "fp32"
        print("text: %s (%d characters, %d symbols); %d parameters; ZeRO stage %d, %s, %d rank(s), "
              "micro-batch %d x %d accumulation; dszero %s"
              % (source, len(text), data.vocab_size, engine.dszero.state().n_elements, engine.zero_stage,
                 precision, world, micro, gas, dszero.version()), flush=True)
    gen = torch.Generator().manual_seed(args.seed + 1 + rank)  # each rank its own batches

    from tqdm import tqdm
    bar = tqdm(total=args.steps, disable=rank != 0, unit="step", dynamic_ncols=True, file=sys.stdout)
    losses, window, t0 = [], [], time.perf_counter()
    while engine.global_steps < args.steps:
        step_loss = 0.0
        for _ in range(gas):
            x, y = data.batch(micro, gen)
            loss = engine(x, y)
            engine.backward(loss)
            engine.step()
            step_loss += loss.item() / gas
        losses.append(step_loss)
        window.append(step_loss)
        bar.update(1)
        bar.set_postfix(loss="%.3f" % step_loss, lr="%.2e" % engine.get_lr()[0])
        g = engine.global_steps
        if g % every == 0:
            dt = (time.perf_counter() - t0) / len(window)
            if rank == 0:
                bar.write("steps: %d loss: %.4f iter time (s): %.3f samples/sec: %.1f"
                          % (g, sum(window) / len(window), dt, micro * gas * world / dt))
            window, t0 = [], time.perf_counter()
    bar.close()

    text_out = sample(engine, data, "The ", 120, torch.Generator().manual_seed(args.seed))
    if args.save:
        engine.save_checkpoint(os.path.join(args.out, "checkpoint"), client_state={"steps": engine.global_steps})
    head, tail = sum(losses[:10]) / min(10, len(losses)), sum(losses[-10:]) / min(10, len(losses))
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        png = os.path.join(args.out, "loss.png")
        plot(losses, png)
        print("sample: %r" % text_out)
        print("loss %.4f -> %.4f over %d steps; skipped %d; curve: %s" % (head, tail, len(losses),
                                                                        engine.skipped_steps, png))
    engine.close()
    return 0 if tail < 0.85 * head else 1


if __name__ == "__main__":
    sys.exit(main())
