#!/usr/bin/env python3
"""Writes Tests/GraftEngineTests/Fixtures/mixed.safetensors with numpy + struct only.

Tensors (all values exactly representable in their dtype, so the Swift test can compare exactly):
  f32           F32  [2, 3]  0.5, -1.25, 3.0, 1e-3 (as float32), 123456.0, -0.0
  f16           F16  [6]     1.0, -2.5, 2**-14 (min normal), 2**-24 (min subnormal), 65504.0, float16(1/3)
  bf16          BF16 [2, 2]  1.0, -3.140625, 0.5, 1.5
  position_ids  I64  [1, 4]  0, 1, 2, 3
Metadata: {"format": "pt", "note": "graft engine fixture"}
Usage: python3 scripts/make_safetensors_fixture.py [output path]
"""
import json
import struct
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/GraftEngineTests/Fixtures/mixed.safetensors"

f32 = np.array([[0.5, -1.25, 3.0], [1e-3, 123456.0, -0.0]], dtype="<f4")
f16 = np.array([1.0, -2.5, 2.0**-14, 2.0**-24, 65504.0, 1.0 / 3.0], dtype="<f2")
bf16_vals = np.array([[1.0, -3.140625], [0.5, 1.5]], dtype="<f4")
bf16 = (bf16_vals.view("<u4") >> 16).astype("<u2")  # exact: low 16 bits are zero
pos = np.arange(4, dtype="<i8").reshape(1, 4)

tensors = [("f32", "F32", f32), ("f16", "F16", f16), ("bf16", "BF16", bf16), ("position_ids", "I64", pos)]
header = {"__metadata__": {"format": "pt", "note": "graft engine fixture"}}
blobs = []
offset = 0
for name, dtype, arr in tensors:
    b = arr.tobytes()
    header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
    blobs.append(b)
    offset += len(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
print(out, 8 + len(h) + offset, "bytes")
