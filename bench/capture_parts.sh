#!/usr/bin/env bash
# Where a writer's capture cost goes: single-row UPDATEs on a 200k-row table
# with a kck SQL primer on it, the generated capture function swapped for
# cut-down variants (and for another build's, and PgQ's trigger), interleaved
# in rounds. Three measures per variant and round:
#   - pgbench TPS at 16 clients, synchronous_commit=off (so CPU-bound; or
#     CLIENTS clients with synchronous_commit SYNC, from the environment), as a
#     ratio to the same round's run without triggers;
#   - microseconds per UPDATE and per INSERT in one backend (DO loops of single-row
#     statements, no commit between them), less the same round's run without
#     triggers: the capture's own CPU, with far less noise than TPS;
#   - the trigger function's own time per call during the pgbench run
#     (track_functions), where caches run cold.
# Each is reported as the median and min-max of the rounds.
#
#   none    triggers disabled
#   empty   the capture triggers with a function that only returns
#   indexed + one constant outbox row into a table like kck.changes before
#           migration 005 (bigserial primary key)
#   part    + the same row into an outbox part (kck.changes_0: no index)
#   nocheck the generated capture function without its column check (a
#           plpgsql BEGIN ... EXCEPTION block: a subtransaction per statement)
#   nowake  the generated capture function without its wake-up test
#   full    the generated capture function
#   base    the capture function BASELINE_KCK generates (when given)
#   pgq     PgQ's row trigger pgq.logutriga into a queue (when the extension
#           is installed: Debian's postgresql-15-pgq3)
#   c       kck's C capture (triggers/capture_module.c, kck_capture.so built
#           beside KCK: with the server's headers, postgresql-server-dev-15)
#
# Usage (root or a user that can run initdb):
#   [CLIENTS=16] [SYNC=off] bash bench/capture_parts.sh [KCK] [ROUNDS] [SECONDS] [BASELINE_KCK] [LOOP_UPDATES]
set -euo pipefail

kck=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/kck}
rounds=${2:-3}
seconds=${3:-6}
baseline=${4:-}
loop=${5:-20000}
clients=${CLIENTS:-16}
sync=${SYNC:-off}
source "$(dirname "$0")/cluster.sh"
start_cluster capture-parts
create_t
install_grp_sum "$kck"
psql "$db" -qXc "CREATE TABLE kck.indexed (LIKE kck.changes INCLUDING DEFAULTS, PRIMARY KEY (id))"
fn=$(psql "$db" -AtXc "SELECT 'kck.' || quote_ident(proname) FROM pg_proc WHERE proname LIKE 'capture:%'")
variants=(none empty indexed part nocheck nowake full)
if [[ -n $baseline ]]; then
  install_grp_sum "$baseline"
  psql "$db" -AtXc "SELECT pg_get_functiondef('$fn'::regproc)" >"$dir/base.sql"
  install_grp_sum "$kck"
  variants+=(base)
fi
if psql "$db" -qXc "CREATE EXTENSION pgq" -c "SELECT pgq.create_queue('bench')" >/dev/null 2>&1; then
  variants+=(pgq)
else
  echo "(no pgq: the extension is not installed; apt-get install postgresql-15-pgq3 adds it)"
fi
psql "$db" -AtXc "SELECT pg_get_functiondef('$fn'::regproc)" >"$dir/full.sql"
# Last: the C capture's triggers carry its arguments, which the plpgsql
# variants ignore.
if [[ -f $(dirname "$kck")/kck_capture.so ]]; then
  install_grp_sum "$kck" "" c
  psql "$db" -AtXc "SELECT pg_get_functiondef('$fn'::regproc)" >"$dir/c.sql"
  variants+=(c)
else
  echo "(no c: no kck_capture.so beside $kck; it is built when postgresql-server-dev-15 is installed)"
fi

# The variants keep the function's header (SECURITY DEFINER, SET search_path).
variant() {  # name body
  python3 - "$dir/full.sql" "$dir/$1.sql" "$2" <<'PY'
import sys
src, dst, body = sys.argv[1], sys.argv[2], sys.argv[3]
s = open(src).read()
a = s.index("AS $function$") + len("AS $function$")
b = s.index("$function$", a)
open(dst, "w").write(s[:a] + "\nBEGIN\n" + body + "  RETURN NULL;\nEND\n" + s[b:])
PY
}
variant empty ""
variant indexed "  INSERT INTO kck.indexed (tbl, op) VALUES ('x', 'U');\n"
variant part "  INSERT INTO kck.changes_0 (tbl, op) VALUES ('x', 'U');\n"
sed -i 's/\\n/\n/g' "$dir"/{indexed,part}.sql
# The generated function minus one of its parts.
without() {  # name start-marker end-marker (the end marker is removed too)
  python3 - "$dir/full.sql" "$dir/$1.sql" "$2" "$3" <<'PY'
import sys
src, dst, start, end = sys.argv[1:5]
s = open(src).read()
a = s.index(start)
b = s.index(end, a) + len(end)
open(dst, "w").write(s[:a] + s[b:])
PY
}
without nocheck "  BEGIN
    IF TG_OP" "  END;
"
without nowake "  -- At most one wake-up" "  END IF;
"
update_script

