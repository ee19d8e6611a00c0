#!/usr/bin/env bash
# Peak RSS of a streamed 16-point sweep on the embedded mock (2,000 requests a point),
# and the time and RSS of merging two shards of it (`llmload merge`), for one or more
# builds, alternating, ROUNDS each: what the stages' histograms cost to keep and to merge.
# Usage: benches/sweep-memory.sh ROUNDS BIN [BIN ...]
set -euo pipefail
rounds=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/sweep.toml" <<'TOML'
name = "16 points"
[target]
base_url = "mock"
model = "m"
stream = true
[mock]
base_latency_ms = 0
per_inflight_ms = 0
[prompts]
template = "hello {i}"
[sweep]
concurrency = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32]
requests = 2000
TOML
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    /usr/bin/time -f "$bin sweep: %M KiB peak, %e s" "$bin" run "$work/sweep.toml" --headless --no-progress --json "$work/r.json" 2>&1 >/dev/null | tail -1
    for i in 0 1; do "$bin" run "$work/sweep.toml" --headless --no-progress --shard "$i/2" --json "$work/s$i.json" >/dev/null 2>&1; done
    /usr/bin/time -f "$bin merge of 2 shards: %M KiB peak, %e s" "$bin" merge "$work/s0.json" "$work/s1.json" -o "$work/m.json" 2>&1 >/dev/null | tail -1
  done
done
