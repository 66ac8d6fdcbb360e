"""A throwaway PostgreSQL server for tests: `initdb` in a temporary folder, listening on a free loopback port (its Unix
socket in the same folder), password authentication, stopped and removed at the end. Root may not run the server, so
as root it runs as `nobody`. `find_bin()` is None when the server is not installed (.ci/run installs Debian's
package; the tests that need it then skip)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "archsearch", "pg-secret-7f3a"  # tests check that the password is never printed


def find_bin() -> Path | None:
    """The folder of initdb and pg_ctl: Debian keeps them in /usr/lib/postgresql/NN/bin, off the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="archsearch-pg-"))  # short: a socket path has a length limit
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.port = _free_port()
        self._as = {}
        if os.geteuid() == 0:  # initdb refuses root: the server runs as an unprivileged user
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            os.chown(pwfile, self._as["user"], self._as["group"])
        self._pg("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                 "--no-sync", "-E", "UTF8")
        pwfile.unlink()
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        r = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True, cwd=self.dir,
                           timeout=60, **self._as)
        if r.returncode != 0:
            log = self.log.read_text()[-1500:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args[:3])} failed: {r.stderr[-1500:]}{log}")

    def start(self) -> None:
        # durability is not what these tests measure: no fsync keeps the server quick to start and write
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every client's connection, as a database restart does."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, db: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{db}"

    def fresh_db(self, name: str) -> str:
        """A new, empty database (a test's own study), and its URL."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(ready, timeout: float, poll: float = 0.2):
    """Poll ready() until it returns something truthy; None after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = ready()
        if got:
            return got
        time.sleep(poll)
    return None
