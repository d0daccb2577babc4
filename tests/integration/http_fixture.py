#!/usr/bin/python3
"""A local HTTP server for tests/integration/import_test.cc: prints its port, then serves

  /authors/<id>    {"id": <id>, "name": <name>}, ETag "<version>"; 304 on If-None-Match of the current one;
                   401 without the header X-Token: secret
  /names/<text>    {"path": <the raw path after /names/>}
  /set/<id>/<name> sets author <id>'s name (a new version); /fail/<id>/<0|1> makes it answer 500
  /flaky           503 twice, then {"ok": true}
  /slow            sleeps 3 s
  /huge            2 MB of JSON
  /notjson         hello
  /redirect        302 to /names/redirected
  /stats           {"requests": {path: n}, "not_modified": n}
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"names": {}, "versions": {}, "failing": set(), "requests": {}, "not_modified": 0, "flaky": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, body, headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path
        with lock:
            state["requests"][path] = state["requests"].get(path, 0) + 1
        parts = path.split("/")
        if path.startswith("/authors/"):
            return self.author(parts[2])
        if path.startswith("/names/"):
            return self.send(200, json.dumps({"path": path[len("/names/"):]}))
        if path.startswith("/set/"):
            with lock:
                state["names"][parts[2]] = parts[3]
                state["versions"][parts[2]] = state["versions"].get(parts[2], 0) + 1
            return self.send(200, "{}")
        if path.startswith("/fail/"):
            with lock:
                (state["failing"].add if parts[3] == "1" else state["failing"].discard)(parts[2])
            return self.send(200, "{}")
        if path == "/flaky":
            with lock:
                state["flaky"] += 1
                n = state["flaky"]
            return self.send(503, "busy") if n <= 2 else self.send(200, '{"ok": true}')
        if path == "/slow":
            time.sleep(3)
            return self.send(200, "{}")
        if path == "/huge":
            return self.send(200, json.dumps(["x" * 100] * 20000))
        if path == "/notjson":
            return self.send(200, "hello")
        if path == "/redirect":
            return self.send(302, "", [("Location", "/names/redirected")])
        if path == "/stats":
            with lock:
                return self.send(200, json.dumps({"requests": state["requests"], "not_modified": state["not_modified"]}))
        return self.send(404, "no such thing")

    def author(self, id_):
        if self.headers.get("X-Token") != "secret":
            return self.send(401, "no token")
        with lock:
            if id_ in state["failing"]:
                return self.send(500, "down")
            version = str(state["versions"].get(id_, 0))
            name = state["names"].get(id_, "author " + id_)
            if self.headers.get("If-None-Match") == '"%s"' % version:
                state["not_modified"] += 1
                return self.send(304, "", [("ETag", '"%s"' % version)])
        self.send(200, json.dumps({"id": int(id_), "name": name}), [("ETag", '"%s"' % version)])


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
# One write (an unbuffered stdout would write the number and the newline
# apart), and a reader gone early must not stop the server.
try:
    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
except BrokenPipeError:
    pass
server.serve_forever()
