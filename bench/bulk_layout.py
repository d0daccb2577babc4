#!/usr/bin/python3
"""Why write_path.py's bulk section resets the table's layout before each timed run.

    /usr/bin/python3 bench/bulk_layout.py [--kck PATH] [--pairs 12]

`UPDATE t SET v = v + 1 WHERE id <= 100000` moves its 100k rows into the space that the run
before it freed (VACUUM t between runs), so t's layout alternates between two states from one
run to the next. Timed runs without and with capture that alternate too then each find the same
state every time, and the ratio measures the layout as much as the capture.

Method. write_path.py's table t (200,000 rows, 1000 groups) and primer grp_sum, kck installed
(the C capture beside --kck when there is one); the capture is switched with kck install and
kck uninstall. Pairs (no capture, capture), the order alternating by pair, each
run after TRUNCATE kck.changes, VACUUM t, CHECKPOINT. Two modes, alternating by pair:
  as is        nothing else: consecutive runs find alternate layouts;
  same layout  before each timed run the same UPDATE, untimed and with no trigger firing
               (session_replication_role = replica), then VACUUM t: every timed run finds the
               same layout.
Reported per mode: the median of the pairs' ratios (capture / none) with min-max, and apart
for the pairs that ran "none" first and those that ran the capture first. Where the layout
matters, "as is" shows two different ratios by order; "same layout" shows one.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from write_path import BULK_ROWS, CONFIG, SCHEMA, ClusterBench, median, ms_since, run, run_bench  # noqa: E402

BULK = "UPDATE t SET v = v + 1 WHERE id <= %d" % BULK_ROWS


class BulkLayout(ClusterBench):
    def setup(self):
        self.start()
        self.q1(SCHEMA)
        self.config = self.cluster.dir / "bulk_layout.json"
        self.config.write_text(json.dumps(CONFIG))
        self.env = dict(os.environ)
        module = os.path.join(os.path.dirname(os.path.abspath(self.a.kck)), "kck_capture.so")
        if os.path.exists(module):
            self.env["KCK_CAPTURE_LIBRARY"] = module
        self.captured = False
        self.capture(True)
        self.q1(BULK)  # warm-up

    def capture(self, on):
        """kck install / kck uninstall: no trigger at all without capture (a disabled trigger
        still makes PostgreSQL collect its transition tables)."""
        if on != self.captured:
            argv = ["install", "--config", str(self.config)] if on else ["uninstall"]
            run([self.a.kck, "--db", self.cluster.conninfo] + argv, env=self.env)
            self.captured = on

    def timed(self, capture, same_layout):
        self.capture(capture)
        if same_layout:
            for sql in ("SET session_replication_role = replica", BULK, "RESET session_replication_role",
                        "VACUUM t"):
                self.q1(sql)
        for sql in ("TRUNCATE kck.changes", "VACUUM t", "CHECKPOINT"):
            self.q1(sql)
        t0 = time.perf_counter()
        self.q1(BULK)
        return ms_since(t0)

    def pair(self, none_first, same_layout):
        order = (False, True) if none_first else (True, False)
        ms = {capture: self.timed(capture, same_layout) for capture in order}
        return ms[True] / ms[False], ms

    def main(self):
        self.setup()
        ratios = {(mode, first): [] for mode in (False, True) for first in (True, False)}
        for p in range(self.a.pairs):
            line = []
            for same_layout in ((False, True) if p % 2 == 0 else (True, False)):
                none_first = (p // 2) % 2 == 0
                ratio, ms = self.pair(none_first, same_layout)
                ratios[(same_layout, none_first)].append(ratio)
                line.append("%s: none %.0f ms, capture %.0f ms (%s first) %.3fx" % (
                    "same layout" if same_layout else "as is", ms[False], ms[True],
                    "none" if none_first else "capture", ratio))
            print("pair %2d  %s" % (p + 1, ";  ".join(line)), flush=True)
        print()
        for same_layout in (False, True):
            both = ratios[(same_layout, True)] + ratios[(same_layout, False)]
            print("%-12s capture / none %.3fx (%.3f-%.3f);  none first %.3fx, capture first %.3fx" % (
                "same layout" if same_layout else "as is", median(both), min(both), max(both),
                median(ratios[(same_layout, True)]), median(ratios[(same_layout, False)])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kck", default=os.path.join(os.path.dirname(__file__), "..", "build", "kck"))
    ap.add_argument("--pairs", type=int, default=12, help="pairs per mode (default 12)")
    a = ap.parse_args()
    return run_bench(BulkLayout(a))


if __name__ == "__main__":
    sys.exit(main())
