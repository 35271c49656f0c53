"""A throwaway PostgreSQL cluster for the tests, from the Debian ``postgresql`` package.

``initdb`` on PATH or in /usr/lib/postgresql/*/bin; started on a free 127.0.0.1 port with its
socket in a temporary folder; trust authentication and fsync off, because the data is a test's.
As root (initdb refuses root) the server runs as the ``postgres`` system user through ``runuser``.
"""
import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_NOT_INSTALLED = ("PostgreSQL is not installed (no initdb on PATH or in "
                    "/usr/lib/postgresql/*/bin): install the Debian 'postgresql' package "
                    "(make system-deps) or set CLINEPIPE_TEST_POSTGRES_URL")


def pg_bindir():
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")])
    return Path(candidates[-1]).parent if candidates else None


def _run_as():
    """Command prefix and (uid, gid) to run the server as: ourselves, or as root an unprivileged
    system user (``postgres`` from the Debian package, else ``nobody``)."""
    if os.geteuid() != 0:
        return (lambda cmd: cmd), None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return (lambda cmd, n=name: ["runuser", "-u", n, "--", *cmd]), (entry.pw_uid, entry.pw_gid)
        return ((lambda cmd, n=name: ["su", n, "-s", "/bin/sh", "-c", shlex.join(cmd)]),
                (entry.pw_uid, entry.pw_gid))
    raise RuntimeError("running as root and no unprivileged 'postgres' or 'nobody' user to run "
                       "PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """initdb + pg_ctl start/stop of a disposable cluster (trust auth, fsync off: test data)."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.wrap, self.owner = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="clinepipe-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = None
        self.started = None

    def _run(self, *cmd, timeout=120):
        proc = subprocess.run(self.wrap([str(c) for c in cmd]), cwd=self.root, timeout=timeout,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env={**os.environ, "LC_ALL": "C", "LANG": "C"})
        if proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{tail}")
        return proc.stdout

    def start(self):
        t0 = time.perf_counter()
        if self.owner is not None:
            os.chown(self.root, *self.owner)
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        last = None
        for _ in range(5):  # another process may grab the port between probe and bind
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                    f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    f"-c max_connections=200 -c shared_buffers=32MB")
            try:
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                          "-t", "60", "-o", opts, "start")
                break
            except RuntimeError as exc:
                last = exc
        else:
            raise last
        self.started = time.perf_counter() - t0
        return self

    def stop(self):
        try:
            if self.port is not None:
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                          "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def pg_admin(url: str, sql: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database or "postgres", autocommit=True) as conn:
        conn.execute(sql)
