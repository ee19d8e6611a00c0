#!/usr/bin/env bash
# Engine benchmark (not a test): llmload at 50-way against a zero-latency mock in its
# own process on 127.0.0.1. Reports achieved requests/s, llmload's CPU per request and
# peak memory for 100k and 1M requests (memory must stay flat: HDR histograms, no
# per-request samples). Results go into docs/benchmarks.md by hand.
# Usage: benches/engine.sh [requests...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
mock= work=
trap 'kill $mock 2>/dev/null || true; rm -rf "$work"' EXIT

. benches/common.sh

printf '| requests | concurrency | wall time | requests/s | llmload CPU per request | peak RSS |\n|---|---|---|---|---|---|\n'
for n in "${@:-100000 1000000}"; do
  for count in $n; do
    write_scenario "$work/s.toml" "engine throughput" $count
    /usr/bin/time -f '%M %U %S' -o "$work/time" "$bin" run "$work/s.toml" --no-progress --json "$work/r.json" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r rss_kb user sys <"$work/time"
    python3 - "$work/r.json" "$count" "$rss_kb" "$user" "$sys" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["stages"][0]
n, rss, cpu = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) + float(sys.argv[5])
assert r["requests"]["ok"] == n, r["requests"]
print(f"| {n:,} | 50 | {r['wall_time_s']:.2f} s | {r['throughput']['requests_per_s']:,.0f} | {cpu / n * 1e6:.1f} µs | {rss / 1024:.1f} MiB |")
PY
  done
done
