#!/usr/bin/env bash
# A 100k-row UPDATE (one statement) on bench/cluster.sh's t: without
# capture, with kck's generated capture (statement-level, bulk form over 100
# rows), with the C row-trigger prototype (kck_capture_proto.c: one outbox
# row per row) and with its statement-level form (bulk form over 100 rows),
# interleaved in rounds. Needs the server's headers
# (postgresql-server-dev-15).
#
# Usage (root or a user that can run initdb): bash bench/c_capture/bulk.sh [KCK] [ROUNDS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kck=${1:-$here/../../build/kck}
rounds=${2:-3}
source "$here/../cluster.sh"
start_cluster crow-bulk
create_t
install_grp_sum "$kck"
cc -O2 -fPIC -shared -I"$(pg_config --includedir-server)" -o "$dir/kck_crow.so" "$here/kck_capture_proto.c"
chmod a+r "$dir/kck_crow.so"
psql "$db" -qXc "CREATE FUNCTION kck_crow() RETURNS trigger AS '$dir/kck_crow.so', 'kck_capture_row' LANGUAGE C" \
  -c "CREATE FUNCTION kck_cstmt() RETURNS trigger AS '$dir/kck_crow.so', 'kck_capture_stmt' LANGUAGE C"
use() {
  PGOPTIONS="-c client_min_messages=warning" psql "$db" -qXc "DROP TRIGGER IF EXISTS bench_crow ON t" \
    -c "DROP TRIGGER IF EXISTS bench_cstmt_u ON t"
  case $1 in
    none) psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER" ;;
    kck) psql "$db" -qXc "ALTER TABLE t ENABLE TRIGGER USER" ;;
    crow) psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER" \
      -c "CREATE TRIGGER bench_crow AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION kck_crow('public.t', 'id', 'grp')" ;;
    cstmt) psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER" \
      -c "CREATE TRIGGER bench_cstmt_u AFTER UPDATE ON t REFERENCING OLD TABLE AS kck_old NEW TABLE AS kck_new FOR EACH STATEMENT EXECUTE FUNCTION kck_cstmt('public.t', 'id', 'grp')" ;;
  esac
}
for ((r = 1; r <= rounds; r++)); do
  line="round $r:"
  for v in none kck crow cstmt; do
    use "$v"
    psql "$db" -qXc "TRUNCATE kck.changes" -c "VACUUM t" -c "CHECKPOINT"
    ms=$(psql "$db" -AtX -c '\timing on' -c "UPDATE t SET v = v + 1 WHERE id <= 100000" | awk '/^Time:/ {print $2}')
    line+="  $v $ms ms"
  done
  echo "$line"
done
