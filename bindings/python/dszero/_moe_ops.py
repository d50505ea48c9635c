"""_moe_ops.py -- the MoE steps of the C API (dsz_moe_*) as
torch.autograd.Functions, for dszero.moe.

  gate         fp32 logits [S, E] -> route weights [S, k], l_aux, exp_counts
               and the routing (RoutingHandle) the other steps use;
               backward: dsz_moe_gate_backward (routing decisions held fixed)
  dispatch     tokens [S, M] -> [E, C, M]; backward dsz_moe_dispatch_backward
  all_to_all   [E, C, M] over the expert-parallel group; it is its own backward
  combine      expert outputs [E, C, M] and the route weights -> [S, M];
               backward dsz_moe_combine_backward (d_expert_out and d_weight)

The weights tensor that gate returns and combine takes carries no data combine
needs (the routing holds the weights); it is the autograd edge along which
combine's d_weight reaches the gate's backward. Tensors cross as DLPack views
of torch's own memory (no copies); plain float arrays as pointers to contiguous
float32 tensors. Host tensors only (the C API refuses CUDA ones).
"""
import ctypes

import torch

from . import _capi, _dlpack
from .errors import check
from .handle import RoutingHandle

_NOISE = {None: _capi.DSZ_MOE_NOISE_NONE, "Jitter": _capi.DSZ_MOE_NOISE_JITTER,
          "RSample": _capi.DSZ_MOE_NOISE_RSAMPLE}
_DROP = {"probs": _capi.DSZ_MOE_DROP_PROBS, "position": _capi.DSZ_MOE_DROP_POSITION}


def gate_config(k, capacity_factor, eval_capacity_factor, min_capacity, training, drop_tokens, use_rts,
                noisy_gate_policy, top2_2nd_expert_sampling, drop_policy, seed):
    """A filled dsz_moe_gate_config (noisy_gate_policy None / "Jitter" / "RSample",
    drop_policy "probs" / "position")."""
    cfg = _capi.dsz_moe_gate_config()
    check(_capi.lib().dsz_moe_gate_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)))
    cfg.k = int(k)
    cfg.capacity_factor = float(capacity_factor)
    cfg.eval_capacity_factor = float(eval_capacity_factor)
    cfg.min_capacity = int(min_capacity)
    cfg.training = 1 if training else 0
    cfg.drop_tokens = 1 if drop_tokens else 0
    cfg.use_rts = 1 if use_rts else 0
    cfg.noisy_gate_policy = _NOISE[noisy_gate_policy]
    cfg.top2_2nd_expert_sampling = 1 if top2_2nd_expert_sampling else 0
    cfg.drop_policy = _DROP[drop_policy]
    cfg.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return cfg


def _floats(t):
    """float * of a contiguous float32 host tensor (None -> NULL)."""
    if t is None:
        return None
    return ctypes.cast(t.data_ptr(), _capi._f32_p)


def _call(fn, *args):
    """fn(*args) with tensors passed as DLTensor pointers; the TensorRefs (whose
    capsules own the DLTensor structs) stay alive until fn returns."""
    refs = [_dlpack.as_dltensor(a) if isinstance(a, torch.Tensor) else None for a in args]
    check(fn(*[r.ptr if r is not None else a for r, a in zip(refs, args)]))


def jitter_multipliers(n, epsilon, seed):
    """DeepSpeed's multiplicative jitter: n factors U(1 - epsilon, 1 + epsilon) from `seed`."""
    u = torch.empty(n, dtype=torch.float32)
    check(_capi.lib().dsz_moe_jitter(None, n, float(epsilon), int(seed) & 0xFFFFFFFFFFFFFFFF, _floats(u)))
    return u


