#!/usr/bin/env python3
"""Writes a tiktoken encoding (`NAME.tiktoken`: base64 token, space, rank; ranks dense
from 0) as the compact table src/workload/bpe.rs reads: for each rank in order, one
length byte, then the token's bytes.

    scripts/vocab.py o200k_base.tiktoken data/vocab/o200k_base.bin

The .tiktoken files are OpenAI's (MIT, shipped with tiktoken and tiktoken-rs).
"""
import base64
import sys

src, dst = sys.argv[1], sys.argv[2]
tokens = {}
for n, line in enumerate(open(src, encoding="ascii"), 1):
    raw, rank = line.split()
    tokens[int(rank)] = base64.b64decode(raw)
if sorted(tokens) != list(range(len(tokens))):
    sys.exit(f"{src}: ranks are not 0..{len(tokens) - 1}")
out = bytearray()
for rank in range(len(tokens)):
    t = tokens[rank]
    if not 0 < len(t) < 256:
        sys.exit(f"{src}: token {rank} is {len(t)} bytes long")
    out.append(len(t))
    out += t
open(dst, "wb").write(out)
print(f"{dst}: {len(tokens)} tokens, {len(out)} bytes")
