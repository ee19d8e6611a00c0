#!/usr/bin/env bash
# llmload against oha in the same sitting (not a test): nginx (1 worker, loopback only)
# serves (a) a fixed chat.completion JSON and (b) a fixed 31-chunk SSE body (a role
# chunk, 28 content chunks, a finish chunk, a usage chunk, then [DONE]); llmload
# --headless (which parses and times every chunk and counts tokens) and oha 1.16.0
# (which reads the bytes) send the same POST at 50-way for a fixed count, alternating,
# several rounds. Per run: requests/s, CPU per request (user+sys), peak RSS, and the
# mean in flight achieved (Little's law: rate × mean latency). The headline is the
# median of the paired llmload/oha ratios: this 2-core box is shared and noisy.
# Installs nginx (Debian) and oha (`cargo install --locked oha --version 1.16.0`) when
# missing, so figures compare across runs.
# Then once each, open loop: 20,000 requests/s, constant, for 10 s (llmload `rate`,
# oha `-q`), both at most CONCURRENCY in flight: achieved rate, llmload's schedule lag,
# CPU per request.
# LLMLOAD_BIN_B: a second llmload build run in the same rounds (a third tool, `llmload_b`,
# its order rotated with the others): two builds compared against each other and oha in
# one sitting, instead of two sittings whose noise is wider than the difference.
# Two bodies of each kind: `json`/`sse` as above (short words), and `code`/`ssecode`: a
# multi-line code answer full of escapes (newlines, quotes, backslashes, tabs, a non-ASCII
# character as \u), with real usage figures (issue 33's more realistic body).
# BODIES: which to run (default: all four).
# Usage: [LLMLOAD_BIN=PATH] [LLMLOAD_BIN_B=PATH] [BODIES="json sse"] benches/vs-oha.sh [requests] [rounds] [concurrency]   (defaults: 50000, 3, 50)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50000} rounds=${2:-3} c=${3:-50}

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if ! oha --version 2>/dev/null | grep -q '1\.16\.0'; then
  cargo install --locked oha --version 1.16.0 --quiet
fi
# LLMLOAD_BIN: another build to measure (an older commit's, in the same sitting).
if [ -n "${LLMLOAD_BIN:-}" ]; then
  bin=$LLMLOAD_BIN
else
  cargo build --release --quiet
  bin=$PWD/target/release/llmload
fi
work=$(mktemp -d)
trap '[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

cat >"$work/chat.json" <<'JSON'
{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}
JSON
python3 - >"$work/stream.txt" <<'PY'
import json
chunk = lambda delta, finish=None: {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
events = [chunk({"role": "assistant", "content": ""})]
events += [chunk({"content": w}) for w in (["hello", " world"] * 14)]
events += [chunk({}, "stop"), {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                                "usage": {"prompt_tokens": 1, "completion_tokens": 28, "total_tokens": 29}}]
print("".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events) + "data: [DONE]\n", end="\n")
PY
python3 - "$work/code.json" "$work/streamcode.txt" <<'PY'
import json, sys
code = ('def parse(line: str) -> dict:\n    """Split a "key=value" line; values may hold \\t and quotes."""\n'
        '    key, _, value = line.partition("=")\n    if not key:\n        raise ValueError(f"no key in {line!r}")\n'
        '    return {key.strip(): value.strip().replace("\\\\", "\\\\\\\\")}  # caf\u00e9\n\n'
        'for row in open("data.txt"):\n\tprint(parse(row))\n')
usage = {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908,
         "prompt_tokens_details": {"cached_tokens": 768}, "completion_tokens_details": {"reasoning_tokens": 0}}
head = {"id": "chatcmpl-9f2c1d", "object": "chat.completion.chunk", "created": 1733000000, "model": "m", "system_fingerprint": "fp_44709d6fcb"}
whole = dict(head, object="chat.completion", choices=[{"index": 0, "message": {"role": "assistant", "content": code, "refusal": None},
             "logprobs": None, "finish_reason": "stop"}], usage=usage)
