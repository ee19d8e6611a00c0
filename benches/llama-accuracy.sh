#!/usr/bin/env bash
# llmload's timings against a real server's own: llama.cpp's llama-server (Gemma-3 270M,
# CPU, as scripts/install-llama-server caches it) times every request itself and says so
# in its reply (`timings`: prompt_ms, predicted_ms over predicted_n - 1 decode steps).
# For each concurrency, streamed chat requests with a fixed output length; per request,
# llmload's TTFT minus the server's prompt time (what surrounds the prompt: HTTP, a
# slot, the template) and llmload's ITL against the server's per-token time; failures,
# reconnects and output tokens against the server's count.
#
#   benches/llama-accuracy.sh [requests per level] [levels]
#   e.g. benches/llama-accuracy.sh 40 "1 2 4 8"
#
# The server runs with 4 slots (-np 4) on 2 threads: from 8-way requests queue for a
# slot, and TTFT then holds the wait (prompt_ms does not). LLMLOAD_BIN picks the build.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-40}"
levels="${2:-1 2 4 8}"
eval "$(scripts/install-llama-server)"
bin="${LLMLOAD_BIN:-target/release/llmload}"
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$LLMLOAD_LLAMA_SERVER" -m "$LLMLOAD_LLAMA_MODEL" --host 127.0.0.1 --port "$port" -c 4096 -np 4 -t 2 \
  --alias gemma3-270m --no-webui >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "llama-server $("$LLMLOAD_LLAMA_SERVER" --version 2>&1 | head -1), $n requests a level, 24 tokens each, streamed"
for c in $levels; do
  cat >"$work/s.toml" <<EOF
name = "accuracy"
[target]
base_url = "http://127.0.0.1:$port/v1"
model = "gemma3-270m"
stream = true
[prompts]
template = "Write a short line about the number {i}."
[request]
max_tokens = 24
ignore_eos = true
[[stage]]
name = "$c-way"
concurrency = $c
requests = $n
EOF
  "$bin" run "$work/s.toml" --headless --no-progress --json "$work/r$c.json" --requests-out "$work/l$c.jsonl" >/dev/null 2>&1 || true
  python3 - "$work/r$c.json" "$work/l$c.jsonl" <<'EOF'
import json, statistics, sys
result = json.load(open(sys.argv[1]))["stages"][0]
lines = [json.loads(l) for l in open(sys.argv[2])]
ok = [l for l in lines if l["outcome"] == "ok" and l.get("server_timings")]
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
gap = [l["ttft_ms"] - l["server_timings"]["prompt_ms"] for l in ok]
itl = [abs(l["itl_ms"] - l["server_timings"]["per_token_ms"]) / l["server_timings"]["per_token_ms"] * 100 for l in ok]
same = sum(l["output_tokens"] == l["server_timings"]["predicted_n"] for l in ok)
print(f'{result["name"]:>6}: {result["requests"]["ok"]} ok, {result["requests"]["failed"]} failed, '
      f'{result["reconnects"]} reconnects | TTFT - prompt_ms: median {statistics.median(gap):.1f} ms, '
      f'p95 {q(gap, .95):.1f} ms, min {min(gap):.1f} ms | |ITL - server per token|: median {statistics.median(itl):.2f} %, '
      f'max {max(itl):.2f} % | server per token median {statistics.median(l["server_timings"]["per_token_ms"] for l in ok):.1f} ms | '
      f'output tokens = server count: {same}/{len(ok)}')
EOF
done
