"""read_safetensors.py DIR -- reads the files `dsz consolidate` wrote
(run_consolidate.sh) back, two ways, and compares them with the weights the
engines held (DIR/<case>.expected, written by ckpt_consolidate.c):

  1. PyTorch alone (torch 1.13 has no safetensors loader): the 8-byte header
     length, the JSON header, torch.frombuffer on each tensor's byte range;
  2. the `safetensors` package (safetensors.torch.load_file), when it can be
     imported -- otherwise the test reports SKIPPED (exit 77) after part 1.

Every tensor must have the registered name, shape and dtype, and hold
exactly the engine's values: fp32 and bf16 bit for bit, fp16 equal to the
fp32 weights rounded to nearest even (torch's .half()).
"""
import json
import os
import struct
import sys

import torch

d = sys.argv[1]
meta = json.load(open(os.path.join(d, "expected.json")))
names, shapes = meta["names"], [tuple(s) for s in meta["shapes"]]
TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def expected(case, dtype):
    raw = bytearray(open(os.path.join(d, case + ".expected"), "rb").read())
    flat = torch.frombuffer(raw, dtype=dtype)
    out, at = {}, 0
    for n, s in zip(names, shapes):
        k = 1
        for x in s:
            k *= x
        out[n] = flat[at:at + k].reshape(s)
        at += k
    assert at == flat.numel(), "expected file size"
    return out


def read_with_torch(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0, "header length %d is not a multiple of 8" % n
    header = json.loads(data[8:8 + n])
    assert header["__metadata__"]["format"] == "pt"
    body = bytearray(data[8 + n:])
    out, end = {}, 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = torch.frombuffer(body[b:e], dtype=TORCH[t["dtype"]]).reshape(t["shape"])
        end = max(end, e)
    assert end == len(body), "the data section has %d bytes, the tensors %d" % (len(body), end)
    order = sorted((t["data_offsets"][0], k) for k, t in header.items() if k != "__metadata__")
    assert [k for _, k in order] == names, "tensors are not in registration order: %s" % order
    return out


def compare(got, want, what):
    assert list(got) == names or sorted(got) == sorted(names), "%s: names %s" % (what, list(got))
    for n in names:
        g, w = got[n], want[n]
        assert g.dtype == w.dtype, "%s %s: dtype %s, want %s" % (what, n, g.dtype, w.dtype)
        assert tuple(g.shape) == tuple(w.shape), "%s %s: shape %s, want %s" % (what, n, g.shape, w.shape)
        assert torch.equal(g.view(torch.int16 if g.element_size() == 2 else torch.int32),
                           w.view(torch.int16 if w.element_size() == 2 else torch.int32)), "%s %s: values differ" % (what, n)


fp32 = expected("fp32", torch.float32)
cases = {
    "fp32.safetensors": fp32,
    "fp32_as_fp16.safetensors": {k: v.half() for k, v in fp32.items()},
    "bf16.safetensors": expected("bf16", torch.bfloat16),
}
for f, want in cases.items():
    compare(read_with_torch(os.path.join(d, f)), want, f + " (torch.frombuffer)")
print("read back with torch.frombuffer: %d files, %d tensors each, bit for bit" % (len(cases), len(names)))

try:
    from safetensors.torch import load_file
except ImportError as e:
    print("*** SKIPPED: the safetensors package cannot be imported (%s); "
          "the files were checked with torch only ***" % e)
    sys.exit(77)
for f, want in cases.items():
    compare(load_file(os.path.join(d, f)), want, f + " (safetensors.torch.load_file)")
import safetensors
print("read back with safetensors %s: bit for bit" % safetensors.__version__)
