#!/usr/bin/env bash
# What a round trip to PostgreSQL costs on this machine when its CPUs are
# idle, against the same with one CPU kept busy: pgbench, one client, the
# prepared statement `SELECT 1`, on a throwaway cluster over its unix
# socket, interleaved in rounds.
#
# On a KVM guest whose idle vCPUs halt without polling first
# (/sys/module/haltpoll/parameters/guest_halt_poll_ns = 0), each wake-up of
# an idle process goes through the hypervisor. A change's way to a fresh
# product at low load is a chain of such wake-ups (writer's backend ->
# daemon's listening connection -> daemon -> its backends, four round
# trips), so this, not kck's work, sets most of commit -> fresh there
# (bench/write_path.py --only 3).
#
# Usage (root or a user that can run initdb): bash bench/idle_wakeup.sh [ROUNDS] [SECONDS]
set -euo pipefail

rounds=${1:-3}
seconds=${2:-3}
source "$(dirname "$0")/cluster.sh"
start_cluster idle-wakeup
echo "SELECT 1;" >"$dir/one.sql"
chmod a+r "$dir/one.sql"

spinner=
bench_cleanup() { if [[ -n $spinner ]]; then kill "$spinner" 2>/dev/null || true; fi; }

latency() {  # pgbench's average latency in ms
  "${as_pg[@]}" "$bin/pgbench" -n -c 1 -T "$seconds" -M prepared -f "$dir/one.sql" "$db" 2>&1 |
    sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}

echo "cpuidle driver: $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)," \
     "guest_halt_poll_ns: $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)," \
     "CPUs: $(nproc)"
echo "pgbench -c 1 -T $seconds -M prepared, SELECT 1; average latency in ms"
ratios=()
for r in $(seq 1 "$rounds"); do
  idle=$(latency)
  (while :; do :; done) &
  spinner=$!
  busy=$(latency)
  kill "$spinner"; wait "$spinner" 2>/dev/null || true; spinner=
  ratio=$(awk -v a="$idle" -v b="$busy" 'BEGIN { printf "%.1f", a / b }')
  ratios+=("$ratio")
  echo "round $r: idle $idle, one CPU busy $busy (idle / busy ${ratio}x)"
done
printf '%s\n' "${ratios[@]}" | sort -n |
  awk '{ v[NR] = $1 } END { printf "median idle / busy: %sx (%s-%s)\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
