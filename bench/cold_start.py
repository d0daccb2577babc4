#!/usr/bin/python3
"""A daemon's first changes: commit -> fresh for the first single-row INSERTs after `kck listen`
starts, two builds against each other.

    /usr/bin/python3 bench/cold_start.py --kck OLD --kck-b NEW [--rounds 10] [--inserts 10]

Method. One throwaway cluster (bench/write_path.py's), PostgreSQL's defaults; the bookstore
example (examples/bookstore: its schema, and its primers.json without top_books, whose rules
would send every book change the usual way), 200 authors x 50 books x 4 reviews. Each
run: `kck refresh` of every title_list and author_stats key, a daemon of one build starts
(--log-level debug), 1 s later `--inserts` single-row INSERTs into store_book (autocommit, 50 ms
apart, authors 1-4), each waiting for its author's title_list row to be rewritten (an AFTER
UPDATE trigger on kck.cache notifies a listening connection at the daemon's COMMIT; t0 = the
INSERT acknowledged). The builds alternate run by run, the first build first in even rounds.
Reported per build: the first insert's, the second's, and the median of the last half's commit
-> fresh (median over rounds, min-max), how many first batches went in the write transaction,
and per round the ratio new / old of the first insert's.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_path import (BenchError, ClusterBench, fresh_probe, median, run, run_bench,  # noqa: E402
                        FRESH_TRIGGER)

ROOT = Path(__file__).resolve().parent.parent
DATA = """
INSERT INTO store_author (name) SELECT 'author ' || i FROM generate_series(1, 200) i;
INSERT INTO store_book (author_id, title, published)
  SELECT a.id, 'book ' || a.id || '.' || j, date '2020-01-01' + j FROM store_author a, generate_series(1, 50) j;
INSERT INTO store_review (book_id, rating, body)
  SELECT b.id, 1 + (b.id + j) % 5, 'review ' || j FROM store_book b, generate_series(1, 4) j;
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kck", required=True, help="the old build")
    p.add_argument("--kck-b", required=True, help="the new build")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--inserts", type=int, default=10)
    a = p.parse_args()
    a.kck, a.kck_b = os.path.abspath(a.kck), os.path.abspath(a.kck_b)
    return a


class Bench(ClusterBench):
    def __init__(self, a):
        super().__init__(a)
        self.n = 0

    def setup(self):
        self.start()
        self.q1((ROOT / "examples" / "bookstore" / "schema.sql").read_text())
        self.q1(DATA)
        self.q1("VACUUM ANALYZE")
        config = json.loads((ROOT / "examples" / "bookstore" / "primers.json").read_text())
        config["primers"] = [p for p in config["primers"] if p["name"] in ("title_list", "author_stats")]
        path = self.cluster.dir / "primers.json"
        path.write_text(json.dumps(config))
        run([self.a.kck_b, "--db", self.cluster.conninfo, "install", "--config", path])
        self.q1(FRESH_TRIGGER)

    def one_run(self, kck):
        """commit -> fresh ms of each insert, and whether the first batch was a fast write."""
        keys = ["%s/%d" % (p, a) for p in ("title_list", "author_stats") for a in range(1, 201)]
        run([kck, "--db", self.cluster.conninfo, "refresh"] + keys)
        log = self.cluster.dir / ("daemon-%d.log" % time.monotonic_ns())
        daemon, fresh, writer = fresh_probe(kck, self.cluster.conninfo, log)
        time.sleep(1.0)
        samples = []
        try:
            for i in range(self.a.inserts):
                self.n += 1
                author = 1 + i % 4
                fresh.drain()
                with writer.cursor() as cur:
                    cur.execute("INSERT INTO store_book (author_id, title, published) VALUES (%s, %s, now())",
                                [author, "cold %d" % self.n])
                t0 = time.perf_counter()
                got = fresh.wait(lambda p: p.split(" ")[0] == "title_list/%d" % author, 30.0)
                if got is None:
                    raise BenchError("title_list/%d was not rewritten within 30 s; daemon log:\n%s"
                                     % (author, daemon.log_tail()))
                samples.append((got[0] - t0) * 1000.0)
                time.sleep(0.05)
        finally:
            fresh.close()
            writer.close()
            daemon.stop()
        first = next((line for line in log.read_text(errors="replace").splitlines() if "batch: " in line), "")
        return samples, "computed in the write transaction" in first

    def main(self):
        self.setup()
        builds = {"old": self.a.kck, "new": self.a.kck_b}
        got = {b: {"first": [], "second": [], "steady": [], "fast_first": 0} for b in builds}
        for r in range(self.a.rounds):
            for b in (("old", "new") if r % 2 == 0 else ("new", "old")):
                samples, fast_first = self.one_run(builds[b])
                g = got[b]
                g["first"].append(samples[0])
                g["second"].append(samples[1])
                g["steady"].append(median(samples[len(samples) // 2:]))
                g["fast_first"] += fast_first
            print("  round %d: first insert old %.2f ms, new %.2f ms" % (
                r + 1, got["old"]["first"][-1], got["new"]["first"][-1]), flush=True)
        self.report(builds, got)

    def report(self, builds, got):
        cell = lambda v: "%.2f (%.2f-%.2f)" % (median(v), min(v), max(v))  # noqa: E731
        print("\ncommit -> fresh ms of a daemon's first INSERTs (median over %d rounds, min-max):" % self.a.rounds)
        print("  %-5s %-22s %-22s %-22s %s" % ("build", "1st insert", "2nd insert", "last half (median)",
                                              "first batch a fast write"))
        for b, path in builds.items():
            g = got[b]
            print("  %-5s %-22s %-22s %-22s %d of %d   (%s)" % (b, cell(g["first"]), cell(g["second"]),
                                                                 cell(g["steady"]), g["fast_first"],
                                                                 self.a.rounds, path))
        for what in ("first", "second", "steady"):
            ratios = [n / o for n, o in zip(got["new"][what], got["old"][what])]
            print("  new / old per round, %-6s %s" % (what + ":", cell(ratios)))


if __name__ == "__main__":
    sys.exit(run_bench(Bench(parse_args())))