json.dump(whole, open(sys.argv[1], "w"), ensure_ascii=True, separators=(",", ":"))
step = -(-len(code) // 28)
chunk = lambda delta, finish=None: dict(head, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
events = [chunk({"role": "assistant", "content": "", "refusal": None})]
events += [chunk({"content": code[i:i + step]}) for i in range(0, len(code), step)]
events += [chunk({}, "stop"), dict(head, choices=[], usage=usage)]
open(sys.argv[2], "w").write("".join(f"data: {json.dumps(e, ensure_ascii=True, separators=(',', ':'))}\n\n" for e in events) + "data: [DONE]\n\n")
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    # A POST to a static file is a 405; error_page serves the file instead.
    location = /json/v1/chat/completions { alias $work/chat.json; default_type application/json; error_page 405 =200 \$uri; }
    location = /sse/v1/chat/completions { alias $work/stream.txt; default_type text/event-stream; error_page 405 =200 \$uri; }
    location = /code/v1/chat/completions { alias $work/code.json; default_type application/json; error_page 405 =200 \$uri; }
    location = /ssecode/v1/chat/completions { alias $work/streamcode.txt; default_type text/event-stream; error_page 405 =200 \$uri; }
  }
}
CONF
# nginx's workers run as another user: the files must be readable to it.
chmod 755 "$work" && chmod 644 "$work/chat.json" "$work/stream.txt" "$work/code.json" "$work/streamcode.txt"
bodies=${BODIES:-json sse code ssecode}
streamed() { case $1 in sse*) echo true ;; *) echo false ;; esac; }
"$nginx" -c "$work/nginx.conf"
for _ in $(seq 50); do curl -sf -X POST "http://127.0.0.1:$port/json/v1/chat/completions" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "http://127.0.0.1:$port/sse/v1/chat/completions" | grep -q '^data: \[DONE\]' || { echo "nginx does not serve the bodies" >&2; exit 1; }

# The scenario for one body: a fixed prompt, 50-way, no retries.
for body in $bodies; do
  stream=$(streamed "$body")
  cat >"$work/$body.toml" <<TOML
name = "vs oha, $body"
[target]
base_url = "http://127.0.0.1:$port/$body/v1"
model = "m"
stream = $stream
[prompts]
list = ["hello"]
[retry]
max_attempts = 1
[[stage]]
name = "$c-way"
concurrency = $c
requests = $n
TOML
done

# run TOOL BODY: one run; appends "tool body req/s cpu_us_per_req rss_mib in_flight".
run() {
  local tool=$1 body=$2 stream
  stream=$(streamed "$body")
  if [ "$tool" = llmload ] || [ "$tool" = llmload_b ]; then
    local b=$bin
    [ "$tool" = llmload ] || b=$LLMLOAD_BIN_B
    OPENAI_API_KEY=x /usr/bin/time -v "$b" run "$work/$body.toml" --headless --no-progress --json "$work/r.json" \
      >/dev/null 2>"$work/time" || { cat "$work/time"; exit 1; }
  else
    /usr/bin/time -v oha -n "$n" -c "$c" -m POST -H 'Content-Type: application/json' \
      -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"stream\":$stream}" \
      --no-tui --output-format json "http://127.0.0.1:$port/$body/v1/chat/completions" >"$work/r.json" 2>"$work/time" ||
      { cat "$work/time"; exit 1; }
  fi
  python3 - "$tool" "$body" "$work/r.json" "$work/time" "$n" >>"$work/rows" <<'PY'
import json, re, sys
tool, body, result, timing, n = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), open(sys.argv[4]).read(), int(sys.argv[5])
cpu = sum(float(re.search(p + r": ([\d.]+)", timing).group(1)) for p in ("User time \(seconds\)", "System time \(seconds\)"))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
if tool.startswith("llmload"):
    s = result["stages"][0]
    assert s["requests"]["ok"] == n, s["requests"]
    rate, mean_s = s["throughput"]["requests_per_s"], s["latency_ms"]["mean"] / 1000
else:
    assert result["summary"]["successRate"] == 1.0 and set(result["statusCodeDistribution"]) == {"200"}, result["statusCodeDistribution"]
    rate, mean_s = result["summary"]["requestsPerSec"], result["summary"]["average"]
print(tool, body, f"{rate:.0f}", f"{cpu / n * 1e6:.1f}", f"{rss:.0f}", f"{rate * mean_s:.1f}")
PY
}