declare -A ratios micros inserts calls
# Puts variant $1 in place: the capture triggers with its function, PgQ's
# trigger alone, or no trigger.
use_variant() {
  PGOPTIONS="-c client_min_messages=warning" psql "$db" -qXc "DROP TRIGGER IF EXISTS bench_pgq ON t"
  case $1 in
    none) psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER" ;;
    pgq) psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER" \
      -c "CREATE TRIGGER bench_pgq AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('bench')" ;;
    *) psql "$db" -qXc "ALTER TABLE t ENABLE TRIGGER USER" -f "$dir/$1.sql" ;;
  esac
}
# Empties the outbox and readies t for a measurement.
settle() {
  psql "$db" -qXc "TRUNCATE kck.changes, kck.indexed" -c "VACUUM t" -c "CHECKPOINT"
}
# Microseconds per single-row statement ($1) in one backend.
loop_us() {
  local ms
  ms=$(psql "$db" -AtX -c "SET synchronous_commit = off" -c '\timing on' \
    -c "DO \$\$ BEGIN FOR i IN 1..$loop LOOP $1; END LOOP; END \$\$" | awk '/^Time:/ {print $2}')
  python3 -c "print(f'{$ms * 1000 / $loop:.2f}')"
}
# The trigger function's own time per call during the pgbench run
# (track_functions): what it costs in a 16-client run, caches cold, where
# the loops above run hot. It leaves out what firing the trigger costs
# around the function (transition tables, PgQ's per-row event queue).
function_us() {
  sleep 0.6  # a backend reports its counts at most every 500 ms
  psql "$db" -AtXc "SELECT coalesce(round(sum(self_time)::numeric * 1000 / nullif(sum(calls), 0), 2)::text, '0')
                      FROM pg_stat_user_functions WHERE funcname LIKE 'capture:%' OR funcname = 'logutriga'"
}
echo "per round: pgbench -c $clients -j 2 -T $seconds (synchronous_commit $sync) TPS (ratio to none), then us per UPDATE and per INSERT in loops of $loop (less none's), then the trigger function's us per call in the pgbench run"
for ((r = 1; r <= rounds; r++)); do
  line="round $r:"
  base=0
  base_us=0
  for v in "${variants[@]}"; do
    use_variant "$v"
    settle
    us=$(loop_us "UPDATE t SET v = v + 1 WHERE id = 1 + (i * 7919) % 200000")
    ins=$(loop_us "INSERT INTO t (grp) VALUES (1 + i % 1000)")
    psql "$db" -qXc "DELETE FROM t WHERE id > 200000"
    settle
    psql "$db" -qAtXc "SELECT pg_stat_reset()" >/dev/null
    tps=$(PGOPTIONS="-c synchronous_commit=$sync -c track_functions=all" "$bin/pgbench" -n -c "$clients" -j 2 -T "$seconds" \
      -f "$dir/update.sql" "$db" 2>/dev/null | awk '/^tps =/ {print int($3); exit}')
    call=$(function_us)
    if [[ $v == none ]]; then
      base=$tps
      base_us=$us
      base_ins=$ins
    fi
    ratio=$(python3 -c "print(f'{$tps / $base:.2f}')")
    extra=$(python3 -c "print(f'{$us - $base_us:.2f}')")
    ratios[$v]+="$ratio "
    extra_ins=$(python3 -c "print(f'{$ins - $base_ins:.2f}')")
    micros[$v]+="$extra "
    inserts[$v]+="$extra_ins "
    calls[$v]+="$call "
    line+="  $v $tps ($ratio) +${extra}us +${extra_ins}us ${call}us/call"
  done
  echo "$line"
done
echo "median (min-max) of the per-round TPS ratios, of the capture's us per UPDATE and per INSERT, and of the function's us per call:"
for v in "${variants[@]}"; do
  python3 -c "
import statistics, sys
r, u, i, c = ([float(x) for x in a.split()] for a in sys.argv[2:6])
print(f'  {sys.argv[1]:8} {statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})'
      f'   update +{statistics.median(u):5.2f} us ({min(u):.2f}-{max(u):.2f})'
      f'   insert +{statistics.median(i):5.2f} us ({min(i):.2f}-{max(i):.2f})'
      f'   function {statistics.median(c):5.2f} us/call ({min(c):.2f}-{max(c):.2f})')" \
    "$v" "${ratios[$v]}" "${micros[$v]}" "${inserts[$v]}" "${calls[$v]}"
done
if [[ -n $baseline ]]; then
  python3 -c "
import statistics, sys
t = [float(x) / float(y) for x, y in zip(sys.argv[1].split(), sys.argv[2].split())]
u = [float(x) / float(y) for x, y in zip(sys.argv[3].split(), sys.argv[4].split())]
i = [float(x) / float(y) for x, y in zip(sys.argv[5].split(), sys.argv[6].split())]
c = [float(x) / float(y) for x, y in zip(sys.argv[7].split(), sys.argv[8].split())]
print(f'full / base, paired within each round: TPS ratio {statistics.median(t):.2f}x ({min(t):.2f}-{max(t):.2f}),'
      f' capture us per UPDATE {statistics.median(u):.2f}x ({min(u):.2f}-{max(u):.2f}),'
      f' per INSERT {statistics.median(i):.2f}x ({min(i):.2f}-{max(i):.2f}),'
      f' function us per call {statistics.median(c):.2f}x ({min(c):.2f}-{max(c):.2f})')" \
    "${ratios[full]}" "${ratios[base]}" "${micros[full]}" "${micros[base]}" "${inserts[full]}" "${inserts[base]}" \
    "${calls[full]}" "${calls[base]}"
fi
