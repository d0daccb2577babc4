#!/usr/bin/env bash
# A 100k-row UPDATE (one statement) on bench/cluster.sh's t: without
# capture (kck uninstall: no trigger, so no transition tables either; a
# disabled trigger still makes PostgreSQL collect them), with kck's
# generated plpgsql capture and with its C capture (kck_capture.so beside
# KCK, built when postgresql-server-dev-15 is installed), both
# statement-level with the bulk form over 100 rows, and with the same
# triggers calling a function that only returns (what the transition
# tables alone cost), interleaved in rounds. Before each timed run the same
# UPDATE runs untimed with no trigger firing, then VACUUM: each run moves
# the rows into the space the one before freed, so without it consecutive
# runs find alternate layouts (bench/bulk_layout.py).
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
    none) "$kck" --db "$db" uninstall >/dev/null ;;
    empty)
      install_grp_sum "$kck"
      psql "$db" -qXc "CREATE OR REPLACE FUNCTION kck.\"capture:public.t\"() \
        RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NULL; END \$\$"
      ;;
    *)
      install_grp_sum "$kck" "" "$1"
      ;;
  esac
}
for ((r = 1; r <= rounds; r++)); do
  line="round $r:"
  for v in "${variants[@]}"; do
    use "$v"
    psql "$db" -qXc "SET session_replication_role = replica" -c "UPDATE t SET v = v + 1 WHERE id <= 100000" \
      -c "RESET session_replication_role" -c "VACUUM t" -c "TRUNCATE kck.changes" -c "VACUUM t" -c "CHECKPOINT"
    ms=$(psql "$db" -AtX -c '\timing on' -c "UPDATE t SET v = v + 1 WHERE id <= 100000" | awk '/^Time:/ {print $2}')
    line+="  $v $ms ms"
  done
  echo "$line"
done
