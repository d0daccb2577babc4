#!/usr/bin/python3
"""Augment where it pays (issue 10, item 4): commit -> fresh for one inserted row when the
product is augmented in place versus recomputed, for an expensive aggregate and for a large
value, and what augment_max_changes does with a burst.

    /usr/bin/python3 bench/augment_pays.py [--kck build/kck] [--rows 8000000] [--inserts 20] [--rounds 3]

Method. One throwaway cluster (bench/write_path.py's), PostgreSQL's defaults. Two products:
- sales_by_day: orders, revenue and revenue per day over `--rows` sales rows, converted at the
  day's rate (a join with rates); ~11 KB of jsonb. Its augment adds one sale: the rate lookup
  and three jsonb_set calls.
- all_titles: the titles of 100 000 books in id order, one jsonb array of ~1 MB. Its augment
  appends the new title.
Each configuration runs in its own daemon (--log-level debug): the config is installed with or
without the augment SQL, the product is refreshed, the daemon starts, and `--inserts` single-row
INSERTs (autocommit, 50 ms apart) each wait for the product's row to be rewritten (an AFTER
UPDATE trigger on kck.cache notifies a listening connection at the daemon's COMMIT). Reported per
configuration: commit -> fresh p50/p99 (t0 = the INSERT acknowledged), the daemon's compute_ms
for the product (the augment or the recompute), and its batch time; batch - compute is what the
write and the claim cost. Configurations are interleaved in rounds (the machine is noisy); the
table shows the median over rounds of each round's p50 and p99, with min-max, and the per-round
ratio recompute / augment. After every run the product must equal a recompute.
Last, the burst: one transaction inserting 50, then 150, rows into sales (one statement each):
at or under augment_max_changes (100) the key is augmented change by change, over it
recomputed once.
"""
import argparse
import json
import os
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_path import (BenchError, Cluster, Daemon, Stats, fresh_probe, median, pg_bindir,  # noqa: E402
                        rotated, run, run_bench, FRESH_TRIGGER)

CURRENCIES = ["EUR", "USD", "GBP", "CHF", "JPY"]
SCHEMA = """
CREATE TABLE rates (currency text, day date, rate numeric(12,6), PRIMARY KEY (currency, day));
INSERT INTO rates SELECT c, date '2026-01-01' + d, 1 + (d %% 17) / 100.0 + length(c) / 1000.0
  FROM unnest(ARRAY['EUR','USD','GBP','CHF','JPY']) c, generate_series(0, 364) d;
CREATE TABLE sales (id bigserial PRIMARY KEY, store int NOT NULL, day date NOT NULL,
                    currency text NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO sales (store, day, currency, amount)
  SELECT 1 + i %% 10, date '2026-01-01' + (i %% 365), (ARRAY['EUR','USD','GBP','CHF','JPY'])[1 + i %% 5],
         (i %% 9973) / 100.0 FROM generate_series(1, %(rows)d) i;
CREATE TABLE books (id bigserial PRIMARY KEY, title text NOT NULL);
INSERT INTO books (title) SELECT 't' || i FROM generate_series(1, 100000) i;
"""
SALES_COMPUTE = ("SELECT jsonb_build_object('orders', sum(n), 'revenue', sum(r), 'by_day', jsonb_object_agg(day, r)) "
                 "FROM (SELECT s.day, count(*) n, sum(s.amount * r.rate) r FROM sales s "
                 "JOIN rates r USING (currency, day) GROUP BY s.day) d")
SALES_AUGMENT = (
    "SELECT jsonb_set(jsonb_set(jsonb_set(:value, '{orders}', to_jsonb((:value->>'orders')::numeric + 1)), "
    "'{revenue}', to_jsonb((:value->>'revenue')::numeric + x)), ARRAY['by_day', :new->>'day'], "
    "to_jsonb(coalesce((:value->'by_day'->>(:new->>'day'))::numeric, 0) + x)) "
    "FROM (SELECT (:new->>'amount')::numeric * rate AS x FROM rates "
    "WHERE currency = :new->>'currency' AND day = (:new->>'day')::date) r")
TITLES_COMPUTE = "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM books"
TITLES_AUGMENT = "SELECT :value || to_jsonb(:new->>'title')"
PRODUCTS = {
    "sales_by_day": ("sales", SALES_COMPUTE, SALES_AUGMENT),
    "all_titles": ("books", TITLES_COMPUTE, TITLES_AUGMENT),
}


