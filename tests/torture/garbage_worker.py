"""A worker that speaks the protocol (JSON lines on stdin/stdout) but
answers some computes with garbage: n=17 a line that is not JSON, n=19 an
ok reply without a value, n=23 a reply to a request id nobody sent, n=29 a
half line and then exits. Other keys compute {"n": n}."""
import json
import os
import sys

print(json.dumps({"hello": "kck_worker", "protocol": 1, "primers": ["py"]}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    rid = req.get("id")
    if req.get("op") != "compute":
        print(json.dumps({"id": rid, "ok": req.get("op") != "augment", "cannot_augment": True}), flush=True)
        continue
    n = int(req["key"].split("/")[1])
    if n == 17:
        print("this is not json {", flush=True)
    elif n == 19:
        print(json.dumps({"id": rid, "ok": True}), flush=True)
    elif n == 23:
        print(json.dumps({"id": rid + 1000, "ok": True, "value": "stray", "snapshot": None}), flush=True)
    elif n == 29:
        sys.stdout.write('{"id": %d, "ok": tr' % rid)
        sys.stdout.flush()
        os._exit(0)
    else:
        print(json.dumps({"id": rid, "ok": True, "value": {"n": n}, "snapshot": None}), flush=True)
