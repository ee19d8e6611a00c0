#!/usr/bin/env bash
# Trace replay at scale (not a test): a 10,000-line Mooncake-format trace of ~14,000
# input tokens a request (benches/gen-trace.py; conversations and a shared system
# prompt), replayed at speed 20 (about 3 minutes) against the embedded mock, streamed.
# The issue's bars: peak RSS under 300 MB, schedule lag p99 under 5 ms, nothing unsent
# for want of the generator. Beside it, in the same sitting, the same rate of
# ~14,000-token requests from a `rate` stage with one fixed prompt (bodies copied, not
# built): the trace's lag against the plain open loop's.
# Usage: benches/trace.sh [lines] [speed]   (defaults: 10000, 20)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-10000} speed=${2:-20}
cargo build --release --quiet
bin=$PWD/target/release/llmload
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 benches/gen-trace.py "$lines" 19000 $((lines * 38 / 100)) 7 >"$work/trace.jsonl"
read -r mean span rate <<<"$(python3 - "$work/trace.jsonl" "$speed" <<'PY'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
span = L[-1]["timestamp"] / 1000
print(round(sum(l["input_length"] for l in L) / len(L)), span, round(len(L) / (span / float(sys.argv[2])), 1))
PY
)"
# Both sides: the embedded mock, streaming, with prefill and decode costs.
head='[target]
base_url = "mock"
model = "m"
stream = true
[mock]
base_latency_ms = 20
per_inflight_ms = 0
prefill_ms_per_1k_tokens = 2
inter_token_ms = 1'
cat >"$work/trace.toml" <<TOML
name = "trace replay at scale"
$head
[prompts]
trace = { file = "trace.jsonl", speed = $speed }
[[stage]]
name = "trace"
TOML
# One prompt of the trace's mean length, sent at the trace's mean rate.
python3 - "$mean" >"$work/prompt.txt" <<'PY'
import sys
print(" ".join(["the", "city", "river", "garden"][i % 4] for i in range(int(sys.argv[1]))))
PY
cat >"$work/rate.toml" <<TOML
name = "open loop at the same rate"
$head
[prompts]
file = "prompt.txt"
[request]
max_tokens = 124
[[stage]]
name = "rate"
rate = $rate
requests = $lines
TOML
echo "trace: $lines lines, mean input $mean tokens, span $span s at speed $speed = $rate req/s"
for side in trace rate; do
  /usr/bin/time -v "$bin" run "$work/$side.toml" --no-progress --json "$work/$side.json" >/dev/null 2>"$work/$side.err" ||
    { cat "$work/$side.err"; exit 1; }
  python3 - "$work/$side.json" "$work/$side.err" "$side" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))["stages"][0]
err = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
cpu = re.search(r"Percent of CPU this job got: (\d+)%", err).group(1)
lag, o = s["open_loop"]["schedule_lag_ms"], s["open_loop"]
print(f"| {sys.argv[3]} | {s['requests']['ok']:,} | {s['wall_time_s']:.0f} s | {o['achieved_rate']:.1f} | "
      f"{lag['p50']:.2f} | {lag['p99']:.2f} | {lag['max']:.1f} | {o['not_sent']} | {rss:.0f} MiB | {cpu} % |")
PY
done
