#!/usr/bin/python3
"""What the daemon costs the database under a stream of changes (issue 8, items 7 and the
"daemon draining" target): CPU per change at a fixed rate, and the writers' throughput while it
drains, for two kck binaries (typically the commit before a change and the one after),
interleaved in rounds.

    /usr/bin/python3 bench/daemon_cost.py --kck NEW --baseline OLD [--rounds 3] [--rate 1500]
                                          [--seconds 6] [--clients 16]

Method. One throwaway cluster (bench/write_path.py's), one database: t(id, grp, v), 200,000
rows in 1000 groups (index on grp); one SQL primer grp_sum/<grp> (count and sum of a group),
depending on t with params {grp: grp}; 100 of its products stored, so most changes reach no
stored product (as in write_path.py's section 1). Each round runs, for each binary, in an order
rotated by round:
  cpu   `kck listen` starts; pgbench updates random rows at a fixed rate (-R, 8 clients) for
        --seconds; the CPU time (user + system, /proc) of the daemon process and of its three
        server backends over the run, per 1000 changes applied.
  tps   `kck listen` starts; pgbench updates random rows as fast as it can (--clients) for
        --seconds: its TPS while the daemon drains.
Every run waits for an empty outbox at its end, and the stored products are compared with a
recompute. Reported: each binary's median (min-max) over rounds, and the median of the
per-round ratios kck / baseline with min-max. Both binaries must speak the database's schema
(install with the newer one).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_path import BenchError, ClusterBench, Daemon, median, rotated, run, run_bench  # noqa: E402

GROUPS, ROWS, STORED = 1000, 200000, 100
CONFIG = """{"primers": [{"name": "grp_sum", "parameters": [{"name": "grp", "type": "int"}],
  "compute": "SELECT jsonb_build_object('n', count(*), 'sum', sum(v)) FROM t WHERE grp = :grp",
  "depends_on": [{"table": "t", "params": {"grp": "grp"}}]}]}"""
TICK = os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kck", required=True, help="the kck binary measured")
    p.add_argument("--baseline", required=True, help="the kck binary it is compared with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=int, default=1500, help="changes a second of the cpu runs")
    p.add_argument("--seconds", type=int, default=6, help="length of each pgbench run (whole seconds: pgbench -T)")
    p.add_argument("--clients", type=int, default=16, help="pgbench clients of the tps runs")
    return p.parse_args()


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Bench(ClusterBench):
    def setup(self):
        self.start()
        self.q1("CREATE TABLE t (id bigserial PRIMARY KEY, grp int NOT NULL, v int NOT NULL);"
                "INSERT INTO t (grp, v) SELECT g %% %d, 0 FROM generate_series(1, %d) g;"
                "CREATE INDEX ON t (grp)" % (GROUPS, ROWS))
        self.q1("VACUUM ANALYZE t")
        config = self.cluster.dir / "grp_sum.json"
        config.write_text(CONFIG)
        run([self.a.kck, "--db", self.cluster.conninfo, "install", "--config", config])
        self.script = self.cluster.dir / "update.sql"
        self.script.write_text("\\set id random(1, %d)\nUPDATE t SET v = v + 1 WHERE id = :id;\n" % ROWS)
        run([self.a.kck, "--db", self.cluster.conninfo, "refresh"] + ["grp_sum/%d" % g for g in range(STORED)])

    def pgbench(self, extra):
        out = run([self.cluster.bin / "pgbench", "-n", "-M", "prepared", "-j", "2", "-T", self.a.seconds,
                   "-f", self.script] + extra + [self.cluster.conninfo], timeout=self.a.seconds + 120)
        for line in out.splitlines():
            if line.startswith("tps = "):
                return float(line.split()[2])
        raise BenchError("no tps in pgbench's output:\n" + out[-2000:])

    def daemon_pids(self):
        with self.db.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'kck' AND pid <> pg_backend_pid()")
            return [r[0] for r in cur.fetchall()]

    def check(self):
        stale = self.q1("SELECT count(*) FROM kck.cache c WHERE c.value <> "
                        "(SELECT jsonb_build_object('n', count(*), 'sum', sum(v)) FROM t "
                        " WHERE 'grp_sum/' || t.grp = c.key)")
        if stale:
            raise BenchError("%d products differ from a recompute" % stale)

    def one_run(self, kck, kind):
        log = self.cluster.dir / "daemon.log"
        d = Daemon(kck, self.cluster.conninfo, log)
        try:
            deadline = time.monotonic() + 10
            while len(self.daemon_pids()) < 3:
                if time.monotonic() > deadline:
                    raise BenchError("kck listen did not connect in 10 s; see %s" % log)
                time.sleep(0.05)
            time.sleep(0.3)
            pids = self.daemon_pids() + [d.pid]
            before = sum(cpu_seconds(p) for p in pids)
            if kind == "cpu":
                tps = self.pgbench(["-c", "8", "-R", str(self.a.rate)])
            else:
                tps = self.pgbench(["-c", str(self.a.clients)])
            self.wait_drained()
            used = sum(cpu_seconds(p) for p in pids) - before
        finally:
            d.stop()
        self.check()
        return used / (tps * self.a.seconds) * 1000 if kind == "cpu" else tps

    def main(self):
        self.setup()
        binaries = [("baseline", self.a.baseline), ("kck", self.a.kck)]
        values = {(name, kind): [] for name, _ in binaries for kind in ("cpu", "tps")}
        print("daemon cost: t (%d rows, %d groups), primer grp_sum with %d products stored; %d rounds of %d s runs"
              % (ROWS, GROUPS, STORED, self.a.rounds, self.a.seconds))
        print("  baseline %s\n  kck      %s" % (self.a.baseline, self.a.kck))
        for r in range(self.a.rounds):
            line = "  round %d:" % (r + 1)
            for kind in rotated(["cpu", "tps"], r):
                for name, kck in rotated(binaries, r):
                    v = self.one_run(kck, kind)
                    values[(name, kind)].append(v)
                    line += "  %s %s %.3f" % (name, kind, v) if kind == "cpu" else "  %s %s %.0f" % (name, kind, v)
            print(line, flush=True)
        titles = {"cpu": "daemon + its backends, CPU s per 1000 changes at %d changes/s" % self.a.rate,
                  "tps": "writers' TPS with the daemon draining, %d clients" % self.a.clients}
        for kind in ("cpu", "tps"):
            b, k = values[("baseline", kind)], values[("kck", kind)]
            ratios = [x / y for x, y in zip(k, b)]
            print("%s:\n  baseline %.3f (%.3f-%.3f)   kck %.3f (%.3f-%.3f)   kck / baseline %.2fx (%.2f-%.2f)"
                  % (titles[kind], median(b), min(b), max(b), median(k), min(k), max(k), median(ratios),
                     min(ratios), max(ratios)))


if __name__ == "__main__":
    sys.exit(run_bench(Bench(parse_args())))
