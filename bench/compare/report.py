"""bench/compare's figures: per-configuration medians over rounds (with min-max), ratios paired
within a round, the issue's targets, the table (text and Markdown) and the PNG.

    /usr/bin/python3 bench/compare/report.py RESULTS.json OUT.png   # redraws a run's table and plot
"""
import os
import statistics

CPUS = os.cpu_count()

TARGET_STALE_P99_MS = 5.0     # kck's staleness p99
TARGET_WRITE_RATIO = 0.95     # kck's max write TPS / (e)'s: overhead <= 5 %
TARGET_READ_RATIO = 1.1       # kck's read p50 / (c)'s

COSTS = ("server", "daemon", "app")  # the CPU a change costs; "harness" and "other" are context

# name -> (what, how to take it from a run)
METRICS = {
    "tps": ("write TPS at the fixed rate", lambda r: r["writer"]["tps"]),
    "max_tps": ("max write TPS", lambda r: r["max"]["tps"]),
    "capture_ratio": ("max write TPS with / without capture, daemon stopped",
                      lambda r: r["capture"]["ratio"] if "capture" in r else None),
    "write_p50": ("write p50 ms", lambda r: r["writer"]["latency_ms"]["p50"]),
    "read_p50": ("read p50 ms", lambda r: r["reader"]["latency_ms"]["p50"]),
    "read_p99": ("read p99 ms", lambda r: r["reader"]["latency_ms"]["p99"]),
    "stale_p50": ("staleness p50 ms", lambda r: r["prober"]["staleness_ms"]["p50"]),
    "stale_p99": ("staleness p99 ms", lambda r: r["prober"]["staleness_ms"]["p99"]),
    "cpu_per_1k": ("CPU s / 1000 changes", lambda r: 1000 * sum(r["cpu_s"][k] for k in COSTS) / r["changes"]),
    "cpu_server_per_1k": ("server CPU s / 1000 changes", lambda r: 1000 * r["cpu_s"]["server"] / r["changes"]),
    "cpu_daemon_per_1k": ("daemon CPU s / 1000 changes", lambda r: 1000 * r["cpu_s"]["daemon"] / r["changes"]),
    "cpu_app_per_1k": ("writer process CPU s / 1000 changes", lambda r: 1000 * r["cpu_s"]["app"] / r["changes"]),
    "drain_ms_per_1k": ("ms the daemon takes to drain 1000 queued changes (from its start)",
                        lambda r: drain_per_1k(r.get("capture"))),
    "fsync_ms": ("fsync probe ms", lambda r: r["fsync_ms"]),
    "cold_ms": ("staleness ms of the first probe of the warm-up, right after the roles (and kck's daemon) started",
                lambda r: r["warmup"]["first_probes_ms"][0] if r.get("warmup") else None),
    "other_cpu_share": ("share of the machine's CPU used by other processes",
                        lambda r: r["cpu_s"]["other"] / r["elapsed_s"] / CPUS),
}
TABLE = ("tps", "max_tps", "write_p50", "read_p50", "read_p99", "stale_p50", "stale_p99", "cpu_per_1k")
# ratio name -> (metric, configuration it is paired with, that configuration's metric)
RATIOS = {"max_tps_vs_e": ("max_tps", "e", "max_tps"),
          "write_p50_vs_e": ("write_p50", "e", "write_p50"), "cpu_vs_e": ("cpu_per_1k", "e", "cpu_per_1k"),
          "read_p50_vs_c": ("read_p50", "c", "read_p50"), "read_p99_vs_c": ("read_p99", "c", "read_p99"),
          "drain_vs_a": ("drain_ms_per_1k", "a", "drain_ms_per_1k")}


