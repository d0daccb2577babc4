#!/usr/bin/python3
"""Huge bulk statements under capture: one INSERT and one UPDATE of N rows of a table whose
primer has a product per row, so every row is a distinct bulk image.

    /usr/bin/python3 bench/bulk_huge.py [--kck PATH] [--rows 3000000] [--rounds 2]
                                        [--captures none,c,plpgsql] [--insert-only]

Method. One throwaway cluster (bench/write_path.py's); per run a fresh table big(id int primary
key, v int) and the primer one/<id> (the row's v) depending on big with params {id: id}. A run
installs kck with the capture named (none: no kck install), then times
`INSERT INTO big SELECT i, i FROM generate_series(1, N) i` and `UPDATE big SET v = v + 1`, and
prints the changes they recorded (op and size); a statement that fails is reported with its error. Past kck.bulk_max_images (default 1000000)
distinct images a bulk statement is one 'T' change (docs/DESIGN.md, Capture); below it the
change holds every image. Captures rotate by round; each figure is the median over rounds.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_path import BenchError, ClusterBench, median, ms_since, rotated, run, run_bench  # noqa: E402

import psycopg2  # noqa: E402  (after write_path, which re-runs under /usr/bin/python3)

CONFIG = {"primers": [{"name": "one", "parameters": [{"name": "id", "type": "int"}],
                       "compute": "SELECT to_jsonb(v) FROM big WHERE id = :id",
                       "depends_on": [{"table": "big", "params": {"id": "id"}}]}]}


def shown(ms):
    return "-" if ms is None else ms if isinstance(ms, str) else "%.0f ms" % ms


def summary(runs, baseline):
    """The median of the runs that ran (and its ratio to the baseline's), or why they did not."""
    done = [x for x in runs if isinstance(x, (int, float))]
    if not done:
        return next((x for x in runs if isinstance(x, str)), "-")
    base = [x for x in baseline if isinstance(x, (int, float))]
    ratio = " (%.2fx of none)" % (median(done) / median(base)) if base and runs is not baseline else ""
    return "%.0f ms%s" % (median(done), ratio)


class BulkHuge(ClusterBench):
    def install(self, capture):
        self.q1("DROP TABLE IF EXISTS big")
        self.q1("CREATE TABLE big (id int PRIMARY KEY, v int)")
        kck = [self.a.kck, "--db", self.cluster.conninfo]
        if capture == "none":
            if self.q1("SELECT to_regclass('kck.changes') IS NOT NULL"):
                run(kck + ["uninstall"])
            return
        env = dict(os.environ, KCK_CAPTURE=capture)
        module = os.path.join(os.path.dirname(os.path.abspath(self.a.kck)), "kck_capture.so")
        if os.path.exists(module):
            env["KCK_CAPTURE_LIBRARY"] = module
        run(kck + ["install", "--config", str(self.config)], env=env)
        self.q1("TRUNCATE kck.changes")

    def timed(self, sql):
        """ms, or the error that failed the statement."""
        t0 = time.perf_counter()
        try:
            self.q1(sql)
        except psycopg2.Error as e:
            return "failed after %.0f ms: %s" % (ms_since(t0), str(e).splitlines()[0])
        return ms_since(t0)

    def one_run(self, capture):
        self.install(capture)
        self.q1("CHECKPOINT")
        insert = self.timed("INSERT INTO big SELECT i, i FROM generate_series(1, %d) i" % self.a.rows)
        update = None
        if not self.a.insert_only and not isinstance(insert, str):
            self.q1("VACUUM big")
            self.q1("CHECKPOINT")
            update = self.timed("UPDATE big SET v = v + 1")
        changes = ""
        if capture != "none":
            changes = self.q1("SELECT string_agg(op || ' ' || pg_size_pretty(coalesce(pg_column_size(old), 0)::bigint + "
                              "coalesce(pg_column_size(new), 0)), ', ' ORDER BY id) FROM kck.changes")
        return insert, update, changes

    def main(self):
        self.start()
        self.config = self.cluster.dir / "bulk_huge.json"
        self.config.write_text(json.dumps(CONFIG))
        captures = self.a.captures.split(",")
        if any(c not in ("none", "c", "plpgsql") for c in captures):
            raise BenchError("--captures takes none, c and plpgsql")
        times = {c: ([], []) for c in captures}
        for r in range(self.a.rounds):
            for capture in rotated(captures, r):
                insert, update, changes = self.one_run(capture)
                times[capture][0].append(insert)
                times[capture][1].append(update)
                print("round %d  %-8s INSERT %s  UPDATE %s  %s" % (r + 1, capture, shown(insert), shown(update),
                                                                  changes or ""), flush=True)
        print()
        for capture, (ins, upd) in times.items():
            print("%-8s %d rows: INSERT %s, UPDATE %s" % (capture, self.a.rows, summary(ins, times.get("none", [[]])[0]),
                                                          summary(upd, times.get("none", [[], []])[1])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kck", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "kck"))
    ap.add_argument("--rows", type=int, default=3000000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--captures", default="none,c,plpgsql")
    ap.add_argument("--insert-only", action="store_true", help="time the INSERT only")
    return run_bench(BulkHuge(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
