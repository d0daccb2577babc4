#!/usr/bin/env bash
# What a draining daemon costs the writers, for several kck builds side by
# side: pgbench single-row UPDATEs on bench/cluster.sh's t (200k rows, 1000
# groups, 100 grp_sum products stored), each build installed into its own
# database of one throwaway cluster (so each runs its own schema version),
# its capture in C when kck_capture.so is beside it. A round runs, for each
# build in turn, the writers with no daemon and then with that build's
# `kck listen` draining; the figure is the TPS with the daemon over the TPS
# without it in the same round and database, with the daemon's CPU
# (its process and its backends) and the changes left in the outbox when
# the writers stop. The last lines: per build, the median over rounds with
# min-max, and per round its ratio over the first build's.
#
# With -t it measures the capture alone instead: the writers with the
# build's capture triggers disabled, then enabled, no daemon running.
#
# Usage (root or a user that can run initdb):
#   bash bench/daemon_ab.sh [-r ROUNDS] [-s SECONDS] [-c CLIENTS] [-o] [-t] KCK...
#   -o  synchronous_commit=off for the writers
#   -t  capture / no capture instead of draining / no daemon
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=3 seconds=8 clients=16 pgoptions= capture_only=
while getopts "r:s:c:ot" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    s) seconds=$OPTARG ;;
    c) clients=$OPTARG ;;
    o) pgoptions="-c synchronous_commit=off" ;;
    t) capture_only=1 ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
(($# >= 1)) || { echo "usage: $0 [-r ROUNDS] [-s SECONDS] [-c CLIENTS] [-o] [-t] KCK..." >&2; exit 2; }
builds=("$@")
source "$here/cluster.sh"
start_cluster daemon-ab
listener=
bench_cleanup() { if [[ -n $listener ]]; then kill "$listener" 2>/dev/null || true; fi; }
base_db=$db

# Database i: t, the build's schema and capture, 100 products stored.
for i in "${!builds[@]}"; do
  psql "$base_db" -qXc "CREATE DATABASE ab$i"
  db="${base_db/dbname=postgres/dbname=ab$i}"
  create_t
  capture=plpgsql
  [[ -f $(dirname "${builds[$i]}")/kck_capture.so ]] && capture=c
  install_grp_sum "${builds[$i]}" "" "$capture"
  store_grp_sum "${builds[$i]}"
  echo "build $i: ${builds[$i]} (capture in $capture, schema $(psql "$db" -AtXc "SELECT max(version) FROM kck.schema_version"))"
done
update_script
tps() { PGOPTIONS=$pgoptions pgbench_tps "$1" "$clients" "$2"; }  # DB SECONDS
ticks() {  # user+system clock ticks of the processes given
  local s=0 p
  for p in "$@"; do [[ -r /proc/$p/stat ]] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$s"
}
hz=$(getconf CLK_TCK)
# One round of build $i on $db: no daemon, then its daemon draining.
daemon_pair() {
  none=$(tps "$db" "$seconds")
  "${builds[$i]}" --db "$db" listen --log-level warn >>"$dir/listen$i.log" 2>&1 &
  listener=$!
  sleep 1
  psql "$db" -qXc "UPDATE t SET v = v WHERE id = 1"  # the daemon is live once this is applied
  for _ in $(seq 100); do [[ $(psql "$db" -AtXc "SELECT count(*) FROM kck.changes") == 0 ]] && break; sleep 0.05; done
  backends=$(psql "$db" -AtXc "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
                                WHERE application_name = 'kck' AND pid <> pg_backend_pid()")
  # shellcheck disable=SC2086
  d0=$(ticks "$listener") b0=$(ticks $backends)
  with=$(tps "$db" "$seconds")
  # shellcheck disable=SC2086
  d1=$(ticks "$listener") b1=$(ticks $backends)
  left=$(psql "$db" -AtXc "SELECT count(*) FROM kck.changes")
  kill "$listener"
  wait "$listener" 2>/dev/null || true
  listener=
  ratio[$r,$i]=$(awk -v a="$with" -v b="$none" 'BEGIN { printf "%.3f", a / b }')
  printf 'round %d build %d: no daemon %6.0f tps, draining %6.0f tps (%sx); daemon %.2f s CPU, its backends %.2f s; %s changes left\n' \
    "$r" "$i" "$none" "$with" "${ratio[$r,$i]}" "$(awk -v t=$((d1 - d0)) -v h="$hz" 'BEGIN { print t / h }')" \
    "$(awk -v t=$((b1 - b0)) -v h="$hz" 'BEGIN { print t / h }')" "$left"
}

# One round of build $i on $db: its capture triggers disabled, then enabled.
capture_pair() {
  psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER"
  none=$(tps "$db" "$seconds")
  psql "$db" -qXc "ALTER TABLE t ENABLE TRIGGER USER"
  with=$(tps "$db" "$seconds")
  ratio[$r,$i]=$(awk -v a="$with" -v b="$none" 'BEGIN { printf "%.3f", a / b }')
  printf 'round %d build %d: no capture %6.0f tps, capture %6.0f tps (%sx); %s changes written\n' \
    "$r" "$i" "$none" "$with" "${ratio[$r,$i]}" "$(psql "$db" -AtXc "SELECT count(*) FROM kck.changes")"
}

declare -A ratio
for ((r = 1; r <= rounds; r++)); do
  for ((j = 0; j < ${#builds[@]}; j++)); do
    i=$(((j + r - 1) % ${#builds[@]}))  # rotated by round
    db="${base_db/dbname=postgres/dbname=ab$i}"
    psql "$db" -qXc "VACUUM t" -c "CHECKPOINT" -c "TRUNCATE kck.changes"
    if [[ -n $capture_only ]]; then capture_pair; else daemon_pair; fi
  done
done
stats() { sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                                             printf "%.2fx (%.2f-%.2f)", m, v[1], v[NR] }'; }
what="draining / no daemon"
[[ -n $capture_only ]] && what="capture / no capture"
echo "$what, median (min-max) over $rounds rounds, $clients clients${pgoptions:+, synchronous_commit=off}:"
for i in "${!builds[@]}"; do
  line="  build $i: $(for ((r = 1; r <= rounds; r++)); do echo "${ratio[$r,$i]}"; done | stats)"
  if ((i > 0)); then
    line+="; over build 0 per round: $(for ((r = 1; r <= rounds; r++)); do
      awk -v a="${ratio[$r,$i]}" -v b="${ratio[$r,0]}" 'BEGIN { print a / b }'; done | stats)"
  fi
  echo "$line"
done
