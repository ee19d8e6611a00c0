#!/usr/bin/env bash
# A/B benchmark (not a test): two llmload binaries against the same zero-latency mock
# on 127.0.0.1, in alternating rounds, 50-way; medians of requests/s and of CPU per
# request (user + sys / requests), and peak RSS. For "did this change cost the hot
# path anything": build the old commit into another target dir and pass both binaries.
# Usage: benches/ab.sh OLD_BIN NEW_BIN [requests] [rounds] [stream | rate=N]
#   (defaults: 100000 requests, 5 rounds; "stream" streams 16-token replies; "rate=N"
#   sends them open loop at N/s, at most 1,000 in flight, and adds the achieved rate
#   against N, the schedule lag's p99 and the arrivals not sent)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 n=${3:-100000} rounds=${4:-5} stream=${5:-}
mock= work=
trap 'kill $mock 2>/dev/null || true; rm -rf "$work"' EXIT

. benches/common.sh

write_scenario "$work/s.toml" "a/b" "$n"
if [ "${stream%%=*}" = rate ]; then
  write_stage "$work/s.toml" "a/b open" "name = \"open\"
rate = ${stream#rate=}
max_in_flight = 1000
requests = $n"
elif [ "$stream" = stream ]; then
  sed -i 's/^model = "m"$/model = "m"\nstream = true/' "$work/s.toml"
fi
for round in $(seq "$rounds"); do
  for side in old new; do
    b=${!side}
    /usr/bin/time -f '%M %U %S' -o "$work/time" "$b" run "$work/s.toml" --no-progress --json "$work/r.json" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r rss_kb user sys <"$work/time"
    python3 - "$work/r.json" "$n" "$rss_kb" "$user" "$sys" "$side" >>"$work/rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["stages"][0]
n, rss, cpu = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) + float(sys.argv[5])
o = r.get("open_loop") or {}
sent = r["requests"]["started"]
assert r["requests"]["ok"] == sent and sent + o.get("not_sent", 0) == n, r["requests"]
rate = o["achieved_rate"] / o["target_rate"] - 1 if o else 0.0
lag = o["schedule_lag_ms"]["p99"] if o else 0.0
print(sys.argv[6], r["throughput"]["requests_per_s"], cpu / sent * 1e6, rss / 1024, rate * 100, lag, o.get("not_sent", 0))
PY
  done
done
python3 - "$work/rows" "$n" "$rounds" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda side, i: st.median(float(r[i]) for r in rows if r[0] == side)
print(f"| side | requests/s (median of {sys.argv[3]}) | CPU per request | peak RSS | open loop: achieved vs target | lag p99 | not sent |")
print("|---|---|---|---|---|---|---|")
for side in ("old", "new"):
    print(f"| {side} | {med(side, 1):,.0f} | {med(side, 2):.1f} µs | {med(side, 3):.1f} MiB | {med(side, 4):+.2f} % | {med(side, 5):.2f} ms | {med(side, 6):.0f} |")
print(f"new/old: {med('new', 1) / med('old', 1):.2f}x requests/s, {med('new', 2) / med('old', 2):.2f}x CPU per request")
PY
