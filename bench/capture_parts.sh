#!/usr/bin/env bash
# Where a writer's capture cost goes: pgbench single-row UPDATEs (16
# clients, synchronous_commit=off, so CPU-bound) on a 200k-row table with a
# kck SQL primer on it, the generated capture function swapped for cut-down
# variants, interleaved in rounds; each variant's TPS as a ratio to the same
# round's run without triggers (median and min-max of the rounds).
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
#
# Usage (root or a user that can run initdb): bash bench/capture_parts.sh [KCK] [ROUNDS] [SECONDS]
set -euo pipefail

kck=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/kck}
rounds=${2:-3}
seconds=${3:-6}
source "$(dirname "$0")/cluster.sh"
start_cluster capture-parts
create_t
install_grp_sum "$kck"
psql "$db" -qXc "CREATE TABLE kck.indexed (LIKE kck.changes INCLUDING DEFAULTS, PRIMARY KEY (id))"
fn=$(psql "$db" -AtXc "SELECT 'kck.' || quote_ident(proname) FROM pg_proc WHERE proname LIKE 'capture:%'")
psql "$db" -AtXc "SELECT pg_get_functiondef('$fn'::regproc)" >"$dir/full.sql"

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
printf '\\set id random(1, 200000)\nUPDATE t SET v = v + 1 WHERE id = :id;\n' >"$dir/update.sql"

variants=(none empty indexed part nocheck nowake full)
declare -A ratios
echo "pgbench -c 16 -j 2 -T $seconds, synchronous_commit=off, $rounds rounds; TPS (ratio to none)"
for ((r = 1; r <= rounds; r++)); do
  line="round $r:"
  base=0
  for v in "${variants[@]}"; do
    if [[ $v == none ]]; then
      psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER"
    else
      psql "$db" -qXc "ALTER TABLE t ENABLE TRIGGER USER" -f "$dir/$v.sql"
    fi
    psql "$db" -qXc "TRUNCATE kck.changes, kck.indexed" -c "VACUUM t" -c "CHECKPOINT"
    tps=$(PGOPTIONS="-c synchronous_commit=off" "$bin/pgbench" -n -c 16 -j 2 -T "$seconds" -f "$dir/update.sql" "$db" \
      2>/dev/null | awk '/^tps =/ {print int($3); exit}')
    [[ $v == none ]] && base=$tps
    ratio=$(python3 -c "print(f'{$tps / $base:.2f}')")
    ratios[$v]+="$ratio "
    line+="  $v $tps ($ratio)"
  done
  echo "$line"
done
echo "median (min-max) of the per-round ratios:"
for v in "${variants[@]}"; do
  python3 -c "
import statistics, sys
r = [float(x) for x in sys.argv[2].split()]
print(f'  {sys.argv[1]:8} {statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})')" "$v" "${ratios[$v]}"
done
