#!/usr/bin/env bash
# The generator's own limits (not a test; issue 15's targets), each against a server in
# its own process on 127.0.0.1:
#   1. memory flat in the number of requests: peak RSS of 1,000,000 requests against
#      10,000 (50-way, the zero-latency mock);
#   2. 10,000 concurrent streams (the mock in its own process: 2 s to the first token,
#      200 tokens 20 ms apart): no client-side failure, peak RSS;
#   3. endless 200 bodies at 100-way (benches/server.py endless): every request fails
#      as body_too_large and peak RSS stays under the shared body budget's bound;
#   4. start-up: launch to the first request's arrival, streaming and not
#      (benches/server.py first), median of 5.
# Figures go into docs/benchmarks.md by hand.
# Usage: benches/generator.sh [big-requests]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
mock= work= mock2= py=
trap 'kill $mock $mock2 $py 2>/dev/null || true; rm -rf "$work"' EXIT
. benches/common.sh
big=${1:-1000000}

# rss FILE: peak RSS in MiB from /usr/bin/time -v output.
rss() { python3 -c "import re,sys; print(round(int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', open(sys.argv[1]).read()).group(1))/1024))" "$1"; }
# field FILE EXPR: a figure of the result's first stage.
field() { python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['stages'][0]; print(eval(sys.argv[2]))" "$1" "$2"; }

# target FILE URL STREAM STAGE: a listed prompt to URL, no retries, one stage (the
# lines after [[stage]]).
target() {
  cat >"$1" <<TOML
name = "generator"
[target]
base_url = "$2"
model = "m"
stream = $3
timeout = "60s"
[prompts]
list = ["hello"]
[retry]
max_attempts = 1
[[stage]]
$4
TOML
}

# serve MODE: benches/server.py in MODE; sets py (pid) and port.
serve() {
  rm -f "$work/port" "$work/port.first"
  python3 benches/server.py "$1" "$work/port" & py=$!
  for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
  port=$(cat "$work/port")
}

echo "## 1. memory against the number of requests (50-way, zero-latency mock)"
for n in 10000 "$big"; do
  write_scenario "$work/n.toml" "flat" "$n"
  /usr/bin/time -v "$bin" run "$work/n.toml" --headless --no-progress --json "$work/n.json" >/dev/null 2>"$work/time"
  echo "$n requests: peak RSS $(rss "$work/time") MiB, $(field "$work/n.json" "round(s['throughput']['requests_per_s'])") req/s, ok $(field "$work/n.json" "s['requests']['ok']")"
done

echo "## 2. 10,000 concurrent streams (mock in its own process)"
"$bin" mock --port 0 --base-latency-ms 2000 --per-inflight-ms 0 --inter-token-ms 20 --output-tokens 200 >"$work/mock2.out" 2>&1 &
mock2=$!
for _ in $(seq 50); do grep -q listening "$work/mock2.out" && break; sleep 0.1; done
url2=$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$work/mock2.out")
target "$work/streams.toml" "$url2" true 'name = "10000 streams"
concurrency = 10000
requests = 10000'
/usr/bin/time -v "$bin" run "$work/streams.toml" --headless --no-progress --json "$work/streams.json" >/dev/null 2>"$work/time"
echo "peak RSS $(rss "$work/time") MiB; ok $(field "$work/streams.json" "s['requests']['ok']"), failed $(field "$work/streams.json" "s['requests']['failed']"); TTFT p50 $(field "$work/streams.json" "s['ttft_ms']['p50']") ms; ITL p99 $(field "$work/streams.json" "s['itl_ms']['p99']") ms"
kill $mock2; mock2=

echo "## 3. endless 200 bodies at 100-way"
serve endless
target "$work/endless.toml" "http://127.0.0.1:$port/v1" false 'name = "100-way"
concurrency = 100
requests = 300'
OPENAI_API_KEY=x /usr/bin/time -v "$bin" run "$work/endless.toml" --headless --no-progress --json "$work/endless.json" >/dev/null 2>"$work/time" || true
echo "peak RSS $(rss "$work/time") MiB; failures $(field "$work/endless.json" "s['failures']")"
kill $py; py=

echo "## 4. start-up: launch to the first request's arrival (median of 5)"
for stream in false true; do
  times=()
  for _ in 1 2 3 4 5; do
    serve first
    target "$work/first.toml" "http://127.0.0.1:$port/v1" "$stream" 'name = "one"
requests = 3'
    t0=$(python3 -c 'import time; print(repr(time.time()))')
    OPENAI_API_KEY=x "$bin" run "$work/first.toml" --headless --no-progress >/dev/null 2>&1
    times+=("$(python3 -c "print(round((float(open('$work/port.first').read()) - $t0) * 1000))")")
    kill $py; py=
  done
  echo "stream = $stream: launch → first request ${times[*]} ms"
done
