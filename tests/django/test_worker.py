"""manage.py kck_worker: the JSON-lines protocol, spoken to a real subprocess."""

import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import MANAGE, PYTHON, query


class WorkerProcess:
    def __init__(self, env=None):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([PYTHON, str(MANAGE), "kck_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=dict(os.environ, **(env or {})))
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.next_id = 100

    def _pump(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line)
        self.lines.put(None)

    def read(self, timeout=15):
        line = self.lines.get(timeout=timeout)
        assert line is not None, "worker closed stdout; stderr:\n" + self.stderr_text()
        assert line.endswith(b"\n")
        return json.loads(line)

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def call(self, req, **kw):
        if "id" not in req:
            self.next_id += 1
            req = dict(req, id=self.next_id)
        self.send(json.dumps(req).encode() + b"\n")
        resp = self.read(**kw)
        assert resp["id"] == req["id"]
        return resp

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def worker(pg_cluster):
    w = WorkerProcess()
    w.hello = w.read(timeout=30)
    yield w
    w.close()


def test_hello(worker):
    assert worker.hello["hello"] == "kck_worker"
    assert worker.hello["protocol"] == 2
    assert {"title_list", "author_stats", "top_books", "echo", "review_count"} <= set(worker.hello["primers"])
    assert worker.hello["primers"] == sorted(worker.hello["primers"])


def test_ping(worker):
    assert worker.call({"id": 1, "op": "ping"}) == {"id": 1, "ok": True}


def test_compute_returns_value_snapshot_and_time_and_stores_nothing(worker, db):
    resp = worker.call({"id": 2, "op": "compute", "key": "echo/a%2Fb"})
    assert resp["ok"] is True
    assert resp["value"] == {"text": "a/b", "n": 1}
    assert re.fullmatch(r"\d+:\d+:(\d+(,\d+)*)?", resp["snapshot"])
    assert isinstance(resp["compute_ms"], (int, float)) and resp["compute_ms"] >= 0
    assert query("SELECT count(*) FROM kck.cache")[0][0] == 0  # the daemon stores


def test_compute_snapshot_is_the_transactions(worker, db):
    before = query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")[0][0]
    resp = worker.call({"op": "compute", "key": "typed/1/x/false/2024-02-29"})
    xmax = int(resp["snapshot"].split(":")[1])
    assert xmax >= before
    assert resp["value"]["d"] == "2024-02-29"


def test_compute_with_models(worker, db):
    from store.models import Author, Book

    a = Author.objects.create(name="A")
    Book.objects.create(author=a, title="T1")
    resp = worker.call({"op": "compute", "key": "title_list/%d" % a.id})
    assert resp["ok"] and [b["title"] for b in resp["value"]] == ["T1"]


def test_compute_of_a_gone_row_answers_gone(worker, db):
    from store.models import Author, Book

    book = Book.objects.create(author=Author.objects.create(name="A"), title="T1")
    key = "book_title/%d" % book.id
    assert worker.call({"op": "compute", "key": key})["value"] == "T1"
    book.delete()
    resp = worker.call({"op": "compute", "key": key})
    assert resp == {"id": resp["id"], "ok": True, "gone": True}
    assert query("SELECT count(*) FROM kck.cache")[0][0] == 0


@pytest.mark.parametrize("key, error", [
    ("boom/3", r"^PrimerComputeError: primer \"boom\": compute of key \"boom/3\" failed: ValueError: boom 3$"),
    ("not_json/1", r"^PrimerComputeError: .*ValueError"),
    ("nope/1", r"^UnknownPrimer: unknown primer \"nope\""),
    ("echo", r"^KeyParameterMismatch: primer \"echo\": key \"echo\" has 0 parameters"),
    ("BAD", r"^InvalidKey: .*is not valid"),
    ("cycle/1", r"^PrimerComputeError: .*depends on itself"),
])
def test_compute_errors_are_data(worker, db, key, error):
    resp = worker.call({"op": "compute", "key": key})
    assert resp["ok"] is False
    assert re.search(error, resp["error"]), resp["error"]
    assert "\n" not in resp["error"]
    assert worker.call({"op": "ping"})["ok"]


def test_nested_miss_in_worker_compute(worker, db):
    resp = worker.call({"op": "compute", "key": "nested/q"})
    assert resp["ok"], resp
    assert resp["value"]["inner"]["text"] == "q"
    # Nothing else committed meanwhile: the inner product was stored by the worker.
    assert resp["value"]["inner_stored"] is True
    assert query("SELECT key FROM kck.cache") == [("echo/q",)]


def test_print_in_a_primer_goes_to_stderr(worker, db):
    resp = worker.call({"op": "compute", "key": "noisy"})
    assert resp["ok"] and resp["value"] == "quiet"
    assert worker.call({"op": "ping"})["ok"]
    deadline = time.monotonic() + 5
    while "noisy primer printing to stdout" not in worker.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "noisy primer printing to stdout" in worker.stderr_text()


def _change(op, old, new, table="public.store_review"):
    return {"table": table, "op": op, "old": old, "new": new}


def test_augment(worker, db):
    r = worker.call({"op": "augment", "key": "review_count/4", "value": 2,
                     "change": _change("I", None, {"id": 9, "book_id": 4})})
    assert r == {"id": r["id"], "ok": True, "value": 3}
    r = worker.call({"op": "augment", "key": "review_count/4", "value": 3,
                     "change": _change("U", {"id": 9, "book_id": 4}, {"id": 9, "book_id": 5})})
    assert r["ok"] and r["value"] == 2
    r = worker.call({"op": "augment", "key": "review_count/4", "value": 2,
                     "change": _change("D", {"id": 9, "book_id": 4}, None)})
    assert r["ok"] and r["value"] == 1


def test_augment_a_keys_changes_in_one_request(worker, db):
    changes = [_change("I", None, {"id": 9, "book_id": 4}), _change("I", None, {"id": 10, "book_id": 4}),
               _change("U", {"id": 9, "book_id": 4}, {"id": 9, "book_id": 5}),
               _change("I", None, {"id": 11, "book_id": 4})]
    r = worker.call({"op": "augment", "key": "review_count/4", "value": 2, "changes": changes})
    assert r == {"id": r["id"], "ok": True, "value": 4}
    # The example's stats, whose average each augment recomputes from the value before.
    stats = {"author_id": 1, "books": 2, "reviews": 1, "rating_total": 4, "average_rating": 4.0}
    r = worker.call({"op": "augment", "key": "author_stats/1", "value": stats, "changes": [
        _change("I", None, {"id": 5, "book_id": 2, "rating": 1}), _change("I", None, {"id": 6, "book_id": 2, "rating": 1})]})
    assert r["ok"] and r["value"] == dict(stats, reviews=3, rating_total=6, average_rating=2.0)
    r = worker.call({"op": "augment", "key": "review_count/4", "value": 2, "changes": []})
    assert r["ok"] and r["value"] == 2


@pytest.mark.parametrize("changes", [
    [_change("I", None, {"id": 1, "book_id": 1}), _change("T", None, None)],                   # a truncate
    [_change("U", [{"book_id": 1}], [{"book_id": 2}]), _change("I", None, {"id": 1, "book_id": 1})],  # bulk
])
def test_augment_a_keys_changes_one_that_cannot_be_augmented_declines_all(worker, db, changes):
    r = worker.call({"op": "augment", "key": "review_count/1", "value": 1, "changes": changes})
    assert r == {"id": r["id"], "ok": False, "cannot_augment": True}


@pytest.mark.parametrize("changes, error", [
    ({"op": "I"}, "field 'changes' must be a list"),
    (["x"], "field 'changes' must be a list of objects"),
    ([_change("I", None, "row")], "change.old and change.new must be objects or null"),
])
def test_augment_a_keys_changes_bad_requests(worker, db, changes, error):
    r = worker.call({"op": "augment", "key": "review_count/1", "value": 1, "changes": changes})
    assert r["ok"] is False and error in r["error"], r


def test_augment_example_author_stats(worker, db):
    stats = {"author_id": 1, "books": 2, "reviews": 1, "rating_total": 4, "average_rating": 4.0}
    r = worker.call({"op": "augment", "key": "author_stats/1", "value": stats,
                     "change": _change("I", None, {"id": 5, "book_id": 2, "rating": 1})})
    assert r["ok"] and r["value"] == dict(stats, reviews=2, rating_total=5, average_rating=2.5)
    r = worker.call({"op": "augment", "key": "author_stats/1", "value": stats,
                     "change": _change("D", {"id": 3, "author_id": 1}, None, table="public.store_book")})
    assert r == {"id": r["id"], "ok": False, "cannot_augment": True}


@pytest.mark.parametrize("key, change", [
    ("echo/x", _change("I", None, {"id": 1})),                                 # no augment()
    ("review_count/1", _change("T", None, None)),                              # truncate
    ("review_count/1", _change("U", [{"book_id": 1}], [{"book_id": 2}])),      # bulk images
])
def test_cannot_augment(worker, db, key, change):
    r = worker.call({"op": "augment", "key": key, "value": 1, "change": change})
    assert r == {"id": r["id"], "ok": False, "cannot_augment": True}


def test_augment_errors(worker, db):
    r = worker.call({"op": "augment", "key": "review_count/1", "value": "not a number",
                     "change": _change("I", None, {"id": 1, "book_id": 1})})
    assert r["ok"] is False and r["error"].startswith("TypeError")
    r = worker.call({"op": "augment", "key": "review_count/x", "value": 1, "change": _change("I", None, {})})
    assert r["ok"] is False and r["error"].startswith("KeyParameterMismatch")
    r = worker.call({"op": "augment", "key": "review_count/1", "change": _change("I", None, {})})
    assert r["ok"] is False and "missing field 'value'" in r["error"]


def test_keys(worker, db):
    r = worker.call({"op": "keys", "primer": "review_count", "rule": 0, "old": {"id": 1, "book_id": 3},
                     "new": {"id": 1, "book_id": 8}})
    assert r == {"id": r["id"], "ok": True, "keys": ["review_count/3", "review_count/8"]}
    r = worker.call({"op": "keys", "primer": "review_count", "rule": 0, "old": None, "new": {"id": 1, "book_id": 3}})
    assert r["keys"] == ["review_count/3"]
    # Bulk form: arrays of distinct images.
    r = worker.call({"op": "keys", "primer": "review_count", "rule": 0,
                     "old": [{"book_id": 1}, {"book_id": 2}], "new": [{"book_id": 2}, {"book_id": 5}]})
    assert r["keys"] == ["review_count/1", "review_count/2", "review_count/5"]


def test_keys_of_many_row_pairs_in_one_request(worker, db):
    r = worker.call({"op": "keys", "primer": "review_count", "rule": 0,
                     "pairs": [[{"id": 1, "book_id": 3}, {"id": 1, "book_id": 8}], [None, {"id": 2, "book_id": 3}],
                               [{"id": 3, "book_id": 4}, None]]})
    assert r == {"id": r["id"], "ok": True, "results": [
        {"keys": ["review_count/3", "review_count/8"]}, {"keys": ["review_count/3"]}, {"keys": ["review_count/4"]}]}
    r = worker.call({"op": "keys", "primer": "review_count", "rule": 0, "pairs": []})
    assert r["ok"] and r["results"] == []


def test_keys_of_many_row_pairs_a_pair_that_raises_fails_alone(worker, db):
    pairs = [[None, {"id": i, "name": "boom" if i == 2 else "ok"}] for i in range(1, 4)]
    r = worker.call({"op": "keys", "primer": "bad_keys", "rule": 3, "pairs": pairs})
    assert r["ok"] is True, r
    assert r["results"][0] == {"keys": ["bad_keys/1"]} and r["results"][2] == {"keys": ["bad_keys/1"]}
    assert r["results"][1]["error"].startswith("ZeroDivisionError"), r


def test_keys_of_many_row_pairs_a_connection_lost_under_the_rule_is_transient(worker, db):
    pairs = [[None, {"id": 1, "name": "ok"}], [None, {"id": 2, "name": "lose connection"}]]
    r = worker.call({"op": "keys", "primer": "bad_keys", "rule": 4, "pairs": pairs})
    assert r["ok"] is False and r.get("transient") is True, r
    assert worker.call({"op": "ping"})["ok"]  # and the worker reconnects
    r = worker.call({"op": "keys", "primer": "bad_keys", "rule": 4, "pairs": pairs[:1]})
    assert r == {"id": r["id"], "ok": True, "results": [{"keys": []}]}


@pytest.mark.parametrize("pairs", [{"old": None}, [[None]], [[1, None]], ["x"], None])
def test_keys_of_many_row_pairs_bad_pairs(worker, db, pairs):
    r = worker.call({"op": "keys", "primer": "review_count", "rule": 0, "pairs": pairs})
    assert r["ok"] is False and "field 'pairs' must be a list of [old, new] pairs" in r["error"], r


def test_keys_of_example_rule_reads_the_database(worker, db):
    from store.models import Author, Book

    a = Author.objects.create(name="A")
    b = Book.objects.create(author=a, title="T")
    r = worker.call({"op": "keys", "primer": "author_stats", "rule": 1, "old": None,
                     "new": {"id": 1, "book_id": b.id, "rating": 5}})
    assert r["ok"] and r["keys"] == ["author_stats/%d" % a.id]


@pytest.mark.parametrize("req, error", [
    ({"primer": "bad_keys", "rule": 0}, 'KeyParameterMismatch: primer "bad_keys": key "title_list/1" belongs to primer "title_list"'),
    ({"primer": "bad_keys", "rule": 1}, "ZeroDivisionError: division by zero"),
    ({"primer": "bad_keys", "rule": 2}, "is not a keys= rule"),
    ({"primer": "bad_keys", "rule": 5}, "has no depends_on[5]"),
    ({"primer": "bad_keys", "rule": "0"}, "field 'rule' must be an integer"),
    ({"primer": "bad_keys", "rule": True}, "field 'rule' must be an integer"),
    ({"primer": "nope", "rule": 0}, "UnknownPrimer"),
    ({"rule": 0}, "missing field 'primer'"),
])
def test_keys_errors(worker, db, req, error):
    r = worker.call(dict(req, op="keys", old=None, new={"id": 1, "name": "x"}))
    assert r["ok"] is False and error in r["error"], r


def test_bad_requests(worker):
    assert worker.call({"id": 7, "op": "explode"}) == {
        "id": 7, "ok": False,
        "error": "BadRequest: unknown op 'explode' (expected compute, augment, keys, warm or ping)"}
    r = worker.call({"id": 8, "op": "compute"})
    assert r["ok"] is False and "missing field 'key'" in r["error"]
    r = worker.call({"id": 9, "op": "compute", "key": 5})
    assert r["ok"] is False and "field 'key' must be a string" in r["error"]
    # ids are integers: a request without one (or with another type) is answered with id null.
    worker.send(b'{"op": "ping"}\n')
    assert worker.read() == {"id": None, "ok": True}
    worker.send(b'{"op": "ping", "id": "x"}\n')
    assert worker.read() == {"id": None, "ok": True}


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'"str"\n', b"{\"id\": 1,\n", b"\xff\xfe\n"])
def test_malformed_lines(worker, line):
    worker.send(line)
    r = worker.read()
    assert r["id"] is None and r["ok"] is False and r["error"].startswith("malformed request")
    assert worker.call({"op": "ping"})["ok"]


