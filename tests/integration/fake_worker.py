"""A stand-in for `manage.py kck_worker` that speaks the worker protocol
(JSON lines on stdin/stdout) without Django, so the daemon's supervision can
be tested on its own: key n=13 hangs, n=66 exits, n=7 raises, n=0 returns a
value jsonb refuses (a NUL character), n=404 is gone (its row does not exist).
warm lists py/21 and py/22. Keys rule 0 maps a store_book row to py/<id + 1000> and
raises for a row titled "boom"; FAKE_WORKER_PROTOCOL (default 1) is the protocol it announces
(2: it answers "pairs" and "changes" requests), and FAKE_WORKER_LOG a file that gets one
line per keys request ("keys <row pairs>") and per augment of a value {"count": n} ("augment
<changes>", adding the number of changes to count)."""
import json
import os
import sys
import time

PROTOCOL = int(os.environ.get("FAKE_WORKER_PROTOCOL", "1"))
print(json.dumps({"hello": "kck_worker", "protocol": PROTOCOL, "primers": ["py"]}), flush=True)


def rule_keys(old, new):
    """Keys rule 0: (keys, None) or (None, error)."""
    row = new or old or {}
    if row.get("title") == "boom" or (old or {}).get("title") == "boom":
        return None, "ValueError: boom"
    return ["py/%d" % (int(row["id"]) + 1000)], None


def log_line(line):
    if os.environ.get("FAKE_WORKER_LOG"):
        with open(os.environ["FAKE_WORKER_LOG"], "a") as f:
            f.write(line + "\n")


def log_keys(pairs):
    log_line("keys %d" % pairs)


computes = 0
for line in sys.stdin:
    try:
        req = json.loads(line)
    except ValueError as e:
        print(json.dumps({"id": None, "ok": False, "error": "bad json: %s" % e}), flush=True)
        continue
    rid = req.get("id")
    if req.get("op") == "compute":
        n = int(req["key"].split("/")[1])
        if n == 13:
            time.sleep(3600)
        if n == 66:
            os._exit(3)
        if n == 0:
            print(json.dumps({"id": rid, "ok": True, "value": {"s": "nul \u0000 here"}, "snapshot": None}),
                  flush=True)
            continue
        if n == 404:
            print(json.dumps({"id": rid, "ok": True, "gone": True}), flush=True)
            continue
        if n == 7:
            print(json.dumps({"id": rid, "ok": False, "error": "ValueError: seven is unlucky"}), flush=True)
            continue
        computes += 1  # every compute a new value, so every one is written
        print(json.dumps({"id": rid, "ok": True, "value": {"n": n, "pid": os.getpid(), "computes": computes},
                          "snapshot": None}), flush=True)
    elif req.get("op") == "augment":
        changes = req["changes"] if PROTOCOL >= 2 and "changes" in req else [req.get("change")]
        value = req.get("value")
        if req["key"] == "py/5":  # an augment that raises
            print(json.dumps({"id": rid, "ok": False, "error": "ValueError: augment of five failed"}), flush=True)
        elif isinstance(value, dict) and "count" in value:  # counts the changes applied to it
            log_line("augment %d" % len(changes))
            print(json.dumps({"id": rid, "ok": True, "value": {"count": value["count"] + len(changes)}}), flush=True)
        else:
            print(json.dumps({"id": rid, "ok": False, "cannot_augment": True}), flush=True)
    elif req.get("op") == "keys" and PROTOCOL >= 2 and "pairs" in req:
        log_keys(len(req["pairs"]))
        results = []
        for old, new in req["pairs"]:
            keys, error = rule_keys(old, new)
            results.append({"keys": keys} if error is None else {"error": error})
        print(json.dumps({"id": rid, "ok": True, "results": results}), flush=True)
    elif req.get("op") == "keys":
        log_keys(1)
        keys, error = rule_keys(req.get("old"), req.get("new"))
        print(json.dumps({"id": rid, "ok": True, "keys": keys} if error is None else
                         {"id": rid, "ok": False, "error": error}), flush=True)
    elif req.get("op") == "warm":  # py's warm(): three keys, one of them listed twice
        print(json.dumps({"id": rid, "ok": True, "keys": ["py/21", "py/22", "py/21"]}), flush=True)
    else:
        print(json.dumps({"id": rid, "ok": True}), flush=True)
