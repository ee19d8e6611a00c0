# Shared by the benchmark scripts (sourced, not run): a release build, a zero-latency
# mock in its own process on 127.0.0.1, and a 50-way scenario against it.
# Sets: bin, work, mock (pid), url. The caller's EXIT trap must kill $mock.

cargo build --release --quiet
bin=$PWD/target/release/llmload
work=$(mktemp -d)

"$bin" mock --port 0 --base-latency-ms 0 --per-inflight-ms 0 >"$work/mock.out" 2>&1 &
mock=$!
for _ in $(seq 50); do grep -q listening "$work/mock.out" && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$work/mock.out")

# write_stage FILE NAME STAGE: one stage (the lines after [[stage]]) against the mock.
write_stage() {
  cat >"$1" <<TOML
name = "$2"
[target]
base_url = "$url"
model = "m"
[prompts]
template = "hello {i}"
[[stage]]
$3
TOML
}

# write_scenario FILE NAME REQUESTS: a 50-way stage of REQUESTS against the mock.
write_scenario() {
  write_stage "$1" "$2" "name = \"50-way\"
concurrency = 50
requests = $3"
}