def test_pipelined_requests_answer_in_order(worker, db):
    worker.send(b"".join(json.dumps({"id": i, "op": "compute", "key": "echo/p%d" % i}).encode() + b"\n"
                         for i in range(1, 6)))
    got = [worker.read() for _ in range(5)]
    assert [r["id"] for r in got] == [1, 2, 3, 4, 5]
    assert [r["value"]["text"] for r in got] == ["p1", "p2", "p3", "p4", "p5"]


def test_worker_survives_database_restart_of_its_connection(worker, db):
    assert worker.call({"op": "compute", "key": "echo/before"})["ok"]
    query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '' "
          "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = current_database()")
    r = worker.call({"op": "compute", "key": "echo/after"})
    assert r["ok"], r


def test_exits_cleanly_on_eof(pg_cluster):
    w = WorkerProcess()
    assert w.read(timeout=30)["hello"] == "kck_worker"
    assert w.call({"op": "ping"})["ok"]
    w.proc.stdin.close()
    assert w.proc.wait(timeout=10) == 0
    assert w.lines.get(timeout=5) is None


def test_transient_failures_are_marked_so_the_daemon_retries(worker, db):
    resp = worker.call({"op": "compute", "key": "times_out/1"})
    assert resp["ok"] is False and resp.get("transient") is True, resp
    assert "statement timeout" in resp["error"]
    boom = worker.call({"op": "compute", "key": "boom/3"})
    assert boom["ok"] is False and "transient" not in boom, boom
    assert worker.call({"op": "ping"})["ok"]


def test_a_connection_lost_under_a_primer_is_transient(worker, db):
    resp = worker.call({"op": "compute", "key": "loses_connection/1"})
    assert resp["ok"] is False and resp.get("transient") is True, resp
    assert worker.call({"op": "ping"})["ok"]  # and the worker reconnects


def test_warm_lists_the_keys_of_warm_once(worker):
    resp = worker.call({"op": "warm", "primer": "warm_echo"})
    assert resp["ok"] and resp["keys"] == ["warm_echo/a", "warm_echo/b%2Fc"]
    resp = worker.call({"op": "warm", "primer": "echo"})
    assert not resp["ok"] and "has no warm()" in resp["error"]