class _Gate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, cfg, used_token, group, out):
        ctx.set_materialize_grads(False)
        lib = _capi.lib()
        S, E = logits.shape
        used = None
        if used_token is not None:
            used_token = (used_token.reshape(-1) != 0).to(torch.uint8).contiguous()
            if used_token.numel() != S:
                raise ValueError("dszero.moe: used_token has %d entries for %d tokens" % (used_token.numel(), S))
            used = ctypes.cast(used_token.data_ptr(), ctypes.POINTER(ctypes.c_uint8))
        raw = ctypes.POINTER(_capi.dsz_moe_routing)()
        check(lib.dsz_moe_gate(ctypes.byref(raw), ctypes.byref(cfg), _floats(logits), S, E, used,
                               group.raw if group is not None else None))
        routing = RoutingHandle(raw)
        k = routing.info.k
        weights = torch.empty(S, k, dtype=torch.float32)
        exp_counts = torch.empty(E, dtype=torch.int64)
        check(lib.dsz_moe_routing_get(raw, None, None, _floats(weights),
                                      ctypes.cast(exp_counts.data_ptr(), _capi._i64_p), None))
        ctx.routing = routing
        ctx.logits_shape = (S, E)
        out.extend([routing, exp_counts])
        return weights, torch.tensor(routing.info.l_aux, dtype=torch.float32)

    @staticmethod
    def backward(ctx, d_weights, d_l_aux):
        if d_weights is not None:
            d_weights = d_weights.to(torch.float32).contiguous()
        d_logits = torch.empty(ctx.logits_shape, dtype=torch.float32)
        check(_capi.lib().dsz_moe_gate_backward(ctx.routing.raw, _floats(d_weights),
                                                float(d_l_aux) if d_l_aux is not None else 0.0, None,
                                                _floats(d_logits)))
        return d_logits, None, None, None, None


def gate(logits, cfg, used_token=None, group=None):
    """Routes the tokens: (weights [S, k], l_aux, exp_counts [E] int64, routing).
    `logits` is fp32 [S, E]; `group` a MoEGroupHandle (None: one rank).
    Collective over the expert-parallel group when cfg.drop_tokens is 0."""
    out = []
    weights, l_aux = _Gate.apply(logits.contiguous(), cfg, used_token, group, out)
    routing, exp_counts = out
    return weights, l_aux, exp_counts, routing


class _Dispatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tokens, routing):
        info = routing.info
        buf = tokens.new_empty((info.experts, info.capacity, tokens.shape[-1]))
        _call(_capi.lib().dsz_moe_dispatch, routing.raw, tokens, buf)
        ctx.routing = routing
        ctx.tokens_shape = tokens.shape
        return buf

    @staticmethod
    def backward(ctx, d_buf):
        d_tokens = d_buf.new_empty(ctx.tokens_shape)
        _call(_capi.lib().dsz_moe_dispatch_backward, ctx.routing.raw, d_buf.contiguous(), d_tokens)
        return d_tokens, None


def dispatch(tokens, routing):
    """Tokens [S, M] -> the [E, C, M] buffer (empty slots zero)."""
    return _Dispatch.apply(tokens.contiguous(), routing)


def _exchange(group, t):
    out = torch.empty_like(t)
    _call(_capi.lib().dsz_moe_all_to_all, group.raw, t, out)
    return out


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, group):
        ctx.group = group
        return _exchange(group, t)

    @staticmethod
    def backward(ctx, d_out):
        return _exchange(ctx.group, d_out.contiguous()), None


def all_to_all(t, group):
    """The expert-parallel all-to-all of an [E, C, M] buffer (collective over
    the group; the result reads as [ep, E / ep, C, M])."""
    return _AllToAll.apply(t.contiguous(), group)


class _Combine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, expert_out, weights, routing):
        info = routing.info
        out = expert_out.new_empty((info.tokens, expert_out.shape[-1]))
        _call(_capi.lib().dsz_moe_combine, routing.raw, expert_out, out)
        ctx.routing = routing
        ctx.save_for_backward(expert_out)
        return out

    @staticmethod
    def backward(ctx, d_out):
        (expert_out,) = ctx.saved_tensors
        info = ctx.routing.info
        d_expert_out = torch.empty_like(expert_out) if ctx.needs_input_grad[0] else None
        d_weights = torch.empty(info.tokens, info.k, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        if d_expert_out is not None or d_weights is not None:
            _call(_capi.lib().dsz_moe_combine_backward, ctx.routing.raw, expert_out,
                  d_out.to(expert_out.dtype).contiguous(), d_expert_out, _floats(d_weights))
        return d_expert_out, d_weights, None


def combine(expert_out, weights, routing):
    """Expert outputs [E, C, M] -> [S, M]: each token's kept routes summed,
    weighted by the gate (`weights` from gate(), for the gradient)."""
    return _Combine.apply(expert_out.contiguous(), weights, routing)
