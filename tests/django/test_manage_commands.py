"""manage.py kck_listen, kck_status, kck_refresh and the deploy check kck.W002, against the real
binary: kck_listen runs as a process (it execs the daemon) and is stopped with SIGTERM."""

import io
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import (BINARY_LISTENS, CONNINFO, KCK_BINARY, MANAGE, NO_LISTEN_REASON, PYTHON, install_config, query,
                      wait_for)
from kck import Cache
from kck.run import daemon_connections
from kcktest_pw_settings import PASSWORD
from store.models import Author, Book

pytestmark = pytest.mark.skipif(not BINARY_LISTENS, reason=NO_LISTEN_REASON)

def _proc(pid, what):
    return Path("/proc/%d/%s" % (pid, what)).read_bytes().split(b"\0")


def _children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class KckListen:
    """`manage.py kck_listen` with the password settings, as a process."""

    def __init__(self):
        self.log = tempfile.NamedTemporaryFile(prefix="kck-listen-django-", suffix=".log", delete=False)
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="kcktest_pw_settings")
        self.proc = subprocess.Popen([PYTHON, str(MANAGE), "kck_listen", "--log-level", "info",
                                      "--worker-timeout", "5s", "--batch", "100"],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)

    def text(self):
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self):
        def ready():
            assert self.proc.poll() is None, "kck_listen exited:\n" + self.text()
            return "python worker: ready" in self.text() and "listening" in self.text()
        wait_for(ready, timeout=30, what="kck_listen ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def close(self):
        self.stop()
        os.unlink(self.log.name)


@pytest.fixture
def kck_listen(db):
    from kck.sync import sync

    sync(binary=KCK_BINARY)
    listen = KckListen()
    try:
        listen.wait_ready()
        yield listen
    finally:
        listen.close()
    wait_for(lambda: daemon_connections() == 0, what="the daemon's backends gone")


def _w002():
    return [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "kck.W002"]


def _status(*args):
    out = io.StringIO()
    call_command("kck_status", *args, stdout=out)
    return out.getvalue()


def test_kck_listen_execs_the_daemon_with_the_password_in_its_environment_only(kck_listen):
    pid = kck_listen.proc.pid  # exec: the pid of manage.py is the daemon's
    argv = _proc(pid, "cmdline")
    assert argv[0].decode() == KCK_BINARY
    assert PASSWORD.encode() not in b" ".join(argv)
    assert "PGPASSWORD=%s" % PASSWORD in [e.decode() for e in _proc(pid, "environ")]
    db = argv[argv.index(b"--db") + 1].decode()
    assert "sslmode='disable'" in db and "application_name" not in db  # the daemon keeps the name kck
    assert argv[argv.index(b"--python-worker") + 1].decode().endswith(
        "kcktest_manage.py kck_worker --database default")
    for flag, value in ((b"--worker-timeout", b"5s"), (b"--batch", b"100"), (b"--log-level", b"info")):
        assert argv[argv.index(flag) + 1] == value
    workers = [c for c in _children(pid) if b"kck_worker" in b" ".join(_proc(c, "cmdline"))]
    assert len(workers) == 1, _children(pid)
    assert _proc(workers[0], "cmdline")[0].decode() == PYTHON
    assert "DJANGO_SETTINGS_MODULE=kcktest_pw_settings" in [e.decode() for e in _proc(workers[0], "environ")]


def test_kck_listen_applies_changes_and_stops_on_sigterm(kck_listen):
    cache = Cache.get_instance()
    a = Author.objects.create(name="kck_listen")
    key = "title_list/%d" % a.id
    assert cache.get(key) == []
    b = Book.objects.create(author=a, title="fresh")
    wait_for(lambda: cache.get(key) == [{"id": b.id, "title": "fresh"}], what=key + " fresh")
    assert kck_listen.stop() == 0, kck_listen.text()[-3000:]
    assert "stopped" in kck_listen.text()


def test_status_and_deploy_check_while_the_daemon_runs(kck_listen):
    assert daemon_connections() >= 1
    assert _w002() == []
    text = _status()
    assert text.startswith("outbox: ")
    assert "daemon: running (" in text
    status = json.loads(_status("--json"))
    assert status["daemon"]["running"] is True and status["daemon"]["connections"] >= 1
    assert "outbox" in status and "primers" in status


def _no_kck_backends():
    # The backend of a kck command that just exited may linger a moment under the name kck.
    wait_for(lambda: daemon_connections() == 0, what="no kck backend connected")


def test_status_and_deploy_check_without_a_daemon(db):
    from kck.management.commands.kck_status import NOT_RUNNING

    _no_kck_backends()
    text = _status()
    assert text.splitlines()[0].startswith("outbox: ")
    assert text.splitlines()[-1] == NOT_RUNNING
    kck_status = subprocess.run([KCK_BINARY, "--db", CONNINFO, "status"], stdout=subprocess.PIPE,
                                universal_newlines=True).stdout
    assert text.startswith(kck_status.splitlines()[0])  # what kck status prints
    _no_kck_backends()
    status = json.loads(_status("--json"))
    assert status["daemon"] == {"running": False, "connections": 0}
    _no_kck_backends()
    warnings = _w002()
    assert len(warnings) == 1 and warnings[0].level == checks.WARNING
    assert warnings[0].msg == "no kck daemon is connected to database 'default': products are not kept fresh"
    assert "kck_listen" in warnings[0].hint
    # A cache read still works: computed on the miss.
    a = Author.objects.create(name="no daemon")
    assert Cache.get_instance().get("title_list/%d" % a.id) == []
    # Not a plain check: only --deploy runs it.
    assert [m for m in checks.run_checks() if m.id == "kck.W002"] == []


SQL_PRIMER = {"primers": [{"name": "refresh_sql", "parameters": [{"name": "n", "type": "int"}],
                           "compute": "SELECT to_jsonb(:n * 2 + (SELECT count(*) FROM store_author))",
                           "depends_on": []}]}


def test_kck_refresh(db, tmp_path):
    install_config(tmp_path, SQL_PRIMER)
    try:
        out = io.StringIO()
        call_command("kck_refresh", "refresh_sql/5", stdout=out)
        assert out.getvalue().strip() == "refresh_sql/5: version 1"
        Author.objects.create(name="one more")
        call_command("kck_refresh", "refresh_sql/5", stdout=out)
        assert out.getvalue().strip().splitlines()[-1] == "refresh_sql/5: version 2"
        assert query("SELECT value::text FROM kck.cache WHERE key = 'refresh_sql/5'") == [("11",)]
        with pytest.raises(CommandError) as e:
            call_command("kck_refresh", "refresh_sql/x", stdout=io.StringIO())
        assert "refresh_sql" in str(e.value) and e.value.returncode == 2
    finally:
        install_config(tmp_path, {"primers": []})


def test_missing_binary_is_a_command_error(db):
    for name, args in (("kck_status", []), ("kck_refresh", ["echo/x"]), ("kck_listen", [])):
        with pytest.raises(CommandError) as e:
            call_command(name, *args, binary="/nonexistent/kck", stdout=io.StringIO())
        assert "/nonexistent/kck" in str(e.value), name


def test_kck_warm_computes_what_warm_lists_once(db):
    out = io.StringIO()
    call_command("kck_warm", "warm_echo", stdout=out)
    assert out.getvalue().strip() == "kck_warm: warm_echo: 2 keys listed, 2 computed"
    assert query("SELECT key FROM kck.cache ORDER BY key") == [("warm_echo/a",), ("warm_echo/b%2Fc",)]
    out = io.StringIO()
    call_command("kck_warm", stdout=out)  # every primer with warm(): nothing left to compute
    assert out.getvalue().strip() == "kck_warm: warm_echo: 2 keys listed, 0 computed"
    with pytest.raises(CommandError, match="primer 'echo' has no warm"):
        call_command("kck_warm", "echo", stdout=io.StringIO())
