#!/usr/bin/env bash
# Dashboard cost benchmark (not a test): the same 50-way load against a zero-latency
# mock in its own process, once with --headless and once with the dashboard drawn in a
# real terminal (tmux). Prints requests/s for each, alternating, N rounds.
# Usage: benches/dashboard.sh [requests] [rounds]     (default 200000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
rounds=${2:-3}
session=llmload-bench-$$
mock= work=
trap 'kill $mock 2>/dev/null || true; tmux kill-session -t $session 2>/dev/null || true; rm -rf "$work"' EXIT

. benches/common.sh
write_scenario "$work/s.toml" "dashboard cost" $n

rate() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['stages'][0]['throughput']['requests_per_s']))" "$1"; }

cpu() { awk '{printf "%.2f", $1 + $2}' "$1"; }

echo "| round | headless req/s | dashboard req/s | headless CPU s | dashboard CPU s |"
echo "|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  /usr/bin/time -f '%U %S' -o "$work/h.time" "$bin" run "$work/s.toml" --headless --no-progress --json "$work/h.json" >/dev/null 2>&1
  rm -f "$work/d.json" "$work/d.time"
  # tmux is niced: it is the terminal emulator here, and on a real desk that runs on
  # cores of its own rather than competing with the load generator.
  nice -n 19 tmux new-session -d -s "$session" -x 120 -y 40 "nice -n -19 /usr/bin/time -f '%U %S' -o $work/d.time $bin run $work/s.toml --json $work/d.json"
  # The final dashboard waits for a key; the JSON is written once it is dismissed.
  until tmux capture-pane -p -t "$session" | grep -q "q: exit and print"; do sleep 0.2; done
  tmux send-keys -t "$session" Enter
  for _ in $(seq 100); do [ -s "$work/d.time" ] && break; sleep 0.1; done
  tmux kill-session -t "$session" 2>/dev/null || true
  echo "| $r | $(rate "$work/h.json") | $(rate "$work/d.json") | $(cpu "$work/h.time") | $(cpu "$work/d.time") |"
done
