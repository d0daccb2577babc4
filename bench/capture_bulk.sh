#!/usr/bin/env bash
# A 100k-row UPDATE (one statement) on bench/cluster.sh's t: without
# capture, with kck's generated plpgsql capture and with its C capture
# (kck_capture.so beside KCK, built when postgresql-server-dev-15 is
# installed), both statement-level with the bulk form over 100 rows, and
# with the same triggers calling a function that only returns (what the
# transition tables alone cost), interleaved in rounds.
#
# Usage (root or a user that can run initdb): bash bench/capture_bulk.sh [KCK] [ROUNDS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kck=${1:-$here/../build/kck}
rounds=${2:-3}
source "$here/cluster.sh"
start_cluster capture-bulk
create_t
install_grp_sum "$kck"
variants=(none empty plpgsql)
[[ -f $(dirname "$kck")/kck_capture.so ]] && variants+=(c)
use() {
  case $1 in
    none) psql "$db" -qXc "ALTER TABLE t DISABLE TRIGGER USER" ;;
    empty)
      install_grp_sum "$kck"
      psql "$db" -qXc "ALTER TABLE t ENABLE TRIGGER USER" -c "CREATE OR REPLACE FUNCTION kck.\"capture:public.t\"() \
        RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NULL; END \$\$"
      ;;
    *)
      install_grp_sum "$kck" "" "$1"
      psql "$db" -qXc "ALTER TABLE t ENABLE TRIGGER USER"
      ;;
  esac
}
for ((r = 1; r <= rounds; r++)); do
  line="round $r:"
  for v in "${variants[@]}"; do
    use "$v"
    psql "$db" -qXc "TRUNCATE kck.changes" -c "VACUUM t" -c "CHECKPOINT"
    ms=$(psql "$db" -AtX -c '\timing on' -c "UPDATE t SET v = v + 1 WHERE id <= 100000" | awk '/^Time:/ {print $2}')
    line+="  $v $ms ms"
  done
  echo "$line"
done
