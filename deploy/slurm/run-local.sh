#!/usr/bin/env bash
# A real Slurm on this machine, for 127.0.0.1 only: installs Debian's slurm-wlm and
# munge when missing, starts munged (as its own user), slurmctld and slurmd from a
# configuration in a temporary directory (proctrack/linuxproc, task/none, no cgroups,
# NodeAddr=127.0.0.1, 8 CPUs declared and oversubscription, so four tasks start
# together on 2 cores), runs one `llmload mock`, submits deploy/slurm/llmload.sbatch as
# a 4-task array against it, merges the shards and checks the merge: counts are the
# shards' sums, and the merged e2e histogram is exactly the shards' added (HdrHistogram's
# own Python reader), so its percentiles are. Everything it started is stopped at exit.
#   deploy/slurm/run-local.sh [LLMLOAD_BINARY]     # as root; tests/slurm.rs runs it
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-target/debug/llmload}")
python=${LLMLOAD_PYTHON:-.venv/bin/python}
[ -x "$bin" ] || { echo "no llmload binary at $bin (cargo build first)" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

dir=$(mktemp -d /tmp/llmload-slurm.XXXXXX)
pids=()
# slurmctld saves its state as it shuts down: wait for each daemon (they detach, so
# poll) to be gone before the directory goes, and keep the script's own exit status
# (a cleanup step must not fail it).
stop() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null || true; done
}
cleanup() {
  local status=$? daemons=() f
  for f in slurmd slurmctld munged; do
    [ -f "$dir/$f.pid" ] && daemons+=("$(cat "$dir/$f.pid")")
  done
  stop "${daemons[@]}"
  for f in "${pids[@]}"; do kill "$f" 2>/dev/null || true; wait "$f" 2>/dev/null || true; done
  rm -rf "$dir" 2>/dev/null || { sleep 0.5; rm -rf "$dir" || true; }
  exit "$status"
}
trap cleanup EXIT
chmod 755 "$dir"  # munged, as its own user, reaches its files below
mkdir -p "$dir"/{state,spool,log,munge,results}
port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# munge: its own key, socket and pid here; munged runs as the munge user.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=128 status=none
chown -R munge:munge "$dir/munge" && chmod 711 "$dir/munge" && chmod 400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"
runuser -u munge -- munged --key-file="$dir/munge/munge.key" --socket="$socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed"
cp "$dir/munge/munged.pid" "$dir/munged.pid"

cat >"$dir/slurm.conf" <<EOF
ClusterName=llmload
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$(port)
SlurmdPort=$(port)
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N localhost
for _ in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo -h -o %T | grep -q idle || { cat "$dir"/log/*.log >&2; echo "slurm did not come up" >&2; exit 1; }

# One mock on this machine, the target of every shard.
"$bin" mock --port 0 >"$dir/mock.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'http://127.0.0.1:' "$dir/mock.out" && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$dir/mock.out" | head -1)
cat >"$dir/scenario.toml" <<EOF
name = "slurm: 4 shards, one server"
[target]
base_url = "$url"
model = "m"
[prompts]
template = "hello {i}"
[thresholds]
p99_ms = "< 5000"
[[stage]]
name = "16-way"
concurrency = 16
requests = 400
EOF

start=$(date -u -d +6sec +%Y-%m-%dT%H:%M:%SZ)   # resolved once, for every task
job=$(sbatch --parsable --array=0-3 --oversubscribe --chdir="$dir" \
  --export=ALL,SCENARIO="$dir/scenario.toml",START_AT="$start",RESULTS="$dir/results",LLMLOAD="$bin" \
  deploy/slurm/llmload.sbatch)
echo "submitted job array $job: 4 tasks, start at $start"
# sbatch --wait polls slowly; squeue every 0.5 s.
for _ in $(seq 240); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.5; done
[ -z "$(squeue -h -j "$job")" ] || { echo "the array did not finish in 120 s" >&2; exit 1; }
for i in 0 1 2 3; do
  [ -f "$dir/results/shard-$i.json" ] || { cat "$dir"/llmload-*.out >&2; echo "task $i wrote no result" >&2; exit 1; }
done
"$bin" merge "$dir"/results/shard-*.json -o "$dir/results/merged.json"
"$python" - "$dir/results" <<'EOF'
import base64, json, sys, zlib
from hdrh.histogram import HdrHistogram
d = sys.argv[1]
shards = [json.load(open(f"{d}/shard-{i}.json")) for i in range(4)]
merged = json.load(open(f"{d}/merged.json"))
def decode(text):
    return HdrHistogram.decode(text)
for k, st in enumerate(merged["stages"]):
    parts = [s["stages"][k] for s in shards]
    for f in ("started", "ok", "failed", "cancelled"):
        assert st["requests"][f] == sum(p["requests"][f] for p in parts), f
    added = decode(parts[0]["histograms"]["e2e_us"]["hdr"])
    for p in parts[1:]:
        added.add(decode(p["histograms"]["e2e_us"]["hdr"]))
    m = decode(st["histograms"]["e2e_us"]["hdr"])
    assert m.get_total_count() == added.get_total_count() == st["requests"]["ok"]
    for q in (50, 90, 99, 99.9):
        assert m.get_value_at_percentile(q) == added.get_value_at_percentile(q), q
    lags = [s["start_lag_ms"] for s in shards]
    print(f"{st['name']}: {st['requests']['ok']} ok = {' + '.join(str(p['requests']['ok']) for p in parts)} from shards "
          f"{sorted(s['shard']['index'] for s in shards)} of {shards[0]['shard']['count']}; merged histogram = the shards' added "
          f"(p50 {m.get_value_at_percentile(50)} us, p99 {m.get_value_at_percentile(99)} us, p99.9 {m.get_value_at_percentile(99.9)} us); "
          f"p99 {st['latency_ms']['p99']} ms; start lags {min(lags):.2f}-{max(lags):.2f} ms; run id {merged['run_id']}")
print("verdict:", "pass" if merged["verdict"]["passed"] else "FAIL")
EOF