def drain_per_1k(capture):
    """kck: ms from the daemon's start to an empty outbox, per 1000 changes the capture bursts queued."""
    if capture is None:
        return None
    return 1000 * capture["drain_ms"] / sum(b["changes"] for b in capture["bursts"]["on"])


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def summarize(result):
    """{tag: {metric: spread, ratio: spread, ...}} plus the targets."""
    runs = result["runs"]
    by = {}
    for tag in result["configs"]:
        mine = sorted((r for r in runs if r["config"] == tag), key=lambda r: r["round"])
        s = {name: spread(v) for name, v in ((name, [take(r) for r in mine]) for name, (_, take) in METRICS.items())
             if None not in v}
        s["wrong_products"] = sum(r["check"]["wrong"] for r in mine)
        s["probe_timeouts"] = sum(r["prober"]["timeouts"] for r in mine)
        s["read_misses"] = sum(r["reader"]["misses"] for r in mine)
        s["write_errors"] = sum(r["writer"]["errors"] + r["max"]["errors"] for r in mine)
        s["augmented_share"] = augmented_share(mine)
        by[tag] = s
    for tag in result["configs"]:
        for name, (metric, other, theirs) in RATIOS.items():
            if metric in by[tag] and tag != other:
                pairs = paired(runs, tag, METRICS[metric][1], other, METRICS[theirs][1])
                if pairs:
                    by[tag][name] = spread(pairs)
    return {"configs": by, "targets": targets(by, result["args"]["rate"])}


def paired(runs, tag, take, other, take_other):
    """take(run of tag) / take_other(run of other), for each round that has both."""
    mine = {r["round"]: take(r) for r in runs if r["config"] == tag}
    theirs = {r["round"]: take_other(r) for r in runs if r["config"] == other}
    return [mine[k] / theirs[k] for k in sorted(mine) if k in theirs and theirs[k]]


def augmented_share(runs):
    minutes = [r["daemon_last_minute"] for r in runs if r.get("daemon_last_minute")]
    augmented = sum(m.get("augmented", 0) for m in minutes)
    written = augmented + sum(m.get("recomputed", 0) for m in minutes)
    return augmented / written if written else None


def targets(by, rate):
    """(what, measured, target, ok) for kck's (a) and (b)."""
    out = []
    for tag in ("a", "b"):
        s = by.get(tag)
        if not s:
            continue
        p99 = s["stale_p99"]
        out.append(("(%s) staleness p99 at %d changes/s" % (tag, rate),
                    "%.2f ms (%.2f-%.2f)" % (p99["median"], p99["min"], p99["max"]),
                    "<= %g ms" % TARGET_STALE_P99_MS, p99["median"] <= TARGET_STALE_P99_MS))
        for name, what in (("capture_ratio", "max write TPS, capture / none"),
                           ("max_tps_vs_e", "max write TPS, daemon running / (e)")):
            if name in s:
                r = s[name]
                out.append(("(%s) %s" % (tag, what), "%.3fx (%.3f-%.3f)" % (r["median"], r["min"], r["max"]),
                            ">= %.2fx" % TARGET_WRITE_RATIO, r["median"] >= TARGET_WRITE_RATIO))
        if "read_p50_vs_c" in s:
            r = s["read_p50_vs_c"]
            out.append(("(%s) read p50 / (c)'s" % tag, "%.3fx (%.3f-%.3f)" % (r["median"], r["min"], r["max"]),
                        "<= %.1fx" % TARGET_READ_RATIO, r["median"] <= TARGET_READ_RATIO))
    return out


# --------------------------------------------------------------------------- text

def fmt(x):
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def cell(s):
    return "%s (%s-%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))


def table_rows(result):
    """Header and one row of cells per configuration: median (min-max) of each TABLE metric."""
    by = result["summary"]["configs"]
    header = ["configuration"] + [METRICS[m][0] for m in TABLE]
    rows = [[result["configs"][tag]] + [cell(by[tag][m]) if m in by[tag] else "-" for m in TABLE]
            for tag in result["configs"]]
    return header, rows


def markdown_table(result):
    header, rows = table_rows(result)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def print_report(result):
    print_table(result)
    print_ratios(result)
    print_context(result)
    print("\ntargets:")
    for what, measured, target, ok in result["summary"]["targets"]:
        print("  %-42s %-28s %-10s %s" % (what, measured, target, "ok" if ok else "MISS"))


def print_table(result):
    header, rows = table_rows(result)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print("\nmedian (min-max) over %d rounds" % result["args"]["rounds"])
    for r in [header] + rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))


