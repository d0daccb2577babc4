# Sourced by the bench shell scripts: a throwaway PostgreSQL cluster in a
# temporary directory (unix socket only, run as postgres when we are root),
# stopped and removed on exit, and the 200k-row table `t` the write-path
# benches update.
#
#   start_cluster NAME   sets $bin, $dir, $db and $as_pg; stops the cluster
#                        and removes $dir on exit (after bench_cleanup, if
#                        the script defines it)
#   create_t             t (id, grp 1..1000, v, note), 200k rows, index on grp
#   install_grp_sum KCK [COMPUTE] [CAPTURE]
#                        kck install of the SQL primer grp_sum/<grp> on t;
#                        its compute defaults to the sum of v in the group;
#                        CAPTURE "plpgsql" (the default) or "c": the C
#                        capture module built beside KCK (kck_capture.so)
#   store_grp_sum KCK    computes and stores grp_sum/1..100 (100 of 1000)
#   update_script        writes $dir/update.sql: pgbench's UPDATE of one
#                        random row of t
#   pgbench_tps DB CLIENTS SECONDS
#                        pgbench's TPS running $dir/update.sql on DB
#                        ($PGOPTIONS applies, e.g. synchronous_commit=off)

start_cluster() {
  bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
  dir=$(mktemp -d "/tmp/kck-$1-XXXXXX")
  as_pg=()
  if [[ $EUID -eq 0 ]]; then
    chown postgres "$dir"
    as_pg=(runuser -u postgres --)
  fi
  trap stop_cluster EXIT
  "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
  "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-k $dir -c listen_addresses='' -p 5432" start >/dev/null
  db="host=$dir port=5432 user=postgres dbname=postgres"
}

stop_cluster() {
  if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
  "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

create_t() {
  psql "$db" -qX <<'SQL'
CREATE TABLE t (id bigserial PRIMARY KEY, grp int NOT NULL, v int NOT NULL DEFAULT 0, note text);
INSERT INTO t (grp, note) SELECT 1 + i % 1000, 'row ' || i FROM generate_series(1, 200000) i;
CREATE INDEX ON t (grp);
VACUUM ANALYZE t;
SQL
}

install_grp_sum() {
  local compute=${2:-"SELECT coalesce(sum(v), 0) FROM t WHERE grp = :grp"}
  cat >"$dir/kck.json" <<JSON
{"primers": [{"name": "grp_sum", "parameters": [{"name": "grp", "type": "int"}],
  "compute": "$compute",
  "depends_on": [{"table": "t", "params": {"grp": "grp"}}]}]}
JSON
  local capture=${3:-plpgsql}
  KCK_CAPTURE=$capture KCK_CAPTURE_LIBRARY="$(cd "$(dirname "$1")" && pwd)/kck_capture.so" \
    "$1" --db "$db" install --config "$dir/kck.json" >/dev/null
}

store_grp_sum() {
  "$1" --db "$db" refresh $(for g in $(seq 1 100); do echo -n "grp_sum/$g "; done) >/dev/null
}

update_script() {
  printf '\\set id random(1, 200000)\nUPDATE t SET v = v + 1 WHERE id = :id;\n' >"$dir/update.sql"
  chmod a+r "$dir/update.sql"
}

pgbench_tps() {
  "${as_pg[@]}" "$bin/pgbench" -n -c "$2" -j 2 -T "$3" -f "$dir/update.sql" "$1" 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
