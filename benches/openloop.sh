#!/usr/bin/env bash
# Open-loop scheduler benchmark (not a test): constant and Poisson arrivals at high
# rates against a zero-latency mock in its own process on 127.0.0.1. Reports the
# achieved rate against the target, the schedule lag and llmload's CPU. The target: at
# 10,000 requests/s the achieved rate is within 1 % of the target.
# Results go into docs/benchmarks.md by hand.
# Usage: benches/openloop.sh [rate...]   (default: 1000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
mock= work=
trap 'kill $mock 2>/dev/null || true; rm -rf "$work"' EXIT

. benches/common.sh

printf '| arrival | target | sent | achieved | vs target | lag p50 | lag p99 | not sent | llmload CPU |\n|---|---|---|---|---|---|---|---|---|\n'
for rate in ${@:-1000 10000}; do
  for arrival in constant poisson; do
    write_stage "$work/s.toml" "open loop $rate/s" "rate = $rate
arrival = \"$arrival\"
max_in_flight = 1000
duration = \"10s\""
    /usr/bin/time -f '%U %S' -o "$work/time" "$bin" run "$work/s.toml" --no-progress --json "$work/r.json" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r user sys <"$work/time"
    python3 - "$work/r.json" "$user" "$sys" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["stages"][0]
o, cpu = s["open_loop"], float(sys.argv[2]) + float(sys.argv[3])
lag = o["schedule_lag_ms"]
print(f"| {o['arrival']} | {o['target_rate']:,.0f}/s | {s['requests']['started']:,} | {o['achieved_rate']:,.1f}/s "
      f"| {(o['achieved_rate'] / o['target_rate'] - 1) * 100:+.2f} % | {lag['p50']:.2f} ms | {lag['p99']:.2f} ms | {o['not_sent']} | {cpu:.1f} s |")
PY
  done
done
