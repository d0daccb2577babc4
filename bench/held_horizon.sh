#!/usr/bin/env bash
# Writers and the daemon's own tables while another transaction holds back
# the xmin horizon: pgbench -R 1000 -c 2 (single-row UPDATEs of a 200k-row
# table, synchronous_commit=off) for SECONDS with DAEMONS `kck listen`
# draining and 100 grp_sum products stored; a REPEATABLE READ snapshot is
# held from SECONDS/4 to 3*SECONDS/4. Every 10 s: the outbox's pending
# changes, kck.claims' size and dead rows, and the one-row kck.listeners'
# size (what writers once read for the wake-up flag). At the end: pgbench's
# schedule lag, which grows when writers wait.
#
# Usage (root or a user that can run initdb):
#   bash bench/held_horizon.sh [KCK] [DAEMONS (1)] [SECONDS (240)]
set -euo pipefail

kck=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/kck}
daemons=${2:-1}
seconds=${3:-240}
pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
source "$(dirname "$0")/cluster.sh"
start_cluster held-horizon
create_t
install_grp_sum "$kck" "SELECT jsonb_build_object('n', count(*), 'sum', sum(v)) FROM t WHERE grp = :grp"
store_grp_sum "$kck"
for _ in $(seq 1 "$daemons"); do
  "$kck" --db "$db" --log-level warn listen >>"$dir/daemons.log" 2>&1 &
  pids+=($!)
done
update_script

echo "held_horizon: $daemons daemon(s), pgbench -R 1000 -c 2 -T $seconds, snapshot held $((seconds / 4))-$((3 * seconds / 4)) s"
echo "kck: $kck"
(sleep $((seconds / 4))
 psql "$db" -qXc "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1; SELECT pg_sleep($((seconds / 2))); COMMIT" >/dev/null) &
pids+=($!)
(printf '%6s %8s %12s %12s %14s\n' "t (s)" "pending" "claims (kB)" "claims dead" "listeners (kB)"
 for i in $(seq 1 $((seconds / 10))); do
   sleep 10
   # kck.claims is schema 7's: '-' with an older kck.
   psql "$db" -AtqX -F' ' -c "SELECT $((i * 10)), (SELECT count(*) FROM kck.changes),
       coalesce((pg_total_relation_size(to_regclass('kck.claims')) / 1024)::text, '-'),
       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = to_regclass('kck.claims'))::text, '-'),
       pg_total_relation_size('kck.listeners') / 1024" |
     awk '{printf "%6s %8s %12s %12s %14s\n", $1, $2, $3, $4, $5}'
 done) &
pids+=($!)
PGOPTIONS="-c synchronous_commit=off" "$bin/pgbench" -n -R 1000 -c 2 -j 2 -T "$seconds" -f "$dir/update.sql" "$db" \
  >"$dir/pgbench.log" 2>&1
sleep 1
grep -E "schedule lag|^tps" "$dir/pgbench.log"