def config(augment):
    primers = []
    for name, (table, compute, aug) in PRODUCTS.items():
        p = {"name": name, "parameters": [], "compute": compute, "depends_on": [{"table": table, "params": {}}]}
        if augment:
            p["augment"] = {table: {"insert": aug}}
        primers.append(p)
    return json.dumps({"primers": primers})


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kck", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "kck"))
    p.add_argument("--rows", type=int, default=8000000)
    p.add_argument("--inserts", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args()


class Bench:
    def __init__(self, a):
        self.a = a
        self.cluster = Cluster(pg_bindir())
        self.db = None
        self.n = 0

    def q(self, sql, args=None):
        with self.db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone() if cur.description else None

    def kck(self, *args):
        return run([self.a.kck, "--db", self.cluster.conninfo] + list(args))

    def setup(self):
        self.cluster.start()
        self.db = psycopg2.connect(self.cluster.conninfo)
        self.db.autocommit = True
        print("loading %d sales rows and 100 000 books ..." % self.a.rows, flush=True)
        self.q(SCHEMA % {"rows": self.a.rows})
        self.q("VACUUM ANALYZE")

    def install(self, augment):
        path = self.cluster.dir / ("config-%s.json" % augment)
        path.write_text(config(augment))
        self.kck("install", "--config", path)
        if self.q("SELECT count(*) FROM pg_trigger WHERE tgname = 'bench_fresh'")[0] == 0:
            self.q(FRESH_TRIGGER)

    def insert(self, product, conn):
        self.n += 1
        with conn.cursor() as cur:
            if product == "sales_by_day":
                cur.execute("INSERT INTO sales (store, day, currency, amount) VALUES (%s, %s, %s, %s)",
                            [1 + self.n % 10, "2026-%02d-%02d" % (1 + self.n % 12, 1 + self.n % 28),
                             CURRENCIES[self.n % 5], "%d.%02d" % (self.n % 97, self.n % 100)])
            else:
                cur.execute("INSERT INTO books (title) VALUES (%s)", ["new %d" % self.n])

    def check(self, product):
        compute = PRODUCTS[product][1]
        same = self.q("SELECT value = (%s) FROM kck.cache WHERE key = %%s" % compute, [product])
        if not same or not same[0]:
            raise BenchError("%s differs from a recompute" % product)

    def one_run(self, product, augment):
        """Per insert: (commit -> fresh ms, compute_ms); and the daemon's batch ms."""
        self.install(augment)
        self.kck("refresh", product)
        log = self.cluster.dir / ("daemon-%d.log" % time.monotonic_ns())
        daemon, fresh, writer = fresh_probe(self.a.kck, self.cluster.conninfo, log)
        time.sleep(0.5)
        samples = []
        try:
            for _ in range(self.a.inserts):
                fresh.drain()
                self.insert(product, writer)
                t0 = time.perf_counter()
                got = fresh.wait(lambda p: p.split(" ")[0] == product, 30.0)
                if got is None:
                    raise BenchError("%s was not rewritten within 30 s; daemon log:\n%s" % (product, daemon.log_tail()))
                samples.append(((got[0] - t0) * 1000.0, float(got[1].split(" ")[1])))
                time.sleep(0.05)
        finally:
            fresh.close()
            writer.close()
            daemon.stop()
        self.check(product)
        batches = [ms for changes, _, ms in daemon.batches() if changes]
        return samples, batches

    def burst(self, count):
        """One transaction of `count` single-row inserts: (products written, augmented, batch ms)."""
        self.install(True)
        self.kck("refresh", "sales_by_day")
        log = self.cluster.dir / ("burst-%d.log" % count)
        daemon = Daemon(self.a.kck, self.cluster.conninfo, log, level="debug")
        time.sleep(0.5)
        conn = psycopg2.connect(self.cluster.conninfo)
        with conn, conn.cursor() as cur:
            for i in range(count):
                cur.execute("INSERT INTO sales (store, day, currency, amount) VALUES (1, '2026-03-01', 'EUR', %s)",
                            ["%d.25" % i])
        conn.close()
        deadline = time.monotonic() + 60
        while self.q("SELECT EXISTS (SELECT 1 FROM kck.changes)")[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        daemon.stop()
        self.check("sales_by_day")
        lines = [b for b in daemon_batch_lines(log)]
        return lines

    def main(self):
        self.setup()
        configs = [(p, aug) for p in PRODUCTS for aug in (True, False)]
        got = {c: {"p50": [], "p99": [], "compute": [], "batch": []} for c in configs}
        for r in range(self.a.rounds):
            for product, augment in rotated(configs, r):
                samples, batches = self.one_run(product, augment)
                g = got[(product, augment)]
                g["p50"].append(Stats([s[0] for s in samples]).pct(50))
                g["p99"].append(Stats([s[0] for s in samples]).pct(99))
                g["compute"].append(median([s[1] for s in samples]))
                g["batch"].append(median(batches))
            print("  round %d done" % (r + 1), flush=True)
        self.report(got)
        print("\nburst in one transaction (sales_by_day, augment_max_changes 100):")
        for count in (50, 150):
            lines = self.burst(count)
            print("  %3d inserts: %s" % (count, "; ".join(lines)))

    def report(self, got):
        print("\ncommit -> fresh of one INSERT (ms; median over %d rounds of each round's p50/p99, min-max):"
              % self.a.rounds)
        print("  %-13s %-10s %-22s %-22s %-16s %-16s" % ("product", "route", "p50", "p99", "compute_ms",
                                                        "batch_ms"))
        cell = lambda v: "%.2f (%.2f-%.2f)" % (median(v), min(v), max(v))  # noqa: E731
        for (product, augment), g in got.items():
            print("  %-13s %-10s %-22s %-22s %-16s %-16s" % (product, "augment" if augment else "recompute",
                                                            cell(g["p50"]), cell(g["p99"]),
                                                            "%.2f" % median(g["compute"]),
                                                            "%.2f" % median(g["batch"])))
        for product in PRODUCTS:
            ratios = [rec / aug for rec, aug in zip(got[(product, False)]["p50"], got[(product, True)]["p50"])]
            print("  %s: recompute p50 / augment p50 per round: %s" % (product, cell(ratios)))


def daemon_batch_lines(log):
    out = []
    for line in log.read_text(errors="replace").splitlines():
        at = line.find("batch: ")
        if at >= 0 and "batch: 0 changes" not in line:
            out.append(line[at + len("batch: "):])
    return out


if __name__ == "__main__":
    sys.exit(run_bench(Bench(parse_args())))