def print_ratios(result):
    print("\nratios paired within a round, median (min-max):")
    for tag, s in result["summary"]["configs"].items():
        parts = ["%s %s" % (name, cell(s[name]).replace(" (", "x (")) for name in ("capture_ratio",) + tuple(RATIOS)
                 if name in s]
        if "drain_ms_per_1k" in s:
            parts.append("drain of a cold backlog %s ms per 1000 changes" % cell(s["drain_ms_per_1k"]))
        if parts:
            print("  %-36s %s" % (result["configs"][tag], ";  ".join(parts)))


def print_context(result):
    print("\nCPU s per 1000 changes (server / daemon / writer process), other processes' share of the machine,"
          " fsync probe, checks:")
    for tag, s in result["summary"]["configs"].items():
        share = s["augmented_share"]
        print("  %-36s %s / %s / %s;  other %s%%;  fsync %s ms;  wrong products %d, probe timeouts %d, "
              "read misses %d, write errors %d%s%s" % (
                  result["configs"][tag], *(fmt(s[m]["median"]) for m in (
                      "cpu_server_per_1k", "cpu_daemon_per_1k", "cpu_app_per_1k")),
                  fmt(100 * s["other_cpu_share"]["median"]), cell(s["fsync_ms"]), s["wrong_products"],
                  s["probe_timeouts"], s["read_misses"], s["write_errors"],
                  "" if share is None else ";  %.0f%% of products written were augments" % (100 * share),
                  ";  cold start (first probe of the warm-up) %s ms" % cell(s["cold_ms"]) if "cold_ms" in s else ""))


# --------------------------------------------------------------------------- plot

# (title, metrics, log scale, where to draw a dashed line: "rate" or a number)
PANELS = (("write TPS: at the fixed rate (dashed), as fast as possible", ("tps", "max_tps"), False, "rate"),
          ("read latency ms", ("read_p50", "read_p99"), True, None),
          ("staleness ms, commit -> a read sees it (dashed: kck's target)", ("stale_p50", "stale_p99"), True,
           TARGET_STALE_P99_MS),
          ("CPU s per 1000 changes: server + daemon + writer", ("cpu_per_1k",), True, None))


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = result["summary"]["configs"]
    tags = list(result["configs"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5))
    for ax, (title, metrics, log, line) in zip(axes.flat, PANELS):
        panel(ax, by, tags, [result["configs"][t] for t in tags], title, metrics, log)
        if line is not None:
            ax.axvline(result["args"]["rate"] if line == "rate" else line, color="grey", linestyle="--", linewidth=1)
    fig.suptitle("bookstore workload at %d changes/s: median of %d rounds, bars min-max" % (
        result["args"]["rate"], result["args"]["rounds"]))
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)


def panel(ax, by, tags, labels, title, metrics, log):
    height = 0.8 / len(metrics)
    for i, m in enumerate(metrics):
        med = [by[t][m]["median"] for t in tags]
        err = [[med[j] - by[t][m]["min"] for j, t in enumerate(tags)],
               [by[t][m]["max"] - med[j] for j, t in enumerate(tags)]]
        ys = [k + (i - (len(metrics) - 1) / 2) * height for k in range(len(tags))]
        bars = ax.barh(ys, med, height, xerr=err, capsize=2, label=METRICS[m][0], alpha=0.85 if i else 1)
        for bar, v, t in zip(bars, med, tags):
            ax.text(by[t][m]["max"], bar.get_y() + bar.get_height() / 2, " " + fmt(v), va="center", fontsize=7)
    ax.set_yticks(range(len(tags)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9, pad=16 if len(metrics) > 1 else 6)
    if log:
        ax.set_xscale("log")
    if len(metrics) > 1:
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False,
                  borderaxespad=0.1)


if __name__ == "__main__":
    # Redraws a run's plot and table: report.py RESULTS.json OUT.png
    import json
    import sys
    saved = json.load(open(sys.argv[1]))
    saved["summary"] = summarize(saved)
    print_report(saved)
    plot(saved, sys.argv[2])
