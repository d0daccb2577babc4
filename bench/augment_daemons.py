#!/usr/bin/python3
"""Augments with several daemons (issue 8, item 5): which share of the products written are
augments when 1, 2 or 4 daemons drain the same stream of single-row inserts, for two kck
binaries (typically the commit before a change and the one after), interleaved in rounds.

    /usr/bin/python3 bench/augment_daemons.py --kck NEW --baseline OLD [--rounds 3] [--inserts 3000]

Method. One throwaway cluster (bench/write_path.py's), one database: store_author (100 rows),
store_book; one SQL primer book_count/<author> (count(*) of the author's books) that augments
inserts (count + 1); its 100 products stored before every run. Per run: the binary's daemons
start (--log-level debug), pgbench inserts --inserts books at random authors (4 clients, one
insert per transaction), and when the outbox is empty the daemons stop. The share is the sum of
'augmented' over the sum of 'products written' in every daemon's batch lines. After every run
the products are compared with a recompute. Also reported: seconds from the first insert to an
empty outbox (the inserts themselves take most of it). Both binaries must speak the database's
schema.
"""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_path import BenchError, ClusterBench, Daemon, median, rotated, run, run_bench  # noqa: E402

AUTHORS = 100
CONFIG = """{"primers": [{"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
  "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
  "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
  "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)"}}}]}"""
BATCH_LINE = re.compile(r"batch: (\d+) changes, (\d+) products written \((\d+) augmented\)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kck", required=True, help="the kck binary measured")
    p.add_argument("--baseline", required=True, help="the kck binary it is compared with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inserts", type=int, default=3000)
    p.add_argument("--daemons", default="1,2,4")
    return p.parse_args()


class Bench(ClusterBench):
    def setup(self):
        self.start()
        self.q1("CREATE TABLE store_author (id int PRIMARY KEY);"
                "INSERT INTO store_author SELECT generate_series(1, %d);"
                "CREATE TABLE store_book (id bigserial PRIMARY KEY, author_id int NOT NULL REFERENCES store_author)"
                % AUTHORS)
        config = self.cluster.dir / "augment.json"
        config.write_text(CONFIG)
        run([self.a.kck, "--db", self.cluster.conninfo, "install", "--config", config])
        script = self.cluster.dir / "insert.sql"
        script.write_text("\\set a random(1, %d)\nINSERT INTO store_book (author_id) VALUES (:a);\n" % AUTHORS)
        self.script = script

    def prime(self):
        self.q1("DELETE FROM kck.cache")
        keys = ["book_count/%d" % i for i in range(1, AUTHORS + 1)]
        run([self.a.kck, "--db", self.cluster.conninfo, "refresh"] + keys)

    def one_run(self, kck, daemons):
        self.prime()
        log = self.cluster.dir / ("daemons-%d.log" % time.monotonic_ns())
        procs = [Daemon(kck, self.cluster.conninfo, log, level="debug") for _ in range(daemons)]
        time.sleep(0.5)
        clients = 4
        t0 = time.monotonic()
        run([self.cluster.bin / "pgbench", "-n", "-c", clients, "-t", self.a.inserts // clients, "-f", self.script,
             self.cluster.conninfo])
        self.wait_drained()
        took = time.monotonic() - t0
        time.sleep(0.3)
        for d in procs:
            d.stop()
        written = augmented = 0
        for line in log.read_text(errors="replace").splitlines():
            m = BATCH_LINE.search(line)
            if m:
                written += int(m.group(2))
                augmented += int(m.group(3))
        stale = self.q1("SELECT count(*) FROM kck.cache c WHERE c.value::text <> "
                        "(SELECT count(*) FROM store_book b WHERE 'book_count/' || b.author_id = c.key)::text")
        if stale:
            raise BenchError("%d products differ from a recompute" % stale)
        return (augmented / written if written else float("nan")), took

    def main(self):
        self.setup()
        counts = [int(x) for x in self.a.daemons.split(",")]
        binaries = [("baseline", self.a.baseline), ("kck", self.a.kck)]
        shares = {(name, n): [] for name, _ in binaries for n in counts}
        times = {(name, n): [] for name, _ in binaries for n in counts}
        print("augments with several daemons: %d single-row inserts (pgbench -c 4) over %d stored products,"
              " %d rounds" % (self.a.inserts, AUTHORS, self.a.rounds))
        print("  baseline %s\n  kck      %s" % (self.a.baseline, self.a.kck))
        for r in range(self.a.rounds):
            line = "  round %d:" % (r + 1)
            for n in rotated(counts, r):
                for name, kck in rotated(binaries, r):
                    share, took = self.one_run(kck, n)
                    shares[(name, n)].append(share)
                    times[(name, n)].append(took)
                    line += "  %s x%d %.2f (%.1f s)" % (name, n, share, took)
            print(line, flush=True)
        names = [name for name, _ in binaries]
        print_rounds("share of products written that were augments, median (min-max) of the rounds:",
                     shares, counts, names)
        print_rounds("seconds from the first insert to an empty outbox, median (min-max):", times, counts, names)


def print_rounds(title, values, counts, names):
    """One line per daemon count: each binary's median (min-max) of `values[(name, n)]`."""
    print(title)
    for n in counts:
        cells = ["%s %.2f (%.2f-%.2f)" % (name, median(v), min(v), max(v))
                 for name, v in ((name, values[(name, n)]) for name in names)]
        print("  %d daemon%s: %s" % (n, "s" if n > 1 else " ", "   ".join(cells)))


if __name__ == "__main__":
    sys.exit(run_bench(Bench(parse_args())))
