#!/usr/bin/env bash
# What the watcher saves (not a test): each shipped sweep run both ways on the embedded
# mock, in the same sitting, with the wall time and the answer of each.
#  - scenarios/find-the-limit.toml (a rate sweep): with its default stop_on_saturation,
#    and with `stop_on_saturation = false` (every point its whole duration, and drained).
#  - scenarios/find-the-knee.toml (a concurrency sweep, 4 s points): as shipped, and
#    with `until = { metric = "p50_ms", within = "5%", max = "60s" }` per point.
# Usage: [LLMLOAD_BIN=PATH] benches/watched.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMLOAD_BIN:-target/release/llmload}
[ -x "$bin" ] || cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed 's/^# stop_on_saturation = false .*/stop_on_saturation = false/' scenarios/find-the-limit.toml > "$dir/limit-nostop.toml"
sed 's/^duration = "4s"/until = { metric = "p50_ms", within = "5%", max = "60s" }/' scenarios/find-the-knee.toml > "$dir/knee-until.toml"
grep -q '^stop_on_saturation = false' "$dir/limit-nostop.toml" && grep -q '^until = ' "$dir/knee-until.toml"
one() {
  local name=$1 file=$2 t0 t1
  t0=$(date +%s.%N)
  "$bin" run --headless --no-progress --json "$dir/$name.json" "$file" > "$dir/$name.txt" 2>&1 || true
  t1=$(date +%s.%N)
  printf '%-26s %6.1f s  %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$(grep '^sweep:' "$dir/$name.txt" | cut -c1-200)"
}
one limit-saturation-stop scenarios/find-the-limit.toml
one limit-no-stop "$dir/limit-nostop.toml"
one knee-4s-points scenarios/find-the-knee.toml
one knee-until-p50-5pct "$dir/knee-until.toml"
