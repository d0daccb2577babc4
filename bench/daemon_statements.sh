#!/usr/bin/env bash
# Where the daemon's database time goes under load: pgbench single-row
# UPDATEs (16 clients) on a 200k-row table with a kck SQL primer on it (100
# of its 1000 products stored), the daemon draining, pg_stat_statements
# (track = top) over one run: the statements with the most execution time,
# their calls and rows. Also the writers' TPS without the daemon and with
# it, for context (one run each, not a ratio to trust: see write_path.py).
#
# With TRACK=all the statements inside functions (kck.claim_batch's
# part scans, kck.consume_claim's deletions) are listed too, and
# SYNC_OFF=1 runs the writers with synchronous_commit=off.
#
# Usage (root or a user that can run initdb):
#   [TRACK=all] [SYNC_OFF=1] bash bench/daemon_statements.sh [KCK] [SECONDS]
set -euo pipefail

kck=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/kck}
seconds=${2:-10}
source "$(dirname "$0")/cluster.sh"
start_cluster daemon-statements
listener=
bench_cleanup() { if [[ -n $listener ]]; then kill "$listener" 2>/dev/null || true; fi; }

psql "$db" -qXc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -w restart -o "-k $dir -c listen_addresses='' -p 5432" >/dev/null
psql "$db" -qXc "CREATE EXTENSION pg_stat_statements" -c "ALTER SYSTEM SET pg_stat_statements.track = '${TRACK:-top}'" \
  -c "SELECT pg_reload_conf()" >/dev/null
create_t
install_grp_sum "$kck"
store_grp_sum "$kck"
update_script
pgoptions=
[[ -n ${SYNC_OFF:-} ]] && pgoptions="-c synchronous_commit=off"
tps() { PGOPTIONS=$pgoptions pgbench_tps "$db" 16 "$1"; }

echo "writers' TPS, 16 clients, ${seconds} s: without a daemon $(tps "$seconds")"
"$kck" --db "$db" listen --log-level warn >"$dir/listen.log" 2>&1 &
listener=$!
sleep 1
tps 3 >/dev/null  # the daemon catches up and warms up
psql "$db" -qXc "SELECT pg_stat_statements_reset()" >/dev/null
echo "writers' TPS, 16 clients, ${seconds} s: with the daemon draining $(tps "$seconds")"
sleep 1
limit=12
[[ ${TRACK:-top} == all ]] && limit=20
psql "$db" -X -v limit="$limit" <<'SQL'
SELECT calls, round(total_exec_time::numeric) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms, rows,
       left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS statement
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT :limit;
SQL
