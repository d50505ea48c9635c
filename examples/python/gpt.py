"""gpt.py -- a small GPT (decoder-only transformer language model) in plain
PyTorch, for examples/python/train_gpt.py and the Python binding's tests.

Nothing here knows about dszero: it is the model a user would bring. Token
and position embeddings, pre-LayerNorm blocks of causal self-attention and an
MLP, a final LayerNorm and an output layer that shares the token embedding's
weight (a parameter used twice, as in GPT-2).

The layers compute in the dtype of their input (``compute_dtype``, fp32 by
default) whatever dtype the weights are stored in: PyTorch 1.13 has no fp16
matmul, LayerNorm or softmax on the CPU, so an fp16 model here stores fp16
weights and computes in fp32 (its gradients still arrive in fp16, through the
casts' backward, where loss scaling matters as it does on a GPU).
"""
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


class Linear(nn.Linear):
    """nn.Linear computing in its input's dtype."""

    def forward(self, x):
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm computing in its input's dtype."""

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


@dataclass
class GPTConfig:
    vocab_size: int = 64
    block_size: int = 32      # longest context
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    tie_weights: bool = True
    compute_dtype: torch.dtype = torch.float32


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        # No bias: a key bias gets no gradient (softmax ignores a shift), only
        # rounding noise, which Adam would amplify into lr-sized steps.
        self.qkv = Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = Linear(cfg.n_embd, cfg.n_embd)
        mask = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, cfg.block_size, cfg.block_size), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        heads = lambda t: t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln1 = LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = LayerNorm(cfg.n_embd)
        self.fc = Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.out = Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.n_embd)
        self.head = Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok.weight
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        dt = self.cfg.compute_dtype
        x = self.tok(idx).to(dt) + self.pos(torch.arange(T, device=idx.device)).to(dt)
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def param_groups(model, weight_decay):
    """Two groups as GPT training scripts make them: matrices decay, biases,
    LayerNorm weights and embeddings do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "tok" not in name and "pos" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class CharData:
    """Character-level batches from a text: tokens are the text's distinct characters."""

    def __init__(self, text, block_size):
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.data = torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        self.block_size = block_size
        if len(self.data) <= block_size + 1:
            raise ValueError("the text is shorter than one block (%d characters)" % (block_size + 1))

    @property
    def vocab_size(self):
        return len(self.chars)

    def batch(self, batch_size, generator):
        """(inputs, targets): batch_size random windows and the same shifted by one."""
        ix = torch.randint(len(self.data) - self.block_size - 1, (batch_size,), generator=generator)
        x = torch.stack([self.data[i:i + self.block_size] for i in ix.tolist()])
        y = torch.stack([self.data[i + 1:i + 1 + self.block_size] for i in ix.tolist()])
        return x, y

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)
