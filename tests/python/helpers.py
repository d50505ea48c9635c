"""helpers.py -- what the Python binding's tests share: the model (the
example's GPT), DeepSpeed configs, the data every run sees, the reference
training loop with torch.optim.AdamW and DeepSpeed's LR schedule, and the
comparison of two models' parameters."""
import copy
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))

from gpt import GPT, GPTConfig, param_groups  # noqa: E402

VOCAB, BLOCK = 48, 16


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return GPT(cfg)


def batches(n, batch_size, seed):
    """n (inputs, targets) pairs of token windows from a fixed generator: a
    noisy repeating pattern, so the loss can fall."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        start = torch.randint(0, VOCAB, (batch_size, 1), generator=g)
        steps = torch.arange(BLOCK + 1).view(1, -1)
        seq = (start + 3 * steps) % VOCAB
        noise = torch.rand(seq.shape, generator=g) < 0.1
        seq = torch.where(noise, torch.randint(0, VOCAB, seq.shape, generator=g), seq)
        out.append((seq[:, :-1].contiguous(), seq[:, 1:].contiguous()))
    return out


LR, WD, BETAS, EPS = 3e-3, 0.1, (0.9, 0.95), 1e-8
WARMUP, TOTAL = 10, 50


# Stage 3 with nothing kept gathered between uses: every parameter is fetched
# and freed around each forward and backward (the defaults would keep this
# small model's parameters persistent).
STAGE3 = {"stage": 3, "stage3_param_persistence_threshold": 0, "stage3_max_reuse_distance": 0,
          "stage3_prefetch_bucket_size": 5000}


def ds_config(micro=4, gas=2, world=1, clip=1.0, stage=0, precision=None, optimizer=None, extra=None):
    cfg = {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": gas,
        "train_batch_size": micro * gas * world,
        "gradient_clipping": clip,
        "optimizer": optimizer or {"type": "AdamW", "params": {"lr": LR, "betas": list(BETAS), "eps": EPS,
                                                              "weight_decay": WD}},
        "scheduler": {"type": "WarmupDecayLR",
                      "params": {"warmup_min_lr": 0.0, "warmup_max_lr": LR, "warmup_num_steps": WARMUP,
                                 "total_num_steps": TOTAL, "warmup_type": "linear"}},
        "zero_optimization": dict(STAGE3) if stage == 3 else {"stage": stage},
    }
    if precision == "fp16":
        cfg["fp16"] = {"enabled": True, "initial_scale_power": 16, "hysteresis": 1, "loss_scale_window": 1000}
    elif precision == "bf16":
        cfg["bf16"] = {"enabled": True}
    if extra:
        cfg.update(extra)
    return cfg


def warmup_decay_lr(t):
    """DeepSpeed's WarmupDecayLR (linear warmup) at scheduler iteration t;
    optimizer step k (from 0) runs with t = k - 1 (construction sets t = -1)."""
    if t < 0:
        return 0.0
    n = max(2, WARMUP)
    if t < n:
        return LR * t / n
    return LR * max(0.0, (TOTAL - t) / max(1, TOTAL - n))


def train_dszero(engine, micro_batches, gas):
    """Runs len(micro_batches) micro-steps; returns the losses and the lr of each optimizer step."""
    losses, lrs = [], []
    for i, (x, y) in enumerate(micro_batches):
        if i % gas == 0:
            lrs.append(engine.get_lr()[0])
        loss = engine(x, y)
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    return losses, lrs


def train_reference(model, micro_batches, gas, clip=1.0, world_batches=None):
    """The same training with torch.optim.AdamW: loss / gas per micro-batch,
    gradients averaged over `world_batches` (lists of each rank's micro-batch)
    when given, clipping, then AdamW with DeepSpeed's schedule."""
    opt = torch.optim.AdamW(param_groups(model, WD), lr=LR, betas=BETAS, eps=EPS)
    params = [p for g in opt.param_groups for p in g["params"]]
    steps = len(micro_batches) // gas
    for k in range(steps):
        for g in opt.param_groups:
            g["lr"] = warmup_decay_lr(k - 1)
        for i in range(gas):
            if world_batches is None:
                x, y = micro_batches[k * gas + i]
                (model(x, y) / gas).backward()
            else:
                per_rank = world_batches[k * gas + i]
                for x, y in per_rank:
                    (model(x, y) / (gas * len(per_rank))).backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model


def max_rel_diff(a, b):
    """max over parameters of max|a - b| / max|b| (fp64), and the worst name."""
    worst, where = 0.0, None
    pb = dict(b.named_parameters())
    for name, p in a.named_parameters():
        x, y = p.detach().double(), pb[name].detach().double()
        d = (x - y).abs().max().item() / max(y.abs().max().item(), 1e-30)
        if not math.isfinite(d) or x.shape != y.shape:
            return math.inf, name
        if d > worst:
            worst, where = d, name
    return worst, where


def clone(model):
    return copy.deepcopy(model)


def isclose(a, b, rel=1e-12):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


def shared_dir(prefix="dszero-py-mpi"):
    """The same folder on every rank of this mpirun job (mpirun gives them one namespace)."""
    job = os.environ.get("PMIX_NAMESPACE", os.environ.get("OMPI_MCA_orte_ess_jobid", "job")).replace("@", "_")
    base = os.environ.get("DSZ_TEST_TMPDIR", "/tmp")
    return os.path.join(base, "%s-%s" % (prefix, job.replace("/", "_")))