tools=(oha llmload)
[ -z "${LLMLOAD_BIN_B:-}" ] || tools+=(llmload_b)
for round in $(seq "$rounds"); do
  for body in $bodies; do
    # Rotate which tool goes first, so none always meets a warmer machine.
    for i in "${!tools[@]}"; do run "${tools[$(((i + round) % ${#tools[@]}))]}" "$body"; done
  done
done

python3 - "$work/rows" "$n" "$c" "$rounds" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
n, c, rounds = sys.argv[2], sys.argv[3], int(sys.argv[4])
print(f"{n} requests, {c}-way, {rounds} rounds (medians)\n")
print("| body | tool | requests/s | CPU per request | peak RSS | mean in flight |\n|---|---|---|---|---|---|")
med = lambda tool, body, i: st.median(float(r[i]) for r in rows if r[0] == tool and r[1] == body)
tools = [t for t in ("oha", "llmload", "llmload_b") if any(r[0] == t for r in rows)]
bodies = list(dict.fromkeys(r[1] for r in rows))
for body in bodies:
    for tool in tools:
        print(f"| {body} | {tool} | {med(tool, body, 2):,.0f} | {med(tool, body, 3):.1f} µs | {med(tool, body, 4):.0f} MiB | {med(tool, body, 5):.1f} |")
print()
pairs = [(t, "oha") for t in tools if t != "oha"] + ([("llmload_b", "llmload")] if "llmload_b" in tools else [])
for ours_name, theirs_name in pairs:
    for body in bodies:
        ours = [r for r in rows if r[0] == ours_name and r[1] == body]
        theirs = [r for r in rows if r[0] == theirs_name and r[1] == body]
        rate = st.median(float(a[2]) / float(b[2]) for a, b in zip(ours, theirs))
        cpu = st.median(float(a[3]) / float(b[3]) for a, b in zip(ours, theirs))
        print(f"{body}: {ours_name}/{theirs_name} requests/s {rate:.2f}x, CPU per request {cpu:.2f}x (medians of paired rounds)")
PY

# Open loop, once each: does the generator hold 20,000 arrivals a second?
cat >"$work/open.toml" <<TOML
name = "vs oha, open loop"
[target]
base_url = "http://127.0.0.1:$port/json/v1"
model = "m"
[prompts]
list = ["hello"]
[retry]
max_attempts = 1
[[stage]]
name = "20000/s"
rate = 20000
arrival = "constant"
max_in_flight = $c
duration = "10s"
TOML
echo
echo "open loop, 20,000/s constant for 10 s:"
OPENAI_API_KEY=x /usr/bin/time -f '%U %S' -o "$work/time" "$bin" run "$work/open.toml" --headless --no-progress --json "$work/r.json" >/dev/null
python3 - "$work/r.json" "$work/time" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["stages"][0]
o, cpu = s["open_loop"], sum(map(float, open(sys.argv[2]).read().split()))
lag = o["schedule_lag_ms"]
print(f"llmload: achieved {o['achieved_rate']:,.1f}/s ({(o['achieved_rate'] / o['target_rate'] - 1) * 100:+.2f} %), "
      f"lag p50 {lag['p50']:.2f} ms, p99 {lag['p99']:.2f} ms, not sent {o['not_sent']}, "
      f"CPU per request {cpu / max(1, s['requests']['started']) * 1e6:.1f} µs")
PY
/usr/bin/time -f '%U %S' -o "$work/time" oha -q 20000 -z 10s -c "$c" -m POST -H 'Content-Type: application/json' \
  -d '{"model":"m","messages":[{"role":"user","content":"hello"}],"stream":false}' \
  --no-tui --output-format json "http://127.0.0.1:$port/json/v1/chat/completions" >"$work/r.json"
python3 - "$work/r.json" "$work/time" <<'PY'
import json, sys
r, cpu = json.load(open(sys.argv[1]))["summary"], sum(map(float, open(sys.argv[2]).read().split()))
n = r["requestsPerSec"] * r["total"]
print(f"oha:     achieved {r['requestsPerSec']:,.1f}/s ({(r['requestsPerSec'] / 20000 - 1) * 100:+.2f} %), CPU per request {cpu / n * 1e6:.1f} µs")
PY
