#!/usr/bin/env python3
"""Writes a Mooncake-format trace (JSONL: timestamp ms, input_length, output_length,
hash_ids) shaped like the public conversation trace: a system prompt most requests
share, conversations whose later turns extend their earlier turns' blocks, and
timestamps quantised into bursts at the same millisecond.

    benches/gen-trace.py LINES MEAN_INPUT_TOKENS SPAN_SECONDS SEED > trace.jsonl
"""
import json
import random
import sys

BLOCK = 512


def main():
    lines, mean_input, span_s, seed = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    system = list(range(4))  # 2,048 tokens most requests start with
    next_id = len(system)
    open_convs = []  # (blocks so far, tokens so far)
    t = 0.0
    gap = span_s * 1000.0 / lines
    out = []
    while len(out) < lines:
        # Bursts: a few requests land on the same millisecond.
        burst = rng.choice([1, 1, 1, 2, 4, 8, 16]) if rng.random() < 0.3 else 1
        for _ in range(burst):
            if len(out) >= lines:
                break
            if open_convs and rng.random() < 0.5:
                k = rng.randrange(len(open_convs))
                blocks, tokens = open_convs[k]
            else:
                blocks, tokens = (list(system), len(system) * BLOCK) if rng.random() < 0.8 else ([], 0)
                k = None
            # A turn adds its own text: about the mean over a conversation's turns.
            add = max(1, int(rng.expovariate(1.0 / (mean_input / 3))))
            tokens_now = min(tokens + add, 120_000)
            if tokens_now <= tokens:
                tokens_now = tokens + 1
            full = tokens // BLOCK  # the blocks before are kept whole
            ids = blocks[:full]
            while len(ids) * BLOCK < tokens_now:
                ids.append(next_id)
                next_id += 1
            output = max(1, min(2000, int(rng.lognormvariate(4.5, 0.8))))
            out.append({"timestamp": int(t), "input_length": tokens_now, "output_length": output, "hash_ids": ids})
            state = (ids, tokens_now)
            if k is None:
                open_convs.append(state)
                if len(open_convs) > 64:
                    open_convs.pop(rng.randrange(len(open_convs)))
            else:
                open_convs[k] = state
        t += rng.expovariate(1.0 / (gap * burst))
    for line in out:
        print(json.dumps(line, separators=(", ", ": ")))


if __name__ == "__main__":
    main()
